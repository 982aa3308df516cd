// Scale: 5,000 Nodes and 5,000 custom resources, listed in pages and followed by watches, as the
// controller benchmark will. Asserts completeness and ordering; logs the timings.
import test from 'ava';
import { call, openWatch, withWidgets, W } from './testing/index.js';

test('5,000 nodes and 5,000 custom resources: paged lists are complete and watches see every event', async (t) => {
  const emu = await withWidgets(t, { tls: false });
  const nodes = emu.api.type('', 'v1', 'nodes');
  const widgets = emu.api.type('test.podvnet.io', 'v1', 'widgets');
  const start = emu.store.currentRV();
  const nodeWatch = openWatch(emu, `/api/v1/nodes?watch=true&resourceVersion=${start}`);
  const widgetWatch = openWatch(emu, `${W}?watch=true&resourceVersion=${start}&labelSelector=half%3Da`);
  const N = 5000;
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    emu.api.create(nodes, '', { apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${String(i).padStart(5, '0')}` } }, {});
    emu.api.create(widgets, '', { apiVersion: 'test.podvnet.io/v1', kind: 'Widget', metadata: { name: `w-${i}`, labels: { half: i % 2 ? 'a' : 'b' } }, spec: { size: 3, owner: 'ann', tags: ['t-x'] } }, {});
  }
  const createMs = performance.now() - t0;
  t0 = performance.now();
  const names: string[] = [];
  let cont = '';
  let pages = 0;
  do {
    const r = await call(emu, 'GET', `/api/v1/nodes?limit=500${cont ? `&continue=${cont}` : ''}`);
    names.push(...r.json.items.map((n: any) => n.metadata.name));
    cont = r.json.metadata.continue ?? '';
    pages++;
  } while (cont);
  const pagedMs = performance.now() - t0;
  t.is(pages, 10);
  t.is(names.length, N);
  t.deepEqual(names, [...names].sort());
  t0 = performance.now();
  const full = await call(emu, 'GET', W);
  const listMs = performance.now() - t0;
  t.is(full.json.items.length, N);
  await nodeWatch.next(N, 20_000);
  await widgetWatch.next(N / 2, 20_000);
  t.true(nodeWatch.events.every((e) => e.type === 'ADDED'));
  t.true(widgetWatch.events.every((e) => e.object.metadata.labels.half === 'a'));
  // single-object writes stay cheap with 10,000 objects stored
  t0 = performance.now();
  for (let i = 0; i < 1000; i++) {
    emu.api.patch(widgets, '', `w-${i}`, 'application/merge-patch+json', JSON.stringify({ status: { observedGeneration: 1 } }), { subresource: 'status' });
  }
  const patchMs = performance.now() - t0;
  nodeWatch.close();
  widgetWatch.close();
  t.log(`create ${2 * N} objects: ${createMs.toFixed(0)} ms; 10 pages of nodes: ${pagedMs.toFixed(0)} ms; list ${N} widgets: ${listMs.toFixed(0)} ms; 1000 status patches: ${patchMs.toFixed(0)} ms`);
});

test('writes of objects with large list-type=map lists cost linear time in the list size', async (t) => {
  const emu = await withWidgets(t, { tls: false });
  const widgets = emu.api.type('test.podvnet.io', 'v1', 'widgets');
  const ports = (n: number, k: number) => Array.from({ length: n }, (_, i) => ({ name: `p${i}`, port: i + k }));
  const timeWrites = (name: string, n: number): number => {
    emu.api.create(widgets, '', { apiVersion: 'test.podvnet.io/v1', kind: 'Widget', metadata: { name }, spec: { size: 3, owner: 'ann', ports: ports(n, 0) } }, {});
    const t0 = performance.now();
    for (let k = 1; k <= 20; k++) {
      emu.api.patch(widgets, '', name, 'application/apply-patch+yaml', JSON.stringify({ apiVersion: 'test.podvnet.io/v1', kind: 'Widget', metadata: { name }, spec: { size: 3, owner: 'ann', ports: ports(n, k) } }), { fieldManager: 'bench', force: true });
    }
    return (performance.now() - t0) / 20;
  };
  timeWrites('warm', 50);
  const small = timeWrites('small', 25);
  const large = timeWrites('large', 250);
  t.log(`server-side apply with 25 list items: ${small.toFixed(2)} ms, with 250: ${large.toFixed(2)} ms`);
  // 10x the items: linear work is ~10x; the quadratic version this guards against was ~100x
  t.true(large / small < 35, `ratio ${(large / small).toFixed(1)}`);
});
