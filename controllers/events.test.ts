import test from 'ava';
import fc from 'fast-check';
import { pino } from 'pino';
import { startKubeEmulator } from '../hack/kube-emulator/index.js';
import {
  DEFAULT_REPEAT_POLICY, EventRecorder, directionOf, foldNicChange, microTime, nicChangesEvent, repeatDecision, type NicChange, type NicChanges,
} from './events.js';
import { startWorld, waitFor } from './testing/harness.js';
import { KubeClient, PATHS } from './kube.js';

const change = (over: Partial<NicChange> = {}): NicChange => ({ node: 'vm-0', before: 8, after: 16, added: 8, removed: 0, azureMs: 1200, ...over });

const arbChange = fc.record({
  node: fc.constantFrom('vm-0', 'vm-1', 'vm-2', 'vm-3'),
  before: fc.integer({ min: 0, max: 256 }),
  after: fc.integer({ min: 0, max: 256 }),
  added: fc.integer({ min: 0, max: 64 }),
  removed: fc.integer({ min: 0, max: 64 }),
  azureMs: fc.integer({ min: 0, max: 120_000 }),
}).filter((c) => c.added + c.removed > 0);

test('folding: nothing is lost; a change of direction closes the fold; before is the first, after the last, per node', (t) => {
  fc.assert(fc.property(fc.array(arbChange, { minLength: 1, maxLength: 40 }), (changes) => {
    const closed: NicChanges[] = [];
    let pending: NicChanges | undefined;
    for (const c of changes) {
      const r = foldNicChange(pending, c);
      if (r.flush) closed.push(r.flush);
      pending = r.pending;
    }
    const all = [...closed, pending!];
    const sum = (f: (x: NicChanges) => number) => all.reduce((a, x) => a + f(x), 0);
    t.is(sum((x) => x.writes), changes.length);
    t.is(sum((x) => x.added), changes.reduce((a, c) => a + c.added, 0));
    t.is(sum((x) => x.removed), changes.reduce((a, c) => a + c.removed, 0));
    t.is(sum((x) => x.azureMs), changes.reduce((a, c) => a + c.azureMs, 0));
    // the folds are the maximal runs of one direction, in order
    let i = 0;
    for (const fold of all) {
      const run = changes.slice(i, i + fold.writes);
      i += fold.writes;
      t.true(run.every((c) => directionOf(c) === fold.direction));
      t.is(fold.longestMs, Math.max(...run.map((c) => c.azureMs)));
      t.deepEqual(fold.nodes.map((n) => n.node), [...new Set(run.map((c) => c.node))]);
      for (const n of fold.nodes) {
        const mine = run.filter((c) => c.node === n.node);
        t.is(n.before, mine[0]!.before);
        t.is(n.after, mine[mine.length - 1]!.after);
      }
    }
    for (let k = 1; k < all.length; k++) t.not(all[k]!.direction, all[k - 1]!.direction);
  }));
});

test('what a burst says: counts, before → after, how long Azure took; on the record and on the pool', (t) => {
  let f = foldNicChange(undefined, change()).pending;
  t.deepEqual(nicChangesEvent(f, 'node'), { type: 'Normal', reason: 'IPsAdded', action: 'AddIPs', note: 'added 8 IPs in 1 NIC write: 8 → 16 IPs on the NIC; Azure took 1.2 s' });
  f = foldNicChange(f, change({ before: 16, after: 24, azureMs: 2500 })).pending;
  f = foldNicChange(f, change({ before: 24, after: 32, azureMs: 800 })).pending;
  t.is(nicChangesEvent(f, 'node').note, 'added 24 IPs in 3 NIC writes: 8 → 32 IPs on the NIC; Azure took 4.5 s in all, the longest write 2.5 s');
  for (const n of ['vm-1', 'vm-2', 'vm-3', 'vm-4']) f = foldNicChange(f, change({ node: n, before: 4, after: 12, azureMs: 100 })).pending;
  t.is(nicChangesEvent(f, 'pool').note, 'added 56 IPs in 7 NIC writes on 5 nodes (vm-0 8 → 32, vm-1 4 → 12, vm-2 4 → 12 and 2 more); Azure took 4.9 s in all, the longest write 2.5 s');
  const released = foldNicChange(undefined, change({ before: 32, after: 8, added: 0, removed: 24, azureMs: 30_500 })).pending;
  t.deepEqual(nicChangesEvent(released, 'node'), { type: 'Normal', reason: 'IPsReleased', action: 'RemoveIPs', note: 'removed 24 released IPs in 1 NIC write: 32 → 8 IPs on the NIC; Azure took 31 s' });
  const one = foldNicChange(undefined, change({ added: 1, removed: 1, before: 8, after: 8 })).pending;
  t.is(nicChangesEvent(one, 'node').reason, 'IPsChanged');
  t.is(nicChangesEvent(one, 'node').note.slice(0, 42), 'added 1 IP and removed 1 released IP in 1 ');
});

