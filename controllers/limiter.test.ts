import test from 'ava';
import { ArmLimiter, NETWORK_RP_WRITE_BUDGET, Window } from './limiter.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A clock the test moves: the buckets refill only when it says so, so what may run is decided by tokens,
 * not by how fast a loaded machine gets round to it. (The limiter still sleeps for real between checks.)
 */
function manualClock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

/** Waits until `cond` holds (false after a generous deadline), then a little longer so extras would show. */
async function settles(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; !cond();) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  await sleep(60);
  return true;
}

test('writes spend the burst, then go at the refill rate; reads have their own budget', async (t) => {
  const clock = manualClock();
  const l = new ArmLimiter({ concurrency: 50, writes: { capacity: 5, refillPerSecond: 50 }, reads: { capacity: 100, refillPerSecond: 100 }, now: clock.now });
  let writes = 0;
  const all = Promise.all(Array.from({ length: 15 }, () => l.run('sub', 'write', async () => { writes++; })));
  t.true(await settles(() => writes >= 5), 'the burst goes at once');
  t.is(writes, 5, 'and not one more while no time passes');
  // Reads are not held back by the writes waiting for tokens.
  let reads = 0;
  for (let i = 0; i < 20; i++) void l.run('sub', 'read', async () => { reads++; });
  t.true(await settles(() => reads >= 20), `${reads} of 20 reads ran while the writes waited`);
  t.is(writes, 5);
  clock.advance(100); // 50/s: five more tokens
  t.true(await settles(() => writes >= 10));
  t.is(writes, 10, 'five more after 100 ms');
  clock.advance(40);
  t.true(await settles(() => writes >= 12));
  t.is(writes, 12, 'two more after 40 ms');
  clock.advance(60);
  await all;
  t.is(writes, 15);
  t.true(l.waitedMs > 0, 'the waiting is accounted');
});

test('a pause holds every call of that subscription, and only that one', async (t) => {
  const clock = manualClock();
  const l = new ArmLimiter({ concurrency: 10, writes: { capacity: 100, refillPerSecond: 100 }, reads: { capacity: 100, refillPerSecond: 100 }, now: clock.now });
  l.pause('a', 150);
  let a = false;
  let b = false;
  const held = l.run('a', 'read', async () => { a = true; });
  void l.run('b', 'read', async () => { b = true; });
  t.true(await settles(() => b), 'b is not held by a\'s pause');
  t.false(a, 'a is paused while b ran');
  t.is(l.pausedFor('a'), 150);
  clock.advance(100);
  t.true(await settles(() => true));
  t.false(a, 'still paused after 100 of 150 ms');
  clock.advance(50);
  await held;
  t.true(a);
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

test('Network RP writes keep to their own window beside the write bucket; other writes and reads do not count', async (t) => {
  const clock = manualClock();
  const l = new ArmLimiter({
    concurrency: 50, writes: { capacity: 100, refillPerSecond: 100 }, reads: { capacity: 100, refillPerSecond: 100 },
    networkWrites: { limit: 3, windowSeconds: 60 }, now: clock.now,
  });
  let nicPuts = 0;
  let vmssPuts = 0;
  const all = Promise.all(Array.from({ length: 5 }, () => l.run('sub', 'write', async () => { nicPuts++; }, { networkWrite: true })));
  t.true(await settles(() => nicPuts >= 3));
  t.is(nicPuts, 3, 'three in the window, not one more while no time passes');
  for (let i = 0; i < 10; i++) void l.run('sub', 'write', async () => { vmssPuts++; });
  t.true(await settles(() => vmssPuts >= 10), 'Compute writes are not held by the Network RP window');
  t.is(nicPuts, 3);
  clock.advance(59_000);
  await sleep(1200);
  t.is(nicPuts, 3, 'still inside the window');
  clock.advance(1_000);
  t.true(await settles(() => nicPuts >= 5, 5000));
  await all;
  t.is(nicPuts, 5);
});

test('the Network RP window: 1,000 per 300 s by default, a sliding window exact to the limit', (t) => {
  t.deepEqual(NETWORK_RP_WRITE_BUDGET, { limit: 1000, windowSeconds: 300 });
  let now = 0;
  const w = new Window({ limit: 2, windowSeconds: 10 }, () => now);
  t.is(w.take(), 0);
  now = 4_000;
  t.is(w.take(), 0);
  t.is(w.take(), 6_000, 'the first write leaves the window at 10 s');
  now = 10_000;
  t.is(w.take(), 0);
  t.is(w.take(), 4_000, 'the second (4 s) leaves at 14 s');
});
