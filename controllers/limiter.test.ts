import test from 'ava';
import { ArmLimiter } from './limiter.js';

test('writes spend the burst, then go at the refill rate; reads have their own budget', async (t) => {
  const l = new ArmLimiter({ concurrency: 50, writes: { capacity: 5, refillPerSecond: 50 }, reads: { capacity: 100, refillPerSecond: 100 } });
  const start = Date.now();
  const done: number[] = [];
  await Promise.all(Array.from({ length: 15 }, () => l.run('sub', 'write', async () => { done.push(Date.now() - start); })));
  done.sort((a, b) => a - b);
  t.true(done[4]! < 30, 'the burst goes at once');
  t.true(done[14]! >= 180, `10 more at 50/s take ~200 ms (took ${done[14]})`);
  const r0 = Date.now();
  await Promise.all(Array.from({ length: 20 }, () => l.run('sub', 'read', async () => {})));
  t.true(Date.now() - r0 < 50, 'reads were not held back by writes');
});

test('a pause holds every call of that subscription, and only that one', async (t) => {
  const l = new ArmLimiter({ concurrency: 10, writes: { capacity: 100, refillPerSecond: 100 }, reads: { capacity: 100, refillPerSecond: 100 } });
  l.pause('a', 150);
  const start = Date.now();
  let other = 0;
  await Promise.all([
    l.run('a', 'read', async () => {}),
    l.run('b', 'read', async () => { other = Date.now() - start; }),
  ]);
  t.true(Date.now() - start >= 140);
  t.true(other < 50);
  t.is(l.pauses, 1);
});

test('concurrency bounds calls in flight', async (t) => {
  const l = new ArmLimiter({ concurrency: 3, writes: { capacity: 100, refillPerSecond: 100 }, reads: { capacity: 100, refillPerSecond: 100 } });
  let inFlight = 0;
  let max = 0;
  await Promise.all(Array.from({ length: 12 }, () => l.run('s', 'read', async () => {
    inFlight++; max = Math.max(max, inFlight);
    await new Promise((r) => setTimeout(r, 10));
    inFlight--;
  })));
  t.is(max, 3);
});
