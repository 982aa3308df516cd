import test from 'ava';
import { runSoak } from './soak.js';
import { summarize } from './summary.js';

/**
 * The short soak (about a minute of churn with faults, one seed) as a test: every invariant must hold.
 * `npm run soak -- --seeds 7,8,9 --minutes 4` is the long one. Root only (network namespaces).
 */
test.serial('one minute of pod churn under faults keeps every invariant, and everything settles after the last DEL', async (t) => {
  t.timeout(600_000);
  const r = await runSoak({ seed: 1, durationMs: 60_000, meanFaultGapMs: 4000, settleTimeoutMs: 60_000, log: (l) => t.log(l) });
  for (const line of summarize(r, 'npm run soak -- --seed 1 --minutes 1')) t.log(line);
  t.true(r.ops.addsOk > 20, `pods came and went (${r.ops.addsOk} ADDs succeeded)`);
  t.true(Object.keys(r.faults).length > 0, 'faults were injected');
  t.deepEqual(r.violations.map((v) => `${v.kind}: ${v.detail}`), []);
  t.not(r.settleMs, undefined, 'settled after the last DEL');
});
