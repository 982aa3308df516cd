import test from 'ava';
import { startWorld, waitFor, waitForQuiet, type World } from './testing/harness.js';
import { parseIPv4 } from '../hack/azure-emulator/address-pool.js';

/** Block pools served end to end: the real controller, the ARM SDK, the Azure and kube emulators. */

const SPEC = (subnetID: string, over: Record<string, unknown> = {}) => ({
  nodeSelector: { matchLabels: { pool: 'a' } },
  subnetID,
  allocation: 'Block',
  ipsPerNode: { min: 0, max: 64 },
  scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
  ...over,
});

const writes = (w: World) => {
  const k = w.azure.calls().byKind;
  return (k['nic.put'] ?? 0) + (k['vmssvm.put'] ?? 0);
};
const isBlockCidr = (s: string) => /^\d+\.\d+\.\d+\.(\d+)\/28$/.test(s) && Number(/\.(\d+)\/28$/.exec(s)![1]) % 16 === 0;
type EventList = { items: Array<{ reason: string; type: string; note: string; regarding: { name: string; kind: string } }> };
const events = (w: World) => w.client.get<EventList>('/apis/events.k8s.io/v1/namespaces/default/events');

for (const kind of ['vm', 'vmss'] as const) {
  test(`${kind}: grows in whole /28 blocks with demand, one write per round; removes only the block the agent released`, async (t) => {
    const scenario = kind === 'vm' ? { vms: [{ count: 1 }] } : { scaleSets: [{ name: 'ss', count: 1 }] };
    const w = await startWorld({ scenario, nodeLabels: () => ({ pool: 'a' }) });
    t.teardown(() => w.close());
    const subnet = Object.values(w.subnets)[0]!;
    await w.createPool('a', SPEC(subnet));
    const node = w.nodes[0]!.nodeName;

    const one = await waitFor('one block', async () => { const r = await w.record(node); return r?.status?.blocks?.length === 1 ? r : undefined; });
    t.is(writes(w), 1);
    t.like(one.status, { allocatedBlocks: 1, allocatedIPs: 16, targetIPs: 16 });
    t.deepEqual(one.status!.ips, [], 'no single ip-configs in Block mode');
    t.deepEqual(w.nicIPs(node), [one.status!.blocks![0]!.prefix]);
    t.true(isBlockCidr(one.status!.blocks![0]!.prefix), one.status!.blocks![0]!.prefix);
    t.is(one.status!.conditions!.find((c) => c.type === 'Ready')!.reason, 'Synced');

    // 9 of 16 used: above the 50% request threshold, one more block in one more write
    await w.setDemand(node, 9);
    const two = await waitFor('two blocks', async () => { const r = await w.record(node); return r?.status?.blocks?.length === 2 ? r : undefined; });
    t.is(writes(w), 2);
    t.is(two.status!.allocatedIPs, 32);

    // far more demand than max: capped at ceil(64/16) = 4 blocks
    await w.setDemand(node, 60);
    const four = await waitFor('four blocks', async () => { const r = await w.record(node); return r?.status?.blocks?.length === 4 ? r : undefined; });
    await waitForQuiet('NIC writes', () => writes(w));
    t.is(w.nicIPs(node).length, 4);
    t.true(w.nicIPs(node).every(isBlockCidr));
    const prefixes = four.status!.blocks!.map((b) => b.prefix);

    // demand falls, but no block is listed as released: every block stays (a pod may hold any address)
    await w.setDemand(node, 3);
    const before = writes(w);
    await waitFor('the demand to reach the controller', async () => (await w.record(node))?.spec.demand?.usedIPs === 3);
    await waitForQuiet('NIC writes after the drop', () => writes(w), 1000);
    t.is(writes(w), before, 'nothing removed while the agent releases no whole block');
    t.deepEqual([...w.nicIPs(node)].sort(), [...prefixes].sort());

    // the agent releases two whole blocks: exactly those leave, in one write
    const released = prefixes.slice(2);
    await w.releaseBlocks(node, released);
    const after = await waitFor('the released blocks to go', async () => { const r = await w.record(node); return r?.status?.blocks?.length === 2 ? r : undefined; });
    t.is(writes(w), before + 1, 'one write removes both');
    t.deepEqual(after.status!.blocks!.map((b) => b.prefix).sort(), prefixes.slice(0, 2).sort());
    t.deepEqual([...w.nicIPs(node)].sort(), prefixes.slice(0, 2).sort());

    const pool = await waitFor('pool status in blocks', async () => { const p = await w.pool('a'); return p?.status?.allocatedBlocks === 2 ? p : undefined; });
    t.like(pool.status, { nodes: 1, allocatedIPs: 32, usedIPs: 3 });
    t.like(pool.status!.conditions!.find((c) => c.type === 'AllocationModeConflict'), { status: 'False' });
    const told = await waitFor('the release told in blocks', async () => (await events(w)).items.find((e) => e.reason === 'IPsReleased' && e.regarding.kind === 'NodeIPAllocation'));
    t.regex(told.note, /removed 2 released \/28 blocks in 1 NIC write: 4 → 2 blocks on the NIC/);
  });
}

