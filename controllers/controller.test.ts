import test, { type ExecutionContext } from 'ava';
import { startWorld, waitFor, waitForQuiet, type World } from './testing/harness.js';

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
  const w = await startWorld({ scenario: { vms: [{ count: 3 }] }, nodeLabels: (_n, i): Record<string, string> => (i < 2 ? { pool: 'a' } : {}) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', SPEC(subnet));
  const [n0, n1, n2] = w.nodes.map((n) => n.nodeName);
  const r0 = await waitFor('node 0 to have 8 IPs', async () => { const r = await w.record(n0!); return r?.status?.ips.length === 8 ? r : undefined; });
  await waitFor('node 1 to have 8 IPs', async () => (await w.record(n1!))?.status?.ips.length === 8);
  t.is(writes(w), 2, 'one write per node');
  t.is(w.azure.calls().byKind['vnet.get'], 1, 'the pool subnet is read once for both nodes');
  t.is(w.azure.calls().byKind['nic.list'], 1, 'one NIC list finds both nodes\' NICs');
  t.is(w.azure.calls().byKind['vm.get'], undefined);
  t.deepEqual(r0.status!.ips.map((i) => i.ip).sort(), w.nicIPs(n0!).sort());
  t.like(r0.status, { allocatedIPs: 8, targetIPs: 8, subnet: { id: subnet, addressPrefix: '10.240.0.0/16', gatewayIP: '10.240.0.1' } });
  t.is(r0.status!.nic!.primaryIP, w.nodes[0]!.primaryIP);
  t.is(r0.metadata.ownerReferences?.find((o) => o.controller)?.name, 'a');
  t.deepEqual(r0.metadata.finalizers, ['podvnet.io/release-ip-configs']);
  t.is(r0.metadata.labels?.['podvnet.io/pool'], 'a');
  const managers = (r: { metadata: unknown }) => [...new Set(((r.metadata as { managedFields?: Array<{ manager: string }> }).managedFields ?? []).map((f) => f.manager))].sort();
  t.deepEqual(managers(r0), ['podvnet-controller'], 'every write so far is the controller\'s');
  t.is(await w.record(n2!), undefined, 'unselected node gets no record');
  t.deepEqual(w.nicIPs(n2!), []);

  // demand grows: the agent reports 5 used of 8 -> one more batch, one more write
  await w.setDemand(n0!, 5);
  const grown = await waitFor('node 0 to grow to 16', async () => { const r = await w.record(n0!); return r?.status?.ips.length === 16 ? r : undefined; });
  t.deepEqual(managers(grown), ['podvnet-agent', 'podvnet-controller'], 'the agent\'s spec write is attributed to the agent');
  t.is(w.nicIPs(n0!).length, 16);
  t.is(writes(w), 3);

  const pool = await waitFor('pool status', async () => { const p = await w.pool('a'); return p?.status?.allocatedIPs === 24 ? p : undefined; });
  t.like(pool.status, { nodes: 2, allocatedIPs: 24, usedIPs: 5, releasedIPs: 0, observedGeneration: 1 });
  t.is(pool.status!.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
  t.deepEqual(pool.metadata.finalizers, ['podvnet.io/release-ip-configs']);
});

test('scale-down: only the IPs the agent released leave the NIC, in one write; the agent then sees them gone', async (t) => {
  // long-running operations: every write is accepted, then polled to completion
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }), azureConfig: { mode: 'async', asyncDurationMs: 30 } });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', SPEC(subnet));
  const node = w.nodes[0]!.nodeName;
  await waitFor('8 IPs', async () => (await w.record(node))?.status?.ips.length === 8);
  await w.setDemand(node, 13);
  const r = await waitFor('24 IPs', async () => { const x = await w.record(node); return x?.status?.ips.length === 24 ? x : undefined; });
  const before = writes(w);
  // pods went away; the agent keeps 3 in use and gives back eight it will not hand out again
  const released = r.status!.ips.slice(16).map((i) => i.ip);
  await w.client.mergePatch(`/apis/podvnet.io/v1alpha1/nodeipallocations/${node}`, { spec: { demand: { usedIPs: 3, pendingIPs: 0 }, releasedIPs: released } });
  const after = await waitFor('16 IPs', async () => { const x = await w.record(node); return x?.status?.ips.length === 16 ? x : undefined; });
  t.is(writes(w) - before, 1, 'the removal is a single write');
  t.true((w.azure.calls().byKind['operation.get'] ?? 0) >= 3, 'the writes were long-running operations, polled');
  const left = new Set(w.nicIPs(node));
  t.true(released.every((ip) => !left.has(ip)), 'released IPs are gone from Azure');
  t.true(r.status!.ips.slice(0, 16).every((i) => left.has(i.ip)), 'every IP the agent kept is still there');
  t.false(after.status!.ips.some((i) => released.includes(i.ip)));
  // nothing more to do: no further writes although policy would shrink further (agent released no more)
  await new Promise((res) => setTimeout(res, 300));
  t.is(writes(w) - before, 1);
});