test('repeats: a series within the window; a new note gets its own event at most once per minNewEventMs', (t) => {
  const p = DEFAULT_REPEAT_POLICY;
  t.is(repeatDecision(undefined, 'x', 0), 'create');
  t.is(repeatDecision({ note: 'x', createdAt: 0, lastObservedAt: 0 }, 'x', p.seriesWindowMs - 1), 'series');
  t.is(repeatDecision({ note: 'x', createdAt: 0, lastObservedAt: 0 }, 'x', p.seriesWindowMs), 'create');
  t.is(repeatDecision({ note: 'x', createdAt: 0, lastObservedAt: 0 }, 'y', p.minNewEventMs - 1), 'series');
  t.is(repeatDecision({ note: 'x', createdAt: 0, lastObservedAt: 0 }, 'y', p.minNewEventMs), 'create');
  // however often and with whatever notes a problem recurs, it creates at most one event per minNewEventMs
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.constantFrom('a', 'b', 'c')), { minLength: 1, maxLength: 200 }), (steps) => {
    let now = 0;
    let last: { note: string; createdAt: number; lastObservedAt: number } | undefined;
    const creates: number[] = [];
    for (const [dt, note] of steps) {
      now += dt;
      if (repeatDecision(last, note, now) === 'create') { creates.push(now); last = { note, createdAt: now, lastObservedAt: now }; } else last!.lastObservedAt = now;
    }
    for (let k = 1; k < creates.length; k++) t.true(creates[k]! - creates[k - 1]! >= p.minNewEventMs);
  }));
});

test('microTime has the API server\'s six fractional digits', (t) => {
  t.is(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 67)), '2026-01-02T03:04:05.067000Z');
});

