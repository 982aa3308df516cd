// 5,000 emulated nodes through the real SDK: load time, memory, request rates. Rates are compared with a
// bare HTTPS server sending the same bytes, measured in the same run, so a busy machine does not fail the test.
import test from 'ava';
import { Agent, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AzureEmulator } from './server.js';
import { createNetworkClient } from './sdk.js';
import { generateSelfSignedCert } from './tls.js';

const SUB = '00000000-0000-0000-0000-00000000beef';

async function pool<T>(items: T[], concurrency: number, f: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
}

function get(origin: string, path: string, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${path}`, { agent, headers: { authorization: 'Bearer x' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

test('5,000 NICs (4,000 VMs + 1,000 scale-set instances, 31 ip-configs each): load, SDK reads and writes, server rate vs bare HTTPS', async (t) => {
  const tls = generateSelfSignedCert();
  const heapBefore = process.memoryUsage().heapUsed;
  const loadStart = performance.now();
  const emu = await AzureEmulator.start({
    tls,
    // 160,000 ip-configs in one VNet: more than Azure's 65,536 private IPs per VNet, lifted here because
    // this measures the emulator's own scale, not Azure's limits.
    config: { throttling: { enabled: false }, maxPrivateIpsPerVnet: 1_000_000 },
    scenario: {
      subscriptionId: SUB, resourceGroup: 'big',
      vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.64.0.0/12' }] }],
      vms: [{ namePrefix: 'vm-', count: 4000, secondaryIpConfigs: 30 }],
      scaleSets: [{ name: 'ss', count: 1000, secondaryIpConfigs: 30 }],
    },
  });
  t.teardown(() => emu.close());
  const loadMs = performance.now() - loadStart;
  const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  t.is(emu.state.nics.size, 5000);
  t.is(emu.ipOwners().length, 5000 * 31);
  t.is(emu.ipOwner('10.64.0.4')?.nodeName, 'vm-0');
  t.true(loadMs < 30_000, `scenario load took ${loadMs} ms`);

  const names = Array.from({ length: 4000 }, (_, i) => `vm-${i}-nic`);
  const path = (n: string) => `/subscriptions/${SUB}/resourceGroups/big/providers/Microsoft.Network/networkInterfaces/${n}?api-version=2024-05-01`;
  const agent = new Agent({ keepAlive: true, ca: tls.cert, maxSockets: 64 });
  t.teardown(() => agent.destroy());
  const sample = await get(emu.url, path('vm-0-nic'), agent);
  const bare = createServer({ key: tls.key, cert: tls.cert, keepAlive: true }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(sample) });
    res.end(sample);
  });
  bare.keepAliveTimeout = 120_000; // as the emulator: no idle-socket race between phases
  bare.headersTimeout = 121_000;
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  t.teardown(() => { bare.close(); bare.closeAllConnections(); });
  const bareUrl = `https://127.0.0.1:${(bare.address() as AddressInfo).port}`;
  const rate = async (origin: string, n: number) => {
    const start = performance.now();
    await pool(names.slice(0, n), 64, (name) => get(origin, path(name), agent));
    return n / ((performance.now() - start) / 1000);
  };
  // A/B/A/B so a noisy neighbour hits both sides alike.
  const emuRates = [];
  const bareRates = [];
  for (let i = 0; i < 2; i++) { bareRates.push(await rate(bareUrl, 1000)); emuRates.push(await rate(emu.url, 1000)); }
  const emuRps = Math.max(...emuRates);
  const bareRps = Math.max(...bareRates);

  const net = createNetworkClient(emu, SUB);
  const getStart = performance.now();
  await pool(names.slice(0, 500), 64, (n) => net.networkInterfaces.get('big', n));
  const sdkGetRps = 500 / ((performance.now() - getStart) / 1000);

  // One write per node: drop 10 secondaries, add 10 new ones (the controller's round).
  const putStart = performance.now();
  await pool(names.slice(0, 300), 64, async (n) => {
    const nic = await net.networkInterfaces.get('big', n);
    const cfgs = nic.ipConfigurations!.slice(0, 21);
    for (let i = 0; i < 10; i++) cfgs.push({ name: `new${i}`, subnet: cfgs[0]!.subnet!, primary: false });
    const r = await net.networkInterfaces.beginCreateOrUpdateAndWait('big', n, { ...nic, ipConfigurations: cfgs });
    if (r.ipConfigurations!.length !== 31) throw new Error('wrong ip-config count');
  });
  const roundsPerSec = 300 / ((performance.now() - putStart) / 1000);
  t.is(emu.calls().byKind['nic.put'], 300);
  t.is(emu.ipOwners().length, 5000 * 31);

  // A full 256 ip-config NIC write.
  const nic = await net.networkInterfaces.get('big', 'vm-3999-nic');
  const full = [...nic.ipConfigurations!];
  for (let i = full.length; i < 256; i++) full.push({ name: `fill${i}`, subnet: full[0]!.subnet!, primary: false });
  const fullStart = performance.now();
  const written = await net.networkInterfaces.beginCreateOrUpdateAndWait('big', 'vm-3999-nic', { ...nic, ipConfigurations: full });
  const fullMs = performance.now() - fullStart;
  t.is(written.ipConfigurations!.length, 256);

  t.log(`load 5,000 nodes: ${loadMs.toFixed(0)} ms, heap +${heapMb.toFixed(0)} MiB; NIC GET over HTTPS ${emuRps.toFixed(0)}/s vs bare server ${bareRps.toFixed(0)}/s; `
    + `SDK GET ${sdkGetRps.toFixed(0)}/s; SDK GET+PUT rounds ${roundsPerSec.toFixed(0)}/s; 256-ip-config PUT ${fullMs.toFixed(1)} ms`);
  t.true(emuRps > 0.25 * bareRps, `emulator ${emuRps}/s is under a quarter of a bare HTTPS server (${bareRps}/s)`);
});