test('a scale-set node is served through the scale-set VM update', async (t) => {
  const w = await startWorld({ scenario: { scaleSets: [{ name: 'pool1', count: 1 }] }, nodeLabels: () => ({ pool: 'a' }), azureConfig: { mode: 'async', asyncDurationMs: 30 } });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', SPEC(subnet));
  const node = w.nodes[0]!;
  t.regex(node.providerID, /virtualMachineScaleSets\/pool1\/virtualMachines\/0$/);
  const r = await waitFor('8 IPs', async () => { const x = await w.record(node.nodeName); return x?.status?.ips.length === 8 ? x : undefined; });
  const calls = w.azure.calls().byKind;
  t.is(calls['vmssvm.put'], 1);
  t.is(calls['nic.put'], undefined, 'never a NIC PUT for a scale-set instance');
  t.is(r.status!.nic!.vmID.toLowerCase(), node.resourceId.toLowerCase());
  t.deepEqual(r.status!.ips.map((i) => i.ip).sort(), w.nicIPs(node.nodeName).sort());
});

test('node deletion gives its ip-configs back, then the record goes', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 2 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', SPEC(subnet));
  const [gone, stays] = w.nodes.map((n) => n.nodeName);
  await waitFor('both nodes have IPs', async () => (await w.record(gone!))?.status?.ips.length === 8 && (await w.record(stays!))?.status?.ips.length === 8);
  await w.client.delete(`/api/v1/nodes/${gone}`);
  await waitFor('record of the deleted node to go', async () => (await w.record(gone!)) === undefined);
  t.deepEqual(w.nicIPs(gone!), [], 'ip-configs returned to the subnet');
  t.is(w.nicIPs(stays!).length, 8);
  const p = await waitFor('pool counts one node', async () => { const x = await w.pool('a'); return x?.status?.nodes === 1 ? x : undefined; });
  t.is(p.status!.allocatedIPs, 8);
});

test('a node whose VM is gone from Azure still lets its record go (NIC gone counts as done)', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const n = w.nodes[0]!;
  await waitFor('IPs', async () => (await w.record(n.nodeName))?.status?.ips.length === 8);
  const vm = w.azure.state.vms.get(n.resourceId.toLowerCase())!;
  const nic = vm.nics[0]!;
  delete nic.virtualMachineId;
  w.azure.state.vms.delete(vm.key);
  w.azure.state.deleteNic(nic);
  await w.client.delete(`/api/v1/nodes/${n.nodeName}`);
  await waitFor('record to go', async () => (await w.record(n.nodeName)) === undefined);
  t.pass();
});

test('pool deletion empties every node of its ip-configs before the pool goes', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 2 }], scaleSets: [{ name: 'ss', count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('all nodes have IPs', async () => {
    for (const n of w.nodes) if ((await w.record(n.nodeName))?.status?.ips.length !== 8) return false;
    return true;
  });
  w.azure.resetCalls();
  await w.deletePool('a');
  await waitFor('pool to go', async () => (await w.pool('a')) === undefined);
  for (const n of w.nodes) {
    t.deepEqual(w.nicIPs(n.nodeName), [], `${n.nodeName} emptied`);
    t.is(await w.record(n.nodeName), undefined);
  }
  const k = w.azure.calls().byKind;
  t.is((k['nic.put'] ?? 0) + (k['vmssvm.put'] ?? 0), 3, 'one write per node');
});

test('a 412 race with another writer: the controller re-reads and keeps the other writer\'s ip-config', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }), azureConfig: { latencyByKind: { 'nic.put': 300 } } });
  t.teardown(() => w.close());
  const n = w.nodes[0]!;
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('our PUT to be on its way', () => (w.azure.calls().byKind['nic.put'] ?? 0) >= 1, 30_000, 2);
  // someone else changes the NIC meanwhile (another tool adding its own secondary IP)
  const nic = w.azure.state.nics.get(n.nicId.toLowerCase())!;
  w.azure.state.putNic(nic.id, {
    location: nic.location,
    ipConfigs: [...nic.ipConfigs.map((c) => ({ name: c.name, allocation: c.allocation, privateIPAddress: c.privateIPAddress, subnetId: c.subnet.id, primary: c.primary })),
      { name: 'other-app', allocation: 'Dynamic' as const, subnetId: n.subnetId, primary: false }],
  });
  const r = await waitFor('8 IPs', async () => { const x = await w.record(n.nodeName); return x?.status?.ips.length === 8 ? x : undefined; });
  const after = w.azure.state.nics.get(n.nicId.toLowerCase())!;
  t.truthy(after.ipConfigs.find((c) => c.name === 'other-app'), 'the foreign ip-config survives');
  t.is(after.ipConfigs.filter((c) => c.name.startsWith('podvnet-')).length, 8, 'no duplicates');
  t.is(w.azure.calls().byKind['nic.put'], 2, 'the first PUT failed on If-Match, the second went through');
  const m = await w.metrics.azureCalls.get();
  t.is(m.values.find((v) => v.labels.operation === 'nic.put' && v.labels.result === 'PreconditionFailed')?.value, 1);
  t.false(r.status!.ips.some((i) => i.ipConfigName === 'other-app'));
});

