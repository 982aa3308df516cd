import test from 'ava';
import { WorkQueue } from './workqueue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('events for one key fold together; a key never runs twice at once', async (t) => {
  const runs: string[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const q = new WorkQueue(async (key) => {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    runs.push(key);
    await sleep(30);
    concurrent--;
  }, { concurrency: 4 });
  q.start();
  for (let i = 0; i < 10; i++) q.add('a');
  await sleep(5);
  for (let i = 0; i < 10; i++) q.add('a'); // during the run: exactly one more run afterwards
  await sleep(100);
  await q.whenIdle();
  t.deepEqual(runs, ['a', 'a']);
  t.is(maxConcurrent, 1);
});

test('failures retry with growing backoff; success resets it; requeueAfter schedules', async (t) => {
  const times: number[] = [];
  let fail = 3;
  const q = new WorkQueue(async () => {
    times.push(Date.now());
    if (fail-- > 0) throw new Error('boom');
    return times.length === 4 ? { requeueAfterMs: 40 } : undefined;
  }, { concurrency: 1, baseDelayMs: 20, maxDelayMs: 1000 });
  q.start();
  q.add('k');
  // 20 + 40 + 80 + 40 ms of delays: nominally done in under 200 ms, but timers run late on a loaded
  // machine, so wait for the fifth run (with a deadline), then make sure no sixth follows.
  for (const deadline = Date.now() + 10_000; times.length < 5 && Date.now() < deadline;) await sleep(10);
  await sleep(100);
  t.is(times.length, 5);
  const gaps = times.slice(1).map((x, i) => x - times[i]!);
  t.true(gaps[0]! >= 18 && gaps[1]! >= 38 && gaps[2]! >= 78, `backoff 20/40/80: ${gaps}`);
  t.true(gaps[3]! >= 38, 'requeueAfter honoured');
  t.is(q.stats.errors, 3);
  await q.stop();
});

test('an earlier delayed add wins; a direct add cancels the delay; stop waits for runs', async (t) => {
  const runs: number[] = [];
  const start = Date.now();
  const q = new WorkQueue(async () => { runs.push(Date.now() - start); await sleep(20); }, { concurrency: 2 });
  q.start();
  q.addAfter('k', 2000);
  q.addAfter('k', 60);
  q.addAfter('k', 3000);
  await sleep(300);
  t.is(runs.length, 1);
  t.true(runs[0]! >= 55 && runs[0]! < 1000, `ran at ${runs[0]} ms: the 60 ms delay, not 2 or 3 s`);
  q.addAfter('j', 1000);
  q.add('j');
  await sleep(5);
  await q.stop();
  t.is(runs.length, 2, 'j ran at once and stop waited for it');
});

test('retryDelayMs picks the delay per failure (count resets on success); undefined keeps the default backoff', async (t) => {
  const seen: Array<[string, number]> = [];
  let fail = 3;
  const q = new WorkQueue(async (key) => {
    if (key === 'short' && fail-- > 0) throw new Error('transient');
    if (key === 'long') throw new Error('permanent');
  }, {
    concurrency: 2,
    baseDelayMs: 5000,
    retryDelayMs: (key, e, failures) => {
      seen.push([key, failures]);
      return (e as Error).message === 'transient' ? 10 : undefined;
    },
  });
  q.start();
  q.add('short');
  q.add('long');
  for (const deadline = Date.now() + 10_000; seen.filter(([k]) => k === 'short').length < 3 && Date.now() < deadline;) await sleep(10);
  await sleep(50);
  t.deepEqual(seen.filter(([k]) => k === 'short').map(([, n]) => n), [1, 2, 3], 'three quick retries, then success');
  t.deepEqual(seen.filter(([k]) => k === 'long'), [['long', 1]], 'the default backoff (5 s) still applies to the other');
  t.is(q.scheduled, 1);
  await q.stop();
});
