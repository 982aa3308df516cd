import test from 'ava';
import fc from 'fast-check';
import { KeyedSerial } from './keyed-serial.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

test('one key runs its tasks in call order, one at a time; a failure reaches only its caller', async (t) => {
  const serial = new KeyedSerial();
  const log: string[] = [];
  let running = 0;
  const task = (name: string, fail = false) => async () => {
    running++;
    t.is(running, 1, `${name} runs alone`);
    log.push(`start ${name}`);
    await tick();
    log.push(`end ${name}`);
    running--;
    if (fail) throw new Error(name);
    return name;
  };
  const results = await Promise.allSettled([serial.run('k', task('a')), serial.run('k', task('b', true)), serial.run('k', task('c'))]);
  t.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  t.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  t.is((results[2] as PromiseFulfilledResult<string>).value, 'c');
});

test('different keys overlap; busy and idle say what waits, and a settled key is forgotten', async (t) => {
  const serial = new KeyedSerial();
  t.true(serial.idle());
  let releaseA!: () => void;
  const a = serial.run('a', () => new Promise<void>((r) => { releaseA = r; }));
  let bRan = false;
  await serial.run('b', async () => { bRan = true; });
  t.true(bRan, 'b did not wait for a');
  await tick(); // the key is dropped once the task's settlement has propagated
  t.true(serial.busy('a'));
  t.false(serial.busy('b'), 'b is forgotten once settled');
  t.false(serial.idle());
  releaseA();
  await a;
  await tick();
  t.true(serial.idle());
});

test('property: per key, tasks never overlap and finish in the order they were called', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('x', 'y', 'z'), fc.nat(3), fc.boolean()), { maxLength: 30 }), async (calls) => {
    const serial = new KeyedSerial();
    const active = new Map<string, number>();
    const finished = new Map<string, number[]>();
    let overlap = false;
    await Promise.allSettled(calls.map(([key, waits, fail], i) => serial.run(key, async () => {
      active.set(key, (active.get(key) ?? 0) + 1);
      if (active.get(key)! > 1) overlap = true;
      for (let w = 0; w < waits; w++) await tick();
      active.set(key, active.get(key)! - 1);
      finished.set(key, [...(finished.get(key) ?? []), i]);
      if (fail) throw new Error('x');
    })));
    if (overlap) return false;
    for (const order of finished.values()) if (order.some((v, j) => j > 0 && v < order[j - 1]!)) return false;
    return serial.idle() || (await tick(), serial.idle());
  }));
  t.pass();
});