test('a 429 storm: the subscription pauses for Retry-After and every node still converges', async (t) => {
  const w = await startWorld({
    scenario: { vms: [{ count: 8 }] }, nodeLabels: () => ({ pool: 'a' }),
    // Azure has less write budget than the controller believes (another client spent it): three at once,
    // then one a second. Eight first writes only escape throttling if they spread over five seconds (a
    // refill of 3/s let a loaded machine's slower rounds through without a single 429).
    azureConfig: { throttling: { enabled: true, writes: { capacity: 3, refillPerSecond: 1 } }, latencyByKind: { 'subnet.get': 1500 } },
  });
  t.teardown(() => w.close());
  // A loaded machine did spread them so: each node's round starts once its record is created, one after
  // another. So the pool subnet's read (one, shared by every round, before any NIC read) fails until every
  // round has started; then the rounds go on together and their first writes leave within a second.
  w.azure.injectFault({ kind: 'subnet.get', status: 503, code: 'ServiceUnavailable', message: 'Held back by the test until every round has started.', count: 100_000 });
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('every node\'s round to have started and be held at the subnet read', async () => {
    for (const n of w.nodes) if ((await w.record(n.nodeName))?.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== 'AzureError') return false;
    return true;
  }, 60_000, 50);
  t.is(w.azure.calls().byKind['nic.put'], undefined, 'no write before the gate opens');
  w.azure.clearFaults();
  await waitFor('all 8 nodes at 8 IPs', async () => {
    for (const n of w.nodes) if (w.nicIPs(n.nodeName).length !== 8) return false;
    return true;
  }, 60_000, 50);
  const c = w.azure.calls();
  t.true(c.throttled >= 1, 'Azure did throttle');
  t.true(w.limiter.pauses >= 1, 'the controller paused the subscription');
  t.is((await w.metrics.throttles.get()).values[0]!.value, c.throttled);
  t.log(`throttled ${c.throttled}, pauses ${w.limiter.pauses}, puts ${c.byKind['nic.put']}`);
  t.true(c.throttled <= 16, `throttled ${c.throttled} times: the pause keeps retries from hammering`);
  t.is(c.byKind['nic.put']! - c.throttled, 8, 'exactly one successful write per node');
  for (const n of w.nodes) t.is(w.nicIPs(n.nodeName).length, 8, `${n.nodeName}: no duplicates`);
});

/** Two nodes labelled pool=a in a /27 subnet: 27 usable addresses, the 2 primaries leave 25. */
async function tinySubnetWorld(t: ExecutionContext) {
  const w = await startWorld({
    scenario: { vnets: [{ name: 'vn', addressPrefixes: ['10.9.0.0/16'], subnets: [{ name: 's', addressPrefix: '10.9.0.0/27' }] }], vms: [{ count: 2 }] },
    nodeLabels: () => ({ pool: 'a' }),
  });
  t.teardown(() => w.close());
  const [a, b] = w.nodes.map((n) => n.nodeName) as [string, string];
  return { w, subnet: Object.values(w.subnets)[0]!, a, b };
}

