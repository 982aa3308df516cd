import test from 'ava';
import { waitFor } from './harness.js';

test('waitFor: null, false and undefined are not done; it polls on until true or an object, and returns it', async (t) => {
  const answers: unknown[] = [null, false, undefined, { ips: ['10.0.0.4'] }];
  let calls = 0;
  const got = await waitFor('the record', () => answers[calls++] as { ips: string[] } | null | false | undefined, 5000, 1);
  t.deepEqual(got, { ips: ['10.0.0.4'] });
  t.is(calls, 4);
  t.is(await waitFor('a flag', () => true), true);
});

test('waitFor: a probe answering a number or a string (is 0 done?) fails at once, naming what it waited for', async (t) => {
  // Typed loosely on purpose: the types refuse these probes, so only the run-time check can be shown here.
  const loose = (v: unknown) => (() => v) as unknown as () => boolean;
  await t.throwsAsync(waitFor('both records to have IPs', loose(0), 5000, 1), { message: /both records to have IPs: the probe returned number 0/ });
  await t.throwsAsync(waitFor('a name', loose(''), 5000, 1), { message: /the probe returned string ""/ });
  await t.throwsAsync(waitFor('a count', loose(8), 5000, 1), { message: /number 8/ });
});

test('waitFor: a probe that throws is polled again, and its last error is in the timeout', async (t) => {
  let calls = 0;
  t.is(await waitFor('the third try', () => { if (++calls < 3) throw new Error('not yet'); return true; }, 5000, 1), true);
  await t.throwsAsync(waitFor('never', () => { throw new Error('still broken'); }, 50, 5), { message: /timed out waiting for never: still broken/ });
});
