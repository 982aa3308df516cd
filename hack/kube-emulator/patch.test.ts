import test from 'ava';
import fc from 'fast-check';
import { jsonPatch, mergePatch, strategicMerge } from './patch.js';
import { ApiError } from './status.js';

test('JSON merge patch (RFC 7386 examples)', (t) => {
  t.deepEqual(mergePatch({ a: 'b' }, { a: 'c' }), { a: 'c' });
  t.deepEqual(mergePatch({ a: 'b' }, { b: 'c' }), { a: 'b', b: 'c' });
  t.deepEqual(mergePatch({ a: 'b' }, { a: null }), {});
  t.deepEqual(mergePatch({ a: [{ b: 'c' }] }, { a: [1] }), { a: [1] });
  t.deepEqual(mergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } }), { a: { b: 'd' } });
});

test('property: merge patch is idempotent', (t) => {
  const json = fc.jsonValue();
  fc.assert(fc.property(fc.dictionary(fc.string(), json), fc.dictionary(fc.string(), json), (doc, patch) => {
    const once = mergePatch(doc, patch);
    return JSON.stringify(mergePatch(once, patch)) === JSON.stringify(once);
  }));
  t.pass();
});

test('JSON patch operations and failures', (t) => {
  const doc = { a: { b: [1, 2] }, c: 'x' };
  t.deepEqual(jsonPatch(doc, [{ op: 'add', path: '/a/b/-', value: 3 }, { op: 'remove', path: '/c' }, { op: 'copy', from: '/a/b', path: '/d' }, { op: 'move', from: '/d', path: '/e' }]), { a: { b: [1, 2, 3] }, e: [1, 2, 3] });
  t.deepEqual(jsonPatch(doc, [{ op: 'replace', path: '/a~1x', value: 1 }].slice(0, 0)), doc);
  t.deepEqual(doc, { a: { b: [1, 2] }, c: 'x' }, 'input untouched');
  t.throws(() => jsonPatch(doc, [{ op: 'test', path: '/c', value: 'y' }]), { instanceOf: ApiError });
  t.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }]), { instanceOf: ApiError });
  t.throws(() => jsonPatch(doc, [{ op: 'replace', path: '/nope', value: 1 }]), { instanceOf: ApiError });
});

test('strategic merge: containers by name, $patch delete, $setElementOrder, $retainKeys, finalizers as a set', (t) => {
  const live = { spec: { containers: [{ name: 'a', image: '1' }, { name: 'b', image: '2' }] }, metadata: { finalizers: ['x'] } };
  const out = strategicMerge(live, {
    $setElementOrder$: undefined,
    spec: { '$setElementOrder/containers': [{ name: 'c' }, { name: 'a' }], containers: [{ name: 'b', $patch: 'delete' }, { name: 'c', image: '3' }, { name: 'a', image: '9' }] },
    metadata: { finalizers: ['y'] },
  });
  t.deepEqual(out.spec.containers, [{ name: 'c', image: '3' }, { name: 'a', image: '9' }]);
  t.deepEqual(out.metadata.finalizers, ['x', 'y']);
  t.deepEqual(strategicMerge({ s: { type: 'A', a: 1 } }, { s: { $retainKeys: ['type', 'b'], type: 'B', b: 2 } }), { s: { type: 'B', b: 2 } });
  t.deepEqual(strategicMerge({ m: { x: 1 } }, { m: { $patch: 'replace', y: 2 } }), { m: { y: 2 } });
  t.deepEqual(strategicMerge({ args: ['a'] }, { args: ['b'] }), { args: ['b'] }, 'lists without a merge key are replaced');
});
