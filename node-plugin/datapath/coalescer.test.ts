import test from 'ava';
import { Coalescer } from './coalescer.js';

test('a lone item runs at once; items arriving meanwhile run together next; handed-back items go first', async (t) => {
  const batches: number[][] = [];
  let release!: () => void;
  const firstHeld = new Promise<void>((r) => { release = r; });
  let handedBack = false;
  const done: number[] = [];
  const c = new Coalescer<number>(async (batch) => {
    batches.push(batch);
    if (batches.length === 1) await firstHeld;
    if (batch.includes(3) && !handedBack) { handedBack = true; done.push(...batch.filter((x) => x !== 3)); return [3]; }
    done.push(...batch);
  });
  c.push(1);
  t.deepEqual(batches, [[1]], 'started without waiting for company');
  c.push(2); c.push(3); c.push(4);
  release();
  for (const deadline = Date.now() + 5000; done.length < 4 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 5));
  t.deepEqual(batches, [[1], [2, 3, 4], [3]]);
  t.deepEqual(done.sort(), [1, 2, 3, 4]);
});
