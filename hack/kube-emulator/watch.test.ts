// Property: a client that lists with a selector and then applies the watch events it is sent (from
// the list's resourceVersion) ends with exactly what a fresh list returns, for any sequence of writes.
import test from 'ava';
import fc from 'fast-check';
import { Api } from './api.js';
import { Store } from './store.js';

type Op = { op: 'create' | 'label' | 'delete'; name: number; value: number };

const opArb: fc.Arbitrary<Op> = fc.record({ op: fc.constantFrom('create', 'label', 'delete'), name: fc.nat(5), value: fc.nat(2) });

test('list + watch events reconstruct the selected set at every point', (t) => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 25 }), fc.array(opArb, { maxLength: 25 }), fc.constantFrom('tier=1', 'tier!=1', 'tier in (0,2)', '!tier'), (before, after, labelSelector) => {
    const api = new Api(new Store());
    const nodes = api.type('', 'v1', 'nodes');
    const run = (ops: Op[]) => {
      for (const o of ops) {
        const name = `n${o.name}`;
        try {
          if (o.op === 'create') api.create(nodes, '', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: o.value === 2 ? {} : { tier: String(o.value) } } }, {});
          else if (o.op === 'label') api.patch(nodes, '', name, 'application/merge-patch+json', JSON.stringify({ metadata: { labels: { tier: o.value === 2 ? null : String(o.value) } } }), {});
          else api.delete(nodes, '', name, {});
        } catch { /* 404 / 409 are part of the game */ }
      }
    };
    run(before);
    const first = api.list(nodes, '', { labelSelector });
    const cache = new Map<string, string>(first.items.map((o: any) => [o.metadata.name, o.metadata.resourceVersion]));
    run(after);
    const sel = api.parseSelectors(nodes, { labelSelector });
    for (const e of api.store.eventsSince(nodes.bucket, Number(first.metadata.resourceVersion))!) {
      const type = api.watchEventType(nodes, sel, e);
      if (type === 'DELETED') cache.delete(e.obj.metadata.name);
      else if (type) cache.set(e.obj.metadata.name, e.obj.metadata.resourceVersion);
    }
    const fresh = api.list(nodes, '', { labelSelector });
    const want = new Map<string, string>(fresh.items.map((o: any) => [o.metadata.name, o.metadata.resourceVersion]));
    return JSON.stringify([...cache].sort()) === JSON.stringify([...want].sort());
  }), { numRuns: 200 });
  t.pass();
});

test('resourceVersions are strictly increasing across resources, and Exact lists replay history', (t) => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
    const api = new Api(new Store());
    const nodes = api.type('', 'v1', 'nodes');
    const seen: number[] = [];
    const snapshots: [number, string][] = [];
    for (const o of ops) {
      try {
        const name = `n${o.name}`;
        const r = o.op === 'create' ? api.create(nodes, '', { apiVersion: 'v1', kind: 'Node', metadata: { name } }, {}).obj
          : o.op === 'label' ? api.patch(nodes, '', name, 'application/merge-patch+json', JSON.stringify({ metadata: { labels: { v: String(seen.length) } } }), {}).obj
            : api.delete(nodes, '', name, {}).obj;
        seen.push(Number(r.metadata.resourceVersion));
        const rv = api.store.currentRV();
        snapshots.push([rv, JSON.stringify(api.list(nodes, '', {}).items)]);
      } catch { /* ignore */ }
    }
    for (let i = 1; i < seen.length; i++) if (!(seen[i]! > seen[i - 1]!)) return false;
    return snapshots.every(([rv, items]) => JSON.stringify(api.list(nodes, '', { resourceVersion: String(rv), resourceVersionMatch: 'Exact' }).items) === items);
  }), { numRuns: 100 });
  t.pass();
});
