import test from 'ava';
import fc from 'fast-check';
import { AddressPool, formatIPv4, parseCidr, parseIPv4 } from './address-pool.js';
import { TokenBucket } from './throttle.js';

test('IPv4 and CIDR parsing round-trips and rejects junk', (t) => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), (n) => parseIPv4(formatIPv4(n)) === n));
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4.5', 'a.b.c.d', '']) t.is(parseIPv4(bad), undefined, bad);
  t.deepEqual(parseCidr('10.1.0.0/16'), { base: parseIPv4('10.1.0.0'), prefixLength: 16, size: 65536 });
  t.is(parseCidr('10.1.0.1/16'), undefined, 'host bits set');
  t.is(parseCidr('10.1.0.0/33'), undefined);
});

test('a subnet reserves network, .1, .2, .3 and broadcast; the first address handed out is .4', (t) => {
  const pool = new AddressPool('10.0.0.0/24');
  t.is(pool.capacity, 251);
  t.is(pool.free, 251);
  for (const r of ['10.0.0.0', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.255']) {
    t.true(pool.isReserved(parseIPv4(r)!), r);
    t.false(pool.take(parseIPv4(r)!), r);
  }
  t.is(formatIPv4(pool.takeLowest()!), '10.0.0.4');
});

test('a /29 holds exactly three addresses, then is full', (t) => {
  const pool = new AddressPool('192.168.7.8/29');
  const got = [pool.takeLowest(), pool.takeLowest(), pool.takeLowest()].map((n) => formatIPv4(n!));
  t.deepEqual(got, ['192.168.7.12', '192.168.7.13', '192.168.7.14']);
  t.is(pool.takeLowest(), undefined);
  pool.release(parseIPv4('192.168.7.13')!);
  t.is(formatIPv4(pool.takeLowest()!), '192.168.7.13');
  t.throws(() => new AddressPool('10.0.0.0/30'), { message: /smaller than \/29/ });
});

// Reference model: a sorted scan over a Set. The pool must agree with it on every step.
test('the pool always hands out the lowest free address (property, against a model)', (t) => {
  const prefixes = ['10.0.0.0/29', '10.0.0.0/27', '10.0.0.0/24', '10.0.0.0/21'];
  fc.assert(fc.property(
    fc.constantFrom(...prefixes),
    fc.array(fc.oneof(
      fc.record({ op: fc.constant('lowest' as const) }),
      fc.record({ op: fc.constant('take' as const), offset: fc.nat({ max: 2047 }) }),
      fc.record({ op: fc.constant('release' as const), offset: fc.nat({ max: 2047 }) }),
    ), { maxLength: 300 }),
    (prefix, ops) => {
      const pool = new AddressPool(prefix);
      const { base, size } = parseCidr(prefix)!;
      const taken = new Set<number>([0, 1, 2, 3, size - 1]);
      for (const o of ops) {
        if (o.op === 'lowest') {
          let expected: number | undefined;
          for (let i = 0; i < size; i++) if (!taken.has(i)) { expected = i; break; }
          const got = pool.takeLowest();
          if (expected === undefined) { if (got !== undefined) return false; continue; }
          if (got !== base + expected) return false;
          taken.add(expected);
        } else if (o.op === 'take') {
          const inside = o.offset < size;
          const ok = pool.take(base + o.offset);
          if (ok !== (inside && !taken.has(o.offset))) return false;
          if (ok) taken.add(o.offset);
        } else {
          pool.release(base + o.offset);
          if (o.offset < size && o.offset > 3 && o.offset !== size - 1) taken.delete(o.offset);
        }
        if (pool.free !== size - taken.size) return false;
      }
      return true;
    }), { numRuns: 300 });
  t.pass();
});

test('a /12 (1M addresses) fills and refills in seconds at worst (a subnet scan per address would take minutes)', (t) => {
  const pool = new AddressPool('10.16.0.0/12');
  const start = process.hrtime.bigint();
  for (let i = 0; i < 300_000; i++) pool.takeLowest();
  for (let i = 0; i < 300_000; i += 3) pool.release(pool.cidr.base + 4 + i);
  for (let i = 0; i < 100_000; i++) pool.takeLowest();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.is(pool.used, 300_000);
  t.true(ms < 5000, `took ${ms} ms`);
});

test('token bucket: burst, then refill at the configured rate', (t) => {
  let now = 0;
  const b = new TokenBucket({ capacity: 3, refillPerSecond: 10 }, () => now);
  t.deepEqual([b.take().ok, b.take().ok, b.take().ok], [true, true, true]);
  const denied = b.take();
  t.false(denied.ok);
  t.is(denied.retryAfterMs, 100);
  now += 100;
  t.true(b.take().ok);
  now += 10_000;
  t.is(b.take().remaining, 2, 'refill stops at capacity');
});
