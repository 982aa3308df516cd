/**
 * `npm run soak -- --seed 7 --minutes 4 [--seeds 7,8,9] [--no-faults] [--verbose]`: the whole-system
 * soak on the sandbox (root only). Prints a summary per seed and exits 1 on any invariant violation.
 */
import { parseArgs } from 'node:util';
import { runSoak } from './soak.js';
import { summarize } from './summary.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' }, seeds: { type: 'string' }, minutes: { type: 'string', default: '4' },
    'no-faults': { type: 'boolean', default: false }, verbose: { type: 'boolean', default: false },
    'settle-seconds': { type: 'string', default: '60' },
  },
});

const seeds = (values.seeds ?? values.seed ?? String(Math.floor(Math.random() * 1e6))).split(',').map((x) => Number(x.trim()));
if (seeds.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`--seed/--seeds: whole numbers, got ${values.seeds ?? values.seed}`);
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error(`--minutes: a positive number, got ${values.minutes}`);

let failed = 0;
const summaries: string[] = [];
for (const seed of seeds) {
  const replay = `npm run soak -- --seed ${seed} --minutes ${values.minutes}${values['no-faults'] ? ' --no-faults' : ''}`;
  console.log(`soak: seed ${seed} (replay: ${replay})`);
  let r;
  try {
    r = await runSoak({
      seed, durationMs: minutes * 60_000, faults: !values['no-faults'], settleTimeoutMs: Number(values['settle-seconds']) * 1000,
      log: (l) => { if (values.verbose || l.startsWith('VIOLATION') || l.startsWith('soak:')) console.log(l); },
    });
  } catch (e) {
    // not a verdict on PodVNet: the sandbox could not be run (e.g. a machine too loaded to start it)
    const line = `soak seed ${seed}: ERROR, could not run: ${(e as Error).message}`;
    console.log(`${line}\n  replay: ${replay}`);
    summaries.push(line);
    failed++;
    continue;
  }
  const lines = summarize(r, replay);
  console.log(lines.join('\n'));
  summaries.push(lines[0]!);
  if (r.violations.length) failed++;
}
if (seeds.length > 1) console.log(`\n${summaries.join('\n')}`);
process.exitCode = failed ? 1 : 0;
