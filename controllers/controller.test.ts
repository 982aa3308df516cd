import test from 'ava';
import { startWorld, waitFor, type World } from './harness.js';

const SPEC = (subnetID: string, over: Record<string, unknown> = {}) => ({
  nodeSelector: { matchLabels: { pool: 'a' } },
  subnetID,
  ipsPerNode: { min: 0, max: 64 },
  scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
  ...over,
});

const writes = (w: World) => {
  const k = w.azure.calls().byKind;
  return (k['nic.put'] ?? 0) + (k['vmssvm.put'] ?? 0);
};

test('scale-up: each selected node gets a batch in one write, status shows the IPs; the rest is untouched', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 3 }] }, nodeLabels: (_n, i) => (i < 2 ? { pool: 'a' } : {}) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', SPEC(subnet));
  const [n0, n1, n2] = w.nodes.map((n) => n.nodeName);
  const r0 = await waitFor('node 0 to have 8 IPs', async () => { const r = await w.record(n0!); return r?.status?.ips.length === 8 ? r : undefined; });
  await waitFor('node 1 to have 8 IPs', async () => (await w.record(n1!))?.status?.ips.length === 8);
  t.is(writes(w), 2, 'one write per node');
  t.deepEqual(r0.status!.ips.map((i) => i.ip).sort(), w.nicIPs(n0!).sort());
  t.like(r0.status, { allocatedIPs: 8, targetIPs: 8, subnet: { id: subnet, addressPrefix: '10.240.0.0/16', gatewayIP: '10.240.0.1' } });
  t.is(r0.status!.nic!.primaryIP, w.nodes[0]!.primaryIP);
  t.is(r0.metadata.ownerReferences?.find((o) => o.controller)?.name, 'a');
  t.deepEqual(r0.metadata.finalizers, ['podvnet.io/release-ip-configs']);
  t.is(r0.metadata.labels?.['podvnet.io/pool'], 'a');
  t.is(await w.record(n2!), undefined, 'unselected node gets no record');
  t.deepEqual(w.nicIPs(n2!), []);

  // demand grows: the agent reports 5 used of 8 -> one more batch, one more write
  await w.setDemand(n0!, 5);
  await waitFor('node 0 to grow to 16', async () => (await w.record(n0!))?.status?.ips.length === 16);
  t.is(w.nicIPs(n0!).length, 16);
  t.is(writes(w), 3);

  const pool = await waitFor('pool status', async () => { const p = await w.pool('a'); return p?.status?.allocatedIPs === 24 ? p : undefined; });
  t.like(pool.status, { nodes: 2, allocatedIPs: 24, usedIPs: 5, releasedIPs: 0, observedGeneration: 1 });
  t.is(pool.status!.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
  t.deepEqual(pool.metadata.finalizers, ['podvnet.io/release-ip-configs']);
});