test('subnet headroom: adds stop at the free addresses the subnet read showed, before Azure says SubnetIsFull; one subnet read', async (t) => {
  const { w, subnet, a, b } = await tinySubnetWorld(t);
  // 32 - 5 reserved = 27 addresses; the 2 primaries leave 25
  await w.createPool('a', SPEC(subnet, { scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 } }));
  await waitFor('both records to have IPs', async () => ((await w.record(a))?.status?.ips.length ?? 0) > 0 && ((await w.record(b))?.status?.ips.length ?? 0) > 0);
  // both nodes get busy: each wants 32, together far more than the subnet has
  await w.setDemand(a, 10);
  await w.setDemand(b, 10);
  const total = () => w.nicIPs(a).length + w.nicIPs(b).length;
  await waitFor('subnet filled to the last address', () => total() === 25);
  const pool = await waitFor('SubnetExhausted', async () => {
    const p = await w.pool('a');
    return p?.status?.conditions?.find((c) => c.type === 'SubnetExhausted' && c.status === 'True') ? p : undefined;
  });
  t.is(pool.status!.conditions!.find((c) => c.type === 'SubnetExhausted')!.reason, 'NoFreeAddresses');
  const m = await w.metrics.azureCalls.get();
  t.is(m.values.filter((v) => v.labels.result === 'SubnetFull').length, 0, 'Azure never had to refuse an add');
  t.is(w.azure.calls().byKind['subnet.get'], 1, 'one subnet read for the pool, none per node');
  t.is(w.azure.calls().byKind['vnet.get'], 1);
  const events = await w.client.get<{ items: Array<{ reason: string; regarding: { kind: string } }> }>('/apis/events.k8s.io/v1/namespaces/default/events');
  t.true(events.items.some((e) => e.reason === 'SubnetFull' && e.regarding.kind === 'NodeIPAllocation'));
  const writesWhileFull = w.azure.calls().byKind['nic.put']!;
  t.true(writesWhileFull <= 6, `${writesWhileFull} NIC writes: 2 first batches, then at most 2 each, no write asking for what is not there`);
  // each node needs 18 (10 used + 8 free) and 36 do not fit in 25: at least one says it is short
  const reasons = await Promise.all([a, b].map(async (n) => (await w.record(n))!.status!.conditions!.find((c) => c.type === 'Ready')!.reason));
  t.true(reasons.includes('SubnetFull'), reasons.join(', '));
  // A round already under way when the last record turned short may still read its NIC; let it finish
  // (quiet for longer than the 300 ms backoff, so a node polling for room never looks settled).
  await waitForQuiet('NIC reads and writes', () => (w.azure.calls().byKind['nic.get'] ?? 0) + (w.azure.calls().byKind['nic.put'] ?? 0), 400);
  t.is(w.azure.calls().byKind['nic.put'], writesWhileFull, 'no writes while the subnet has no room');
  const readsWhileFull = w.azure.calls().byKind['nic.get'];
  await new Promise((r) => setTimeout(r, 1000));
  t.is(w.azure.calls().byKind['nic.put'], writesWhileFull, 'no writes while the subnet has no room');
  t.is(w.azure.calls().byKind['nic.get'], readsWhileFull, 'nor NIC reads: a short node waits for room, it does not poll (backoff here is 300 ms)');

  // one node leaves: its addresses come back and the other node grows into them at once (it was not polling)
  const [big, small] = w.nicIPs(a).length >= w.nicIPs(b).length ? [a, b] : [b, a];
  const before = w.nicIPs(small).length;
  await w.client.delete(`/api/v1/nodes/${big}`);
  const grown = await waitFor('the remaining node to take the freed room', async () => {
    const r = await w.record(small);
    return r?.status?.ips.length === 25 ? r : undefined;
  });
  t.true(before < 25, `grew from ${before}`);
  t.is(w.nicIPs(small).length, 25);
  // it wants 32 (10 used, batches of 16): still short, still saying so
  t.is(grown.status!.conditions!.find((c) => c.type === 'Ready')!.reason, 'SubnetFull');
  t.is(w.azure.calls().byKind['subnet.get'], 1, 'the released addresses were counted, not re-read');

  // demand falls: nobody is short any more, so the pool's SubnetExhausted clears (the subnet is still packed)
  await w.setDemand(small, 2);
  await waitFor('Synced', async () => (await w.record(small))?.status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'Synced');
  await waitFor('exhaustion to clear', async () => (await w.pool('a'))?.status?.conditions?.find((c) => c.type === 'SubnetExhausted')?.status === 'False');
});

test('SubnetIsFull (someone else took the room): smaller batches, pool condition and event, the subnet read once more', async (t) => {
  const { w, subnet, a, b } = await tinySubnetWorld(t);
  await w.createPool('a', SPEC(subnet, { scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } }));
  await waitFor('records', async () => (await w.record(a))?.status?.ips.length === 8 && (await w.record(b))?.status?.ips.length === 8);
  t.is(w.azure.calls().byKind['subnet.get'], 1);
  // 25 - 16 = 9 left by our count; another tenant of the subnet takes 7 of them behind our back
  const outsider = subnet.replace(/\/providers\/Microsoft\.Network\/virtualNetworks\/.*$/, '/providers/Microsoft.Network/networkInterfaces/outsider');
  w.azure.state.putNic(outsider, { location: 'westeurope', ipConfigs: Array.from({ length: 7 }, (_, i) => ({ name: `c${i}`, allocation: 'Dynamic' as const, subnetId: subnet, primary: i === 0 })) });
  await w.setDemand(a, 6);
  await w.setDemand(b, 6);
  const pool = await waitFor('SubnetExhausted', async () => {
    const p = await w.pool('a');
    return p?.status?.conditions?.find((c) => c.type === 'SubnetExhausted' && c.status === 'True') ? p : undefined;
  });
  t.regex(pool.status!.conditions!.find((c) => c.type === 'SubnetExhausted')!.reason, /^(SubnetIsFull|NoFreeAddresses)$/);
  await waitFor('the last 2 addresses taken', () => w.nicIPs(a).length + w.nicIPs(b).length === 18);
  const m = await w.metrics.azureCalls.get();
  t.true((m.values.find((v) => v.labels.operation === 'nic.put' && v.labels.result === 'SubnetFull')?.value ?? 0) >= 1);
  const events = await w.client.get<{ items: Array<{ reason: string; regarding: { kind: string } }> }>('/apis/events.k8s.io/v1/namespaces/default/events');
  t.true(events.items.some((e) => e.reason === 'SubnetIsFull' && e.regarding.kind === 'NodeIPPool'));
  t.true(events.items.some((e) => e.reason === 'SubnetIsFull' && e.regarding.kind === 'NodeIPAllocation'));
  await new Promise((r) => setTimeout(r, 700));
  t.is(w.azure.calls().byKind['subnet.get'], 2, 'SubnetIsFull dropped the cached read once; the second read counted right');
  const fullWrites = w.azure.calls().byKind['nic.put']!;
  t.true(fullWrites <= 8, `${fullWrites} NIC writes: no hot loop`);
});

