import test from 'ava';
import { evaluate, compile, CelError, usesOldSelf } from './cel.js';

const ev = (src: string, self: unknown = {}, oldSelf?: unknown): unknown => evaluate(src, oldSelf === undefined ? { self } : { self, oldSelf });

test('comparisons, arithmetic and logic', (t) => {
  t.true(ev('self.min <= self.max', { min: 1, max: 2 }) as boolean);
  t.false(ev('self.min <= self.max', { min: 3, max: 2 }) as boolean);
  t.is(ev('7 / 2'), 3, 'integer division truncates');
  t.is(ev('7 % 4'), 3);
  t.is(ev('1 + 2 * 3'), 7);
  t.is(ev('(1 + 2) * 3'), 9);
  t.true(ev('!(1 > 2) && (true || false)') as boolean);
  t.is(ev("self.a == 'x' ? 1 : 2", { a: 'x' }), 1);
  t.true(ev("'ab' + 'c' == 'abc'") as boolean);
  t.true(ev('[1, 2] == [1, 2]') as boolean);
  t.true(ev("'b' in ['a', 'b']") as boolean);
  t.true(ev("'k' in self", { k: 1 }) as boolean);
});

test('has(), size(), string functions and macros', (t) => {
  t.true(ev('has(self.x)', { x: 0 }) as boolean);
  t.false(ev('has(self.x)', {}) as boolean);
  t.is(ev('size(self.l)', { l: [1, 2, 3] }), 3);
  t.is(ev('self.s.size()', { s: 'héllo' }), 5);
  t.true(ev("self.s.matches('^[a-z]+$')", { s: 'abc' }) as boolean);
  t.false(ev("self.s.matches('^[a-z]+$')", { s: 'aBc' }) as boolean);
  t.true(ev("self.s.startsWith('/subscriptions/') && self.s.endsWith('x') && self.s.contains('ions')", { s: '/subscriptions/x' }) as boolean);
  t.true(ev('self.l.all(x, x > 0)', { l: [1, 2] }) as boolean);
  t.false(ev('self.l.all(x, x > 1)', { l: [1, 2] }) as boolean);
  t.true(ev('self.l.exists(x, x == 2)', { l: [1, 2] }) as boolean);
  t.true(ev('self.l.exists_one(x, x == 2)', { l: [2, 1] }) as boolean);
  t.deepEqual(ev('self.l.map(x, x * 2)', { l: [1, 2] }), [2, 4]);
  t.deepEqual(ev('self.l.filter(x, x > 1)', { l: [1, 2, 3] }), [2, 3]);
  t.true(ev("self.m.all(k, k.startsWith('a'))", { m: { ab: 1, ac: 2 } }) as boolean);
  t.true(ev("(self.operator == 'In' || self.operator == 'NotIn') ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)", { operator: 'In', values: ['a'] }) as boolean);
  t.false(ev("(self.operator == 'In' || self.operator == 'NotIn') ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)", { operator: 'Exists', values: ['a'] }) as boolean);
});

test('transition rules and errors', (t) => {
  t.true(usesOldSelf('self.a == oldSelf.a'));
  t.false(usesOldSelf('self.oldSelfish == 1'));
  t.true(ev('self == oldSelf', { a: 1 }, { a: 1 }) as boolean);
  t.false(ev('self.a == oldSelf.a', { a: 1 }, { a: 2 }) as boolean);
  t.throws(() => ev('self.missing > 1', {}), { instanceOf: CelError, message: 'no such key: missing' });
  t.false(ev('has(self.x) && self.x > 1', {}) as boolean, 'short-circuit guards a missing field');
  t.true(ev('self.x > 1 || true', {}) as boolean, 'an error on one side is absorbed when the other decides');
  t.throws(() => compile('self.a ==='), { instanceOf: CelError });
  t.throws(() => ev("1 < 'a'"), { instanceOf: CelError });
});
