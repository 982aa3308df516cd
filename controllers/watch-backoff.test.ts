import test from 'ava';
import fc from 'fast-check';
import { WatchBackoff } from './watch-backoff.js';

test('a watch that failed once restarts at once; repeated failures double up to the cap; success resets', (t) => {
  const b = new WatchBackoff({ firstMs: 100, maxMs: 2000 });
  t.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1600, 2000, 2000]);
  b.reset();
  t.is(b.next(), 100);
});

test('the delay is never above the cap nor below the first delay, however many failures', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 1, max: 200 }), (first, max, n) => {
    const b = new WatchBackoff({ firstMs: first, maxMs: max });
    for (let i = 0; i < n; i++) {
      const d = b.next();
      if (d > max || d < Math.min(first, max)) return false;
    }
    return true;
  }));
  t.pass();
});

test('a failure long after the last one starts over from the first delay (a resumed watch may never list again)', (t) => {
  let now = 0;
  const b = new WatchBackoff({ firstMs: 100, maxMs: 2000, quietMs: 30_000, now: () => now });
  t.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
  now = 30_000;
  t.is(b.next(), 800, 'still the same outage');
  now = 60_001;
  t.is(b.next(), 100);
});