test('records carry the Argo CD ignore-updates annotation and none of the pool\'s labels or annotations; older records get it', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  await w.client.create('/apis/podvnet.io/v1alpha1/nodeippools', {
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool',
    metadata: { name: 'a', labels: { 'app.kubernetes.io/instance': 'podvnet', team: 'net' }, annotations: { 'argocd.argoproj.io/sync-wave': '1', note: 'x' } },
    spec: SPEC(Object.values(w.subnets)[0]!),
  });
  const n = w.nodes[0]!;
  const r = await waitFor('record', async () => { const x = await w.record(n.nodeName); return x?.status?.ips.length === 8 ? x : undefined; });
  t.deepEqual(r.metadata.labels, { 'podvnet.io/pool': 'a' });
  t.deepEqual(r.metadata.annotations, { 'argocd.argoproj.io/ignore-resource-updates': 'true', 'podvnet.io/provider-id': n.providerID });

  // a record from an older controller, without the annotation: the next round adds it
  await w.controller.stop();
  await w.client.mergePatch(`/apis/podvnet.io/v1alpha1/nodeipallocations/${n.nodeName}`, { metadata: { annotations: { 'argocd.argoproj.io/ignore-resource-updates': null } } });
  t.is((await w.record(n.nodeName))!.metadata.annotations?.['argocd.argoproj.io/ignore-resource-updates'], undefined);
  await w.restartController();
  await waitFor('annotation back', async () => (await w.record(n.nodeName))?.metadata.annotations?.['argocd.argoproj.io/ignore-resource-updates'] === 'true');
});

test('restart in the middle converges without duplicates, even when status was never written', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 4 }] }, nodeLabels: () => ({ pool: 'a' }), azureConfig: { latencyByKind: { 'nic.put': 150 } } });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('writes under way', () => (w.azure.calls().byKind['nic.put'] ?? 0) >= 2, 30_000, 2);
  await w.restartController();
  await waitFor('all nodes at 8', async () => {
    for (const n of w.nodes) if ((await w.record(n.nodeName))?.status?.ips.length !== 8) return false;
    return true;
  });
  const writesBefore = w.azure.calls().byKind['nic.put']!;
  t.is(writesBefore, 4, 'each node written exactly once across the restart');

  // a crash between the Azure write and the status write: Azure has the IPs, the records do not
  await w.controller.stop();
  for (const n of w.nodes) await w.client.mergePatch(`/apis/podvnet.io/v1alpha1/nodeipallocations/${n.nodeName}/status`, { status: { ips: [], allocatedIPs: 0 } });
  await w.restartController();
  await waitFor('status restored from Azure', async () => {
    for (const n of w.nodes) if ((await w.record(n.nodeName))?.status?.ips.length !== 8) return false;
    return true;
  });
  t.is(w.azure.calls().byKind['nic.put'], writesBefore, 'no new writes: the NICs already had the IPs');
  for (const n of w.nodes) t.is(w.nicIPs(n.nodeName).length, 8);
});

test('overlapping pools: the oldest wins, the other says so; a relabeled node moves and its IPs are given back first', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a', tier: 'x' }) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  const node = w.nodes[0]!.nodeName;
  await w.createPool('a', SPEC(subnet));
  await waitFor('record in a', async () => (await w.record(node))?.status?.ips.length === 8);
  await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has one-second resolution
  await w.createPool('b', SPEC(subnet, { nodeSelector: { matchLabels: { tier: 'x' } }, scaling: { batchSize: 4, requestThresholdPercent: 50, releaseThresholdPercent: 150 } }));
  const b = await waitFor('b degraded', async () => {
    const p = await w.pool('b');
    return p?.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True') ? p : undefined;
  });
  t.is(b.status!.conditions!.find((c) => c.type === 'Degraded')!.reason, 'OverlappingPools');
  t.is((await w.record(node))!.spec.poolName, 'a');

  const oldIPs = w.nicIPs(node);
  t.truthy(oldIPs.length);
  await w.client.mergePatch(`/api/v1/nodes/${node}`, { metadata: { labels: { pool: null } } });
  const moved = await waitFor('record now in b', async () => {
    const r = await w.record(node);
    return r?.spec.poolName === 'b' && r.status?.ips.length === 4 ? r : undefined;
  });
  t.is(moved.metadata.ownerReferences?.find((o) => o.controller)?.name, 'b');
  t.is(w.nicIPs(node).length, 4, 'the old pool\'s 8 went back before the new pool\'s 4 came');
});

test('a NIC busy with another operation is retried after its Retry-After, without pausing the subscription', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  w.azure.injectFault({ kind: 'nic.put', status: 429, code: 'RetryableError', message: 'A retryable error occurred.', details: [{ code: 'RetryableErrorDueToAnotherOperation', message: 'Operation PutNetworkInterface is updating the NIC' }], retryAfterSeconds: 1 });
  w.azure.injectFault({ kind: 'nic.put', status: 409, code: 'AnotherOperationInProgress', message: 'Another operation on this or dependent resource is in progress.', retryAfterSeconds: 1 });
  const start = Date.now();
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const n = w.nodes[0]!.nodeName;
  await waitFor('IPs', async () => (await w.record(n))?.status?.ips.length === 8);
  t.true(Date.now() - start >= 1900, 'waited out both Retry-Afters');
  t.is(w.azure.calls().byKind['nic.put'], 3);
  t.is(w.limiter.pauses, 0, 'a busy NIC is not a throttled subscription');
  const m = await w.metrics.azureCalls.get();
  t.is(m.values.find((v) => v.labels.operation === 'nic.put' && v.labels.result === 'Conflict')?.value, 2);
});

