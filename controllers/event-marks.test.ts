import test from 'ava';
import { RELEASE_FINALIZER } from '../crds/api/index.js';
import { nodeMark, poolMark, recordMark, SeenMarks } from './event-marks.js';

test('the mark createRecord sets before its POST is the mark of the record the API server then creates', (t) => {
  const created = { name: 'vm-0', generation: 1, resourceVersion: '17', uid: 'u', finalizers: [RELEASE_FINALIZER], labels: { 'podvnet.io/pool': 'a' } };
  t.is(recordMark({ generation: 1, finalizers: [RELEASE_FINALIZER] }), recordMark(created));
  // what the agent's spec write, a deletion or a finalizer change does is not the same mark
  t.not(recordMark({ ...created, generation: 2 }), recordMark(created));
  t.not(recordMark({ ...created, deletionTimestamp: new Date(0) }), recordMark(created));
  t.not(recordMark({ ...created, finalizers: [] }), recordMark(created));
});

test('marks see only what the reconcilers act on', (t) => {
  const node = (labels: Record<string, string>, providerID?: string, annotations?: Record<string, string>) => ({ metadata: { name: 'n', labels, annotations }, spec: { providerID } });
  t.is(nodeMark(node({ a: '1', b: '2' }, 'azure:///x')), nodeMark(node({ b: '2', a: '1' }, 'azure:///x', { 'node.alpha.kubernetes.io/ttl': '0' })), 'label order and annotations do not matter');
  t.not(nodeMark(node({ a: '1' })), nodeMark(node({ a: '2' })));
  t.not(nodeMark(node({}, 'azure:///x')), nodeMark(node({}, 'azure:///y')));
  t.is(poolMark({ name: 'p', generation: 3, resourceVersion: '1' }), poolMark({ name: 'p', generation: 3, resourceVersion: '2' }), 'a status write is no change');
  t.not(poolMark({ generation: 3 }), poolMark({ generation: 4 }));
});

test('SeenMarks: an unchanged update is no change; an add is, unless addsToo; a delete always is, and forgets', (t) => {
  const s = new SeenMarks();
  t.true(s.changed('k', 'm1', 'add'));
  t.false(s.changed('k', 'm1', 'update'));
  t.true(s.changed('k', 'm1', 'add'), 'a re-listed add of a node or pool still counts');
  t.false(s.changed('k', 'm1', 'add', true), 'a record already served');
  t.true(s.changed('k', 'm2', 'update'));
  t.true(s.changed('k', 'm2', 'delete'));
  t.true(s.changed('k', 'm2', 'update'), 'forgotten on delete');
  s.delete('k');
  t.true(s.changed('k', 'm2', 'add', true));
});
