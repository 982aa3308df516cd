// 5,000 emulated nodes through the real SDK: load time, memory, and request rates.
import test from 'ava';
import { Agent, request } from 'node:https';
import { AzureEmulator } from './server.js';
import { createNetworkClient } from './sdk.js';

const SUB = '00000000-0000-0000-0000-00000000beef';

async function pool<T>(items: T[], concurrency: number, f: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
}

test('5,000 NICs (4,000 VMs + 1,000 scale-set instances, 31 ip-configs each) serve thousands of SDK calls per second', async (t) => {
  const heapBefore = process.memoryUsage().heapUsed;
  const loadStart = performance.now();
  const emu = await AzureEmulator.start({
    config: { throttling: { enabled: false } },
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

  const net = createNetworkClient(emu, SUB);
  const names = Array.from({ length: 4000 }, (_, i) => `vm-${i}-nic`);
  const getStart = performance.now();
  await pool(names.slice(0, 1500), 64, (n) => net.networkInterfaces.get('big', n));
  const getRps = 1500 / ((performance.now() - getStart) / 1000);

  // The server's own capacity, without the SDK's (de)serialization on the client side.
  const agent = new Agent({ keepAlive: true, ca: emu.ca, maxSockets: 64 });
  t.teardown(() => agent.destroy());
  const rawGet = (n: string) => new Promise<void>((resolve, reject) => {
    const req = request(`${emu.url}/subscriptions/${SUB}/resourceGroups/big/providers/Microsoft.Network/networkInterfaces/${n}?api-version=2024-05-01`,
      { agent, headers: { authorization: 'Bearer x' } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      });
    req.on('error', reject);
    req.end();
  });
  const rawStart = performance.now();
  await pool(names, 64, rawGet);
  const rawRps = names.length / ((performance.now() - rawStart) / 1000);

  // One write per node: drop 10 secondaries, add 10 new ones (the controller's round).
  const putStart = performance.now();
  await pool(names.slice(0, 600), 64, async (n) => {
    const nic = await net.networkInterfaces.get('big', n);
    const cfgs = nic.ipConfigurations!.slice(0, 21);
    for (let i = 0; i < 10; i++) cfgs.push({ name: `new${i}`, subnet: cfgs[0]!.subnet!, primary: false });
    const r = await net.networkInterfaces.beginCreateOrUpdateAndWait('big', n, { ...nic, ipConfigurations: cfgs });
    if (r.ipConfigurations!.length !== 31) throw new Error('wrong ip-config count');
  });
  const roundsPerSec = 600 / ((performance.now() - putStart) / 1000);

  // A full 256 ip-config NIC write.
  const nic = await net.networkInterfaces.get('big', 'vm-3999-nic');
  const full = [...nic.ipConfigurations!];
  for (let i = full.length; i < 256; i++) full.push({ name: `fill${i}`, subnet: full[0]!.subnet!, primary: false });
  const fullStart = performance.now();
  const written = await net.networkInterfaces.beginCreateOrUpdateAndWait('big', 'vm-3999-nic', { ...nic, ipConfigurations: full });
  const fullMs = performance.now() - fullStart;
  t.is(written.ipConfigurations!.length, 256);

  t.log(`load 5,000 nodes: ${loadMs.toFixed(0)} ms, heap +${heapMb.toFixed(0)} MiB; SDK GET ${getRps.toFixed(0)}/s; plain HTTPS GET ${rawRps.toFixed(0)}/s; GET+PUT rounds ${roundsPerSec.toFixed(0)}/s; 256-ip-config PUT ${fullMs.toFixed(1)} ms`);
  t.true(loadMs < 10_000, `scenario load took ${loadMs} ms`);
  t.true(getRps > 400, `SDK GET rate ${getRps}/s`);
  t.true(rawRps > 1500, `plain HTTPS GET rate ${rawRps}/s`);
  t.true(roundsPerSec > 100, `round rate ${roundsPerSec}/s`);
});