test('a pool spec change re-plans every node and is acknowledged in observedGeneration', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 2 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('pool at generation 1', async () => (await w.pool('a'))?.status?.allocatedIPs === 16);
  await w.client.mergePatch('/apis/podvnet.io/v1alpha1/nodeippools/a', { spec: { ipsPerNode: { min: 20, max: 64 } } });
  const p = await waitFor('min raised', async () => { const x = await w.pool('a'); return x?.status?.allocatedIPs === 40 && x.status.observedGeneration === 2 ? x : undefined; });
  t.true(p.status!.conditions!.every((c) => c.observedGeneration === 2));
  for (const n of w.nodes) t.is(w.nicIPs(n.nodeName).length, 20);
});

test('nodes Azure cannot resolve: bad providerID or missing VM show in record, event and pool Degraded', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const missing = w.nodes[0]!.providerID.replace(/vm-0$/, 'vm-missing');
  await w.client.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'ghost', labels: { pool: 'a' } }, spec: { providerID: missing } });
  await w.client.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'onprem', labels: { pool: 'a' } }, spec: { providerID: 'kind://docker/onprem' } });
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const ghost = await waitFor('ghost not ready', async () => { const r = await w.record('ghost'); return r?.status?.conditions?.[0]?.reason === 'NICNotFound' ? r : undefined; });
  t.is(ghost.status!.conditions![0]!.status, 'False');
  const onprem = await waitFor('onprem not ready', async () => { const r = await w.record('onprem'); return r?.status?.conditions?.[0]?.reason === 'InvalidProviderID' ? r : undefined; });
  t.regex(onprem.status!.conditions![0]!.message, /not an Azure one/);
  const pool = await waitFor('pool degraded', async () => { const p = await w.pool('a'); return p?.status?.allocatedIPs === 8 && p.status.conditions?.find((c) => c.type === 'Degraded')?.status === 'True' ? p : undefined; });
  t.like(pool.status, { nodes: 3, allocatedIPs: 8 });
  t.is(pool.status!.conditions!.find((c) => c.type === 'Degraded')!.reason, 'NodesWithoutNIC');
  t.is(pool.status!.conditions!.find((c) => c.type === 'Ready')!.status, 'False');
  const events = await w.client.get<{ items: Array<{ reason: string; regarding: { name: string } }> }>('/apis/events.k8s.io/v1/namespaces/default/events');
  t.true(events.items.some((e) => e.reason === 'NICNotFound' && e.regarding.name === 'ghost'));
  t.true(events.items.some((e) => e.reason === 'InvalidProviderID' && e.regarding.name === 'onprem'));
});

test('every record status write says which generation of the record it answers, failures included', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  w.azure.injectFault({ kind: 'nic.put', status: 403, code: 'AuthorizationFailed', message: 'The client does not have authorization.', count: 1000 });
  const missing = w.nodes[0]!.providerID.replace(/vm-0$/, 'vm-missing');
  await w.client.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'ghost', labels: { pool: 'a' } }, spec: { providerID: missing } });
  await w.client.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'onprem', labels: { pool: 'a' } }, spec: { providerID: 'kind://docker/onprem' } });
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const cases: Array<[string, string]> = [[w.nodes[0]!.nodeName, 'AzureError'], ['ghost', 'NICNotFound'], ['onprem', 'InvalidProviderID']];
  for (const [node, reason] of cases) {
    const r = await waitFor(`${node}: ${reason}`, async () => { const x = await w.record(node); return x?.status?.conditions?.[0]?.reason === reason ? x : undefined; });
    t.is(r.status!.observedGeneration, r.metadata.generation, `${node} (${reason}): status.observedGeneration`);
    t.is(r.status!.conditions![0]!.observedGeneration, r.metadata.generation, `${node} (${reason}): the Ready condition's observedGeneration`);
  }
  // The agent's next spec write is a new generation: the same failure, said again, now observes that one.
  for (const [node, reason] of cases) {
    await w.setDemand(node, 1);
    const r = await waitFor(`${node}: the new generation observed`, async () => {
      const x = await w.record(node);
      return x && x.metadata.generation === 2 && x.status?.observedGeneration === 2 ? x : undefined;
    });
    t.is(r.status!.conditions![0]!.reason, reason);
  }
});