test('one mode per subnet: a later Block pool on an Individual pool\'s subnet is not served, says why, and warns', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 2 }] }, nodeLabels: (_n, i): Record<string, string> => ({ pool: i === 0 ? 'a' : 'b' }) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  const [n0, n1] = w.nodes.map((n) => n.nodeName);
  await w.createPool('a', SPEC(subnet, { allocation: 'Individual', scaling: { batchSize: 8 } }));
  await waitFor('pool a serves its node', async () => ((await w.record(n0!))?.status?.ips.length ?? 0) > 0);
  await w.createPool('b', SPEC(subnet, { nodeSelector: { matchLabels: { pool: 'b' } } }));
  const r = await waitFor('b\'s record to say it is not served', async () => {
    const x = await w.record(n1!);
    return x?.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'AllocationModeConflict') ? x : undefined;
  });
  t.regex(r.status!.conditions![0]!.message, /already used by NodeIPPool a with allocation Individual/);
  const pb = await waitFor('pool b\'s condition', async () => {
    const p = await w.pool('b');
    return p?.status?.conditions?.find((c) => c.type === 'AllocationModeConflict' && c.status === 'True') ? p : undefined;
  });
  t.truthy(pb);
  await waitFor('a Warning event on pool b', async () => (await events(w)).items.some((e) => e.reason === 'AllocationModeConflict' && e.type === 'Warning' && e.regarding.name === 'b'));
  t.deepEqual(w.nicIPs(n1!), [], 'no ip-config on the later pool\'s node');
  const pa = await w.pool('a');
  t.falsy(pa?.status?.conditions?.find((c) => c.type === 'AllocationModeConflict'), 'the earlier Individual pool is unchanged');
});

const SMALL = {
  vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'small', addressPrefix: '10.9.0.0/27' }] }],
  vms: [{ count: 1, subnet: 'small' }],
};

test('a subnet with free addresses but no aligned /28: the record and pool say so, a Warning, no write; fallbackToIndividual adds singles', async (t) => {
  const w = await startWorld({ scenario: SMALL, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const subnet = w.subnets['vnet/small']!;
  await w.createPool('a', SPEC(subnet));
  const node = w.nodes[0]!.nodeName;
  const r = await waitFor('the fragmentation condition', async () => {
    const x = await w.record(node);
    return x?.status?.conditions?.find((c) => c.type === 'SubnetExhausted' && c.status === 'True') ? x : undefined;
  });
  const c = r.status!.conditions!.find((x) => x.type === 'SubnetExhausted')!;
  t.is(c.reason, 'NoAlignedBlock');
  t.regex(c.message, /subnet .*small has 26 free addresses but no free aligned \/28 block fits/);
  t.is(r.status!.conditions!.find((x) => x.type === 'Ready')!.reason, 'NoAlignedBlock');
  const p = await waitFor('the pool\'s condition', async () => {
    const x = await w.pool('a');
    return x?.status?.conditions?.find((k) => k.type === 'SubnetExhausted' && k.reason === 'NoAlignedBlock') ? x : undefined;
  });
  t.truthy(p);
  await waitFor('Warning events', async () => (await events(w)).items.some((e) => e.reason === 'NoAlignedBlock' && e.type === 'Warning' && e.regarding.kind === 'NodeIPPool'));
  t.is(writes(w), 0);
  t.deepEqual(w.nicIPs(node), []);
  await w.deletePool('a');
  await waitFor('pool a gone', async () => (await w.pool('a')) === undefined);

  await w.createPool('f', SPEC(subnet, { fallbackToIndividual: true }));
  const f = await waitFor('single ip-configs instead', async () => { const x = await w.record(node); return x?.spec.poolName === 'f' && (x.status?.ips.length ?? 0) > 0 ? x : undefined; });
  t.deepEqual(f.status!.blocks, []);
  t.true(w.nicIPs(node).every((ip) => !ip.includes('/')));
  t.regex(f.status!.conditions!.find((x) => x.type === 'SubnetExhausted')!.message, /adding single ip-configs instead/);
});

test('Azure says SubnetIsFull while the subnet has free addresses: read as fragmentation (NoAlignedBlock), not as a full subnet', async (t) => {
  const scenario = {
    vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'frag', addressPrefix: '10.7.0.0/24' }] }],
    vms: [{ count: 1, subnet: 'frag' }],
  };
  const w = await startWorld({ scenario, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const subnet = w.subnets['vnet/frag']!;
  // Someone else holds one address in each of the 14 inner /28s: no ip-config the subnet GET lists, so only
  // Azure's answer can tell that no block fits.
  const pool = w.azure.state.subnets.get(subnet.toLowerCase())!.pool;
  for (let k = 1; k < 15; k++) t.true(pool.take(parseIPv4(`10.7.0.${k * 16 + 8}`)!));
  await w.createPool('a', SPEC(subnet));
  const node = w.nodes[0]!.nodeName;
  const r = await waitFor('the fragmentation condition', async () => {
    const x = await w.record(node);
    return x?.status?.conditions?.find((c) => c.type === 'SubnetExhausted' && c.reason === 'NoAlignedBlock') ? x : undefined;
  });
  t.regex(r.status!.conditions!.find((c) => c.type === 'SubnetExhausted')!.message, /has \d+ free addresses but no free aligned \/28 block fits/);
  t.is(r.status!.conditions!.find((c) => c.type === 'Ready')!.reason, 'NoAlignedBlock');
  t.true((w.azure.calls().byKind['nic.put'] ?? 0) >= 1, 'Azure was asked and refused');
  t.deepEqual(w.nicIPs(node), []);
  await waitFor('a Warning on the pool', async () => (await events(w)).items.some((e) => e.reason === 'NoAlignedBlock' && e.regarding.kind === 'NodeIPPool'));
});
