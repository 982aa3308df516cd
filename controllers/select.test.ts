import test from 'ava';
import { choosePool, selectorMatches } from './select.js';

test('label selector semantics', (t) => {
  const labels = { pool: 'a', zone: '1' };
  t.true(selectorMatches({}, labels), '{} selects everything');
  t.true(selectorMatches({ matchLabels: { pool: 'a' } }, labels));
  t.false(selectorMatches({ matchLabels: { pool: 'b' } }, labels));
  t.true(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['1', '2'] }] }, labels));
  t.false(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['1'] }] }, labels));
  t.true(selectorMatches({ matchExpressions: [{ key: 'gpu', operator: 'NotIn', values: ['x'] }] }, labels), 'NotIn holds for a missing key');
  t.true(selectorMatches({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, labels));
  t.false(selectorMatches({ matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] }, labels));
  t.false(selectorMatches({ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, undefined));
});

test('the oldest matching live pool wins; ties go by name; deleting pools never win', (t) => {
  const pools = [
    { name: 'young', creationTimestamp: '2026-01-02T00:00:00Z', selector: {}, deleting: false },
    { name: 'old-b', creationTimestamp: '2026-01-01T00:00:00Z', selector: {}, deleting: false },
    { name: 'old-a', creationTimestamp: '2026-01-01T00:00:00Z', selector: {}, deleting: false },
    { name: 'oldest', creationTimestamp: '2025-01-01T00:00:00Z', selector: {}, deleting: true },
    { name: 'other', creationTimestamp: '2020-01-01T00:00:00Z', selector: { matchLabels: { x: 'y' } }, deleting: false },
  ];
  t.deepEqual(choosePool(pools, {}), { winner: 'old-a', losers: ['old-b', 'young'] });
  t.deepEqual(choosePool([], {}), { losers: [] });
});
