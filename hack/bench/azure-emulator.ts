// Benchmark of the Azure emulator, each number next to a reference measured in the same run:
//  1. lowest-free allocation: the emulator's two-level bitmap vs a linear scan of a Set (the naive pool);
//  2. NIC GET over HTTPS: the emulator vs a bare HTTPS server answering the same bytes from memory.
// Run: node --loader ts-node/esm hack/bench/azure-emulator.ts [--nodes 5000] [--ips 31]
import { parseArgs } from 'node:util';
import { Agent, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AddressPool, parseCidr } from '../azure-emulator/address-pool.js';
import { AzureEmulator } from '../azure-emulator/server.js';
import { generateSelfSignedCert } from '../azure-emulator/tls.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '5000' }, ips: { type: 'string', default: '31' }, requests: { type: 'string', default: '20000' } } });
const nodes = Number(values.nodes);
const ipsPerNic = Number(values.ips);
const requests = Number(values.requests);

function allocationBench(): Record<string, number> {
  const cidr = '10.64.0.0/16';
  const { base, size } = parseCidr(cidr)!;
  const n = 20_000;
  // Churn: fill n, free every 4th, refill (lowest-free must find the holes first).
  const pool = new AddressPool(cidr);
  let t = performance.now();
  for (let i = 0; i < n; i++) pool.takeLowest();
  for (let i = 4; i < n; i += 4) pool.release(base + i);
  for (let i = 4; i < n; i += 4) pool.takeLowest();
  const bitmapMs = performance.now() - t;

  const taken = new Set<number>([0, 1, 2, 3, size - 1]);
  const naiveLowest = () => { for (let i = 0; i < size; i++) if (!taken.has(i)) { taken.add(i); return i; } return undefined; };
  t = performance.now();
  for (let i = 0; i < n; i++) naiveLowest();
  for (let i = 4; i < n; i += 4) taken.delete(i);
  for (let i = 4; i < n; i += 4) naiveLowest();
  const naiveMs = performance.now() - t;
  return { allocations: n + n / 4, bitmapMs: round(bitmapMs), naiveScanMs: round(naiveMs), speedup: round(naiveMs / bitmapMs) };
}

async function httpBench(): Promise<Record<string, number>> {
  const sub = '00000000-0000-0000-0000-00000000beef';
  const loadStart = performance.now();
  const tls = generateSelfSignedCert();
  const emu = await AzureEmulator.start({
    tls,
    // Past Azure's 65,536 private IPs per VNet on purpose: this measures the emulator, not Azure's limits.
    config: { throttling: { enabled: false }, maxPrivateIpsPerVnet: 10_000_000 },
    scenario: {
      subscriptionId: sub, resourceGroup: 'bench',
      vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.64.0.0/12' }] }],
      vms: [{ namePrefix: 'vm-', count: nodes, secondaryIpConfigs: ipsPerNic - 1 }],
    },
  });
  const loadMs = performance.now() - loadStart;
  const path = (i: number) => `/subscriptions/${sub}/resourceGroups/bench/providers/Microsoft.Network/networkInterfaces/vm-${i % nodes}-nic?api-version=2024-05-01`;
  // Both servers use the same certificate, so they pay the same TLS cost.
  const sample = await get(emu.url, emu.ca, path(0));
  const reference = createServer({ key: tls.key, cert: tls.cert, keepAlive: true }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(sample) });
    res.end(sample);
  });
  reference.keepAliveTimeout = 120_000; // as the emulator: no idle-socket race between phases
  reference.headersTimeout = 121_000;
  await new Promise<void>((r) => reference.listen(0, '127.0.0.1', r));
  const refUrl = `https://127.0.0.1:${(reference.address() as AddressInfo).port}`;
  const agent = new Agent({ keepAlive: true, ca: emu.ca, maxSockets: 64 });
  const run = async (origin: string) => {
    let next = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < requests) { const i = next++; await get(origin, emu.ca, path(i), agent); }
    }));
    return requests / ((performance.now() - t) / 1000);
  };
  await run(refUrl); // warm-up both
  await run(emu.url);
  const refRps = await run(refUrl);
  const emuRps = await run(emu.url);
  agent.destroy();
  reference.close();
  reference.closeAllConnections();
  await emu.close();
  return { nodes, ipConfigsPerNic: ipsPerNic, scenarioLoadMs: round(loadMs), responseBytes: Buffer.byteLength(sample), emulatorGetPerSec: round(emuRps), bareHttpsGetPerSec: round(refRps), emulatorShareOfBare: round(emuRps / refRps) };
}

function get(origin: string, ca: string, path: string, agent?: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${path}`, { ca, agent, headers: { authorization: 'Bearer bench' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

const round = (x: number) => Math.round(x * 100) / 100;

const result = { allocation: allocationBench(), httpGet: await httpBench() };
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