test('kubelet heartbeats and agent status churn cost no Azure calls; demand changes do', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const n = w.nodes[0]!.nodeName;
  await waitFor('IPs', async () => (await w.record(n))?.status?.ips.length === 8);
  // the round that follows the controller's own status write may still be reading: let it finish
  await waitForQuiet('Azure calls', () => w.azure.calls().total);
  w.azure.resetCalls();
  for (let i = 0; i < 10; i++) {
    await w.client.mergePatch(`/api/v1/nodes/${n}/status`, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: `beat ${i}`, lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: '2026-01-01T00:00:00Z' }] } });
    await w.client.mergePatch(`/api/v1/nodes/${n}`, { metadata: { annotations: { 'node.alpha.kubernetes.io/ttl': String(i) } } });
  }
  await new Promise((r) => setTimeout(r, 500));
  t.is(w.azure.calls().total, 0, 'no Azure call for Node churn');
  await w.setDemand(n, 2);
  await waitFor('a round for the demand change', () => w.azure.calls().total > 0);
  await waitForQuiet('Azure calls', () => w.azure.calls().total);
  t.deepEqual(w.azure.calls().byKind, { 'nic.get': 1 }, 'demand within the batch: one read, no write');
});

test('an Azure error that is no race (missing role assignment) shows on the record, in an event and on the pool, and is retried', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  w.azure.injectFault({ kind: 'nic.put', status: 403, code: 'AuthorizationFailed', message: "The client does not have authorization to perform action 'Microsoft.Network/networkInterfaces/write'.", count: 3 });
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  const n = w.nodes[0]!.nodeName;
  const r = await waitFor('AzureError on the record', async () => { const x = await w.record(n); return x?.status?.conditions?.[0]?.reason === 'AzureError' ? x : undefined; });
  t.regex(r.status!.conditions![0]!.message, /nic\.put: AuthorizationFailed: .*networkInterfaces\/write/);
  await waitFor('pool not ready', async () => (await w.pool('a'))?.status?.conditions?.find((c) => c.type === 'Ready')?.message.includes('AzureError'));
  // once the role is fixed (the fault runs out) the backoff retries get through
  await waitFor('IPs after the retries', async () => (await w.record(n))?.status?.ips.length === 8);
  t.is(w.azure.calls().byKind['nic.put'], 4);
  const events = await w.client.get<{ items: Array<{ reason: string }> }>('/apis/events.k8s.io/v1/namespaces/default/events');
  t.true(events.items.some((e) => e.reason === 'AzureError'));
  t.is((await w.record(n))!.status!.conditions![0]!.reason, 'Synced');
});

test('the pool subnet is read once per resync interval however many nodes resync', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 12 }] }, nodeLabels: () => ({ pool: 'a' }), controller: { resyncMs: 500 } });
  t.teardown(() => w.close());
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  await waitFor('all nodes at 8', async () => {
    for (const n of w.nodes) if ((await w.record(n.nodeName))?.status?.ips.length !== 8) return false;
    return true;
  });
  const start = Date.now();
  w.azure.resetCalls();
  // Nominally 1.6 s; on a loaded machine the resyncs come later, so wait for them rather than a clock,
  // and bound the subnet reads by the time that really passed.
  await new Promise((r) => setTimeout(r, 1600));
  await waitFor('every node to resync at least twice', () => (w.azure.calls().byKind['nic.get'] ?? 0) >= 24);
  const calls = w.azure.calls().byKind;
  const elapsed = Date.now() - start;
  const reads = calls['subnet.get'] ?? 0;
  t.true(reads >= 2 && reads <= Math.ceil(elapsed / 500) + 1, `${reads} subnet reads in ${elapsed} ms: the cache follows the resync interval, not per node`);
  t.is(calls['vnet.get'], reads);
});

test('a role without subnets/read (an upgrade before the role caught up): nodes are still served, the pool says why headroom is unknown', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 2 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  w.azure.injectFault({ kind: 'subnet.get', status: 403, code: 'AuthorizationFailed', message: "The client does not have authorization to perform action 'Microsoft.Network/virtualNetworks/subnets/read'.", count: 1000 });
  await w.createPool('a', SPEC(Object.values(w.subnets)[0]!));
  for (const n of w.nodes) await waitFor('IPs', async () => (await w.record(n.nodeName))?.status?.ips.length === 8);
  const events = await waitFor('event', async () => {
    const list = await w.client.get<{ items: Array<{ reason: string; regarding: { kind: string }; note: string }> }>('/apis/events.k8s.io/v1/namespaces/default/events');
    return list.items.find((e) => e.reason === 'SubnetReadFailed') ? list : undefined;
  });
  const e = events.items.filter((x) => x.reason === 'SubnetReadFailed');
  t.is(e.length, 1, 'said once, not per node');
  t.is(e[0]!.regarding.kind, 'NodeIPPool');
  t.regex(e[0]!.note, /subnets\/read/);
});

const TWO_SUBNETS = {
  vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.240.0.0/16' }, { name: 'pods', addressPrefix: '10.241.0.0/16' }] }],
  vms: [{ count: 1, subnet: 'nodes' }],
};

type EventList = { items: Array<{ reason: string; type: string; note: string; regarding: { name: string } }> };