test('recorder against the API emulator: a repeating Warning is one event with a series; a burst is one Normal event per object', async (t) => {
  const kube = await startKubeEmulator();
  t.teardown(() => kube.close());
  const client = new KubeClient(kube.kubeConfig());
  const collection = PATHS.events('default');
  const rec = new EventRecorder(client, pino({ level: 'silent' }), { collection, reportingController: 'podvnet.io/controller', reportingInstance: 'test', quietMs: 200, seriesFlushMs: 100 });
  const record = { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', name: 'vm-0' };
  const pool = { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', name: 'general' };
  for (let i = 0; i < 5; i++) rec.record(record, { type: 'Warning', reason: 'SubnetFull', action: 'AddIPs', note: 'no room' });
  rec.nicChanged(record, pool, change());
  rec.nicChanged(record, pool, change({ before: 16, after: 24 }));
  rec.nicChanged({ ...record, name: 'vm-1' }, pool, change({ node: 'vm-1', before: 4, after: 12 }));
  // a Warning whose text changes within the minute joins the first one's series...
  rec.record(record, { type: 'Warning', reason: 'AzureError', action: 'Reconcile', note: 'nic.put: 500 (1)' });
  rec.record(record, { type: 'Warning', reason: 'AzureError', action: 'Reconcile', note: 'nic.put: 500 (2)' });
  // ...while a Normal event with new content is its own event, however soon after the last
  rec.record(pool, { type: 'Normal', reason: 'Note', action: 'Tell', note: 'first' });
  rec.record(pool, { type: 'Normal', reason: 'Note', action: 'Tell', note: 'second' });
  const list = async () => (await client.get<{ items: any[] }>(collection)).items;
  const events = await waitFor('seven events, the series written', async () => {
    const items = await list();
    return items.length === 7 && items.find((e) => e.reason === 'SubnetFull')?.series?.count === 5 && items.find((e) => e.reason === 'AzureError')?.series?.count === 2 ? items : undefined;
  }, 10_000);
  const by = (kind: string, name: string, reason: string) => events.filter((e) => e.regarding.kind === kind && e.regarding.name === name && e.reason === reason);
  t.is(by('NodeIPAllocation', 'vm-0', 'SubnetFull').length, 1, 'five warnings, one event');
  t.is(by('NodeIPAllocation', 'vm-0', 'SubnetFull')[0].type, 'Warning');
  t.deepEqual(by('NodeIPAllocation', 'vm-0', 'AzureError').map((e) => e.note), ['nic.put: 500 (1)']);
  t.deepEqual(by('NodeIPPool', 'general', 'Note').map((e) => e.note).sort(), ['first', 'second']);
  t.is(by('NodeIPAllocation', 'vm-0', 'IPsAdded')[0].note, 'added 16 IPs in 2 NIC writes: 8 → 24 IPs on the NIC; Azure took 2.4 s in all, the longest write 1.2 s');
  t.is(by('NodeIPAllocation', 'vm-1', 'IPsAdded')[0].note, 'added 8 IPs in 1 NIC write: 4 → 12 IPs on the NIC; Azure took 1.2 s');
  t.is(by('NodeIPPool', 'general', 'IPsAdded')[0].note, 'added 24 IPs in 3 NIC writes on 2 nodes (vm-0 8 → 24, vm-1 4 → 12); Azure took 3.6 s in all, the longest write 1.2 s');
  // kubectl shows the count from the series, through the core/v1 view
  const table = await client.request<any>('GET', '/api/v1/namespaces/default/events', undefined);
  t.is(table.items.find((e: any) => e.reason === 'SubnetFull').series.count, 5);
  await rec.flush();
});

test('the controller tells what Azure accepted: IPsAdded then IPsReleased on the record and the pool, under deploy/base RBAC', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', { nodeSelector: { matchLabels: { pool: 'a' } }, subnetID: subnet, ipsPerNode: { min: 8, max: 64 }, scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } });
  const node = w.nodes[0]!.nodeName;
  await waitFor('8 IPs', async () => (await w.record(node))?.status?.ips.length === 8);
  await w.setDemand(node, 13);
  const grown = await waitFor('24 IPs', async () => { const r = await w.record(node); return r?.status?.ips.length === 24 ? r : undefined; });
  await w.setDemand(node, 3);
  await w.release(node, grown.status!.ips.slice(8).map((i) => i.ip));
  await waitFor('8 IPs again', async () => (await w.record(node))?.status?.ips.length === 8);
  type Ev = { reason: string; type: string; note: string; regarding: { kind: string; name: string } };
  const events = await waitFor('the release events', async () => {
    const items = (await w.client.get<{ items: Ev[] }>(PATHS.events('default'))).items;
    return items.filter((e) => e.reason === 'IPsReleased').length === 2 ? items : undefined;
  }, 30_000);
  type Ev2 = Ev & { eventTime: string };
  const on = (kind: string) => (events as Ev2[]).filter((e) => e.regarding.kind === kind && e.type === 'Normal')
    .sort((a, b) => a.eventTime.localeCompare(b.eventTime)).map((e) => `${e.reason}: ${e.note.replace(/; Azure took .*$/, '')}`);
  const onRecord = on('NodeIPAllocation');
  // growth 0 -> 8 -> 24 is one event or two, depending on whether the demand came within the quiet time
  const adds = onRecord.filter((x) => x.startsWith('IPsAdded'));
  t.true(adds.length >= 1 && adds.length <= 2, onRecord.join('\n'));
  t.regex(adds[0]!, /^IPsAdded: added \d+ IPs in \d NIC writes?: 0 → \d+ IPs on the NIC$/);
  t.regex(adds[adds.length - 1]!, / → 24 IPs on the NIC$/);
  t.is(adds.reduce((a, x) => a + Number(/added (\d+) IPs/.exec(x)![1]), 0), 24, 'every IP added is told');
  t.is(onRecord[onRecord.length - 1], 'IPsReleased: removed 16 released IPs in 1 NIC write: 24 → 8 IPs on the NIC');
  t.is(on('NodeIPPool').pop(), `IPsReleased: removed 16 released IPs in 1 NIC write on 1 node (${node} 24 → 8)`);
  t.true(events.every((e) => e.type === 'Normal'), 'no warnings on a healthy run');
});

test('a Block pool\'s writes are told in /28 blocks, not IPs', (t) => {
  const f = foldNicChange(undefined, change({ added: 1, before: 1, after: 2, unit: 'block' })).pending;
  t.is(nicChangesEvent(f, 'node').note, 'added 1 /28 block in 1 NIC write: 1 → 2 blocks on the NIC; Azure took 1.2 s');
  const r = foldNicChange(undefined, change({ added: 0, removed: 2, before: 4, after: 2, unit: 'block' })).pending;
  t.is(nicChangesEvent(r, 'node').note, 'removed 2 released /28 blocks in 1 NIC write: 4 → 2 blocks on the NIC; Azure took 1.2 s');
});