test('a pool subnet Azure will not put on the node\'s NIC: its own reason saying what to do, one event, no Azure call while backing off; the node\'s subnet fixes it', async (t) => {
  const w = await startWorld({ scenario: TWO_SUBNETS, nodeLabels: () => ({ pool: 'a' }), controller: { subnetNotAllowedBackoffMs: 60_000 } });
  t.teardown(() => w.close());
  const nodesSubnet = w.subnets['vnet/nodes']!;
  const podsSubnet = w.subnets['vnet/pods']!;
  await w.createPool('a', SPEC(podsSubnet));
  const n = w.nodes[0]!.nodeName;
  const r = await waitFor('the refusal on the record', async () => { const x = await w.record(n); return x?.status?.conditions?.[0]?.reason === 'SubnetNotAllowedOnNIC' ? x : undefined; });
  const cond = r.status!.conditions![0]!;
  t.is(cond.status, 'False');
  t.true(cond.message.includes(nodesSubnet), 'names the NIC\'s primary subnet');
  t.true(cond.message.includes(podsSubnet), 'names the pool\'s subnet');
  t.regex(cond.message, /a pool whose subnetID is the node's subnet/);
  t.regex(cond.message, /ip-configs from several subnets/);
  t.is(w.azure.calls().byKind['nic.put'], 1);

  // The agent's demand updates bring the node round again, but not to Azure.
  const before = w.azure.calls().total;
  for (let i = 1; i <= 5; i++) {
    await w.setDemand(n, i);
    await new Promise((res) => setTimeout(res, 30));
  }
  await waitFor('the last demand observed', async () => { const x = await w.record(n); return x?.status?.observedGeneration === x?.metadata.generation; });
  t.is(w.azure.calls().total, before, 'no Azure call while backing off');
  t.is((await w.record(n))!.status!.conditions![0]!.reason, 'SubnetNotAllowedOnNIC');

  const events = await w.client.get<EventList>('/apis/events.k8s.io/v1/namespaces/default/events');
  const refused = events.items.filter((e) => e.reason === 'SubnetNotAllowedOnNIC');
  t.is(refused.length, 1);
  t.is(refused[0]!.type, 'Warning');
  t.is(refused[0]!.regarding.name, n);
  t.false(events.items.some((e) => e.reason === 'AzureError'), 'not reported as a generic Azure error');
  const pool = await waitFor('pool degraded', async () => { const p = await w.pool('a'); return p?.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True') ? p : undefined; });
  t.is(pool.status!.conditions!.find((c) => c.type === 'Degraded')!.reason, 'SubnetNotAllowedOnNIC');

  // What the message says to do: a pool of the node's subnet instead; served at once, not after the backoff.
  await w.createPool('b', SPEC(nodesSubnet));
  await w.deletePool('a');
  const ok = await waitFor('served from the node\'s subnet', async () => { const x = await w.record(n); return x?.spec.poolName === 'b' && x.status?.conditions?.[0]?.reason === 'Synced' ? x : undefined; }, 30_000); // well inside the 60 s backoff
  t.like(ok.status, { subnet: { id: nodesSubnet, addressPrefix: '10.240.0.0/16' } });
  t.true(ok.status!.ips.length >= 8);
  t.true(w.nicIPs(n).every((ip) => ip.startsWith('10.240.')));
});

test('a refused pool subnet is tried again after a doubling backoff, and served once Azure allows several subnets per NIC', async (t) => {
  const w = await startWorld({ scenario: TWO_SUBNETS, nodeLabels: () => ({ pool: 'a' }), controller: { subnetNotAllowedBackoffMs: 400 } });
  t.teardown(() => w.close());
  const podsSubnet = w.subnets['vnet/pods']!;
  const created = Date.now();
  await w.createPool('a', SPEC(podsSubnet));
  const n = w.nodes[0]!.nodeName;
  const puts = () => w.azure.calls().byKind['nic.put'] ?? 0;
  await waitFor('the first try', () => puts() === 1);
  const start = Date.now(); // the first try was at or before this
  await waitFor('a second try after the backoff', () => puts() >= 2);
  const left = 2000 - (Date.now() - start);
  if (left > 0) await new Promise((res) => setTimeout(res, left));
  // Tries at 0, 0.4, 1.2, 2.8, 6 s...: at most three in the first two seconds. A retry with the work
  // queue's backoff (50 ms doubling) would have made six. A loaded machine may stretch the wait past
  // two seconds; the bound follows the time that really passed since before the first try.
  const tries = puts();
  const since = Date.now() - created;
  const allowed = [0, 400, 1200, 2800, 6000, 12_400].filter((at) => at <= since).length;
  t.true(tries >= 2 && tries <= allowed, `${tries} tries within ${since} ms of creating the pool (at most ${allowed})`);
  w.azure.configure({ allowMultipleSubnetsPerNic: true });
  const ok = await waitFor('IPs of the pod subnet', async () => { const x = await w.record(n); return x?.status?.conditions?.[0]?.reason === 'Synced' ? x : undefined; });
  t.is(puts(), tries + 1, 'one more try, and it went through');
  t.like(ok.status, { subnet: { id: podsSubnet, addressPrefix: '10.241.0.0/16', gatewayIP: '10.241.0.1' } });
  t.deepEqual(ok.status!.ips.map((i) => i.ip).sort(), w.nicIPs(n).sort());
  t.is(ok.status!.ips.length, 8);
  t.true(w.nicIPs(n).every((ip) => ip.startsWith('10.241.')));
});
