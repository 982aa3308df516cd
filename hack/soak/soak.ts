/**
 * The whole-system soak: random pod churn with bursts on the sandbox (emulated Azure and API server, the
 * real controller, real agents, the real C forwarder into pod namespaces on a simulated VNet), faults at
 * random times (faults.ts), invariants checked all along and once everything is deleted (invariants.ts).
 * Seeded: the workload's and the faults' choices replay from the seed.
 *
 * runSoak is the order of things; each step is a module of its own: pods.ts (the runtime that ADDs and
 * DELs), churn.ts (the workload), fault-schedule.ts (when faults happen), live-checker.ts (the invariants
 * while it runs), final-audit.ts (the settle check after the last DEL), figures.ts (the summary's numbers).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Sandbox } from '../sandbox/sandbox.js';
import { churn, deleteAll } from './churn.js';
import { liftFaults, runFaultSchedule, type FaultSchedule } from './fault-schedule.js';
import type { FaultKind } from './faults.js';
import { awaitSettled } from './final-audit.js';
import { soakFigures, type SoakFigures } from './figures.js';
import type { LivePod, Violation, ViolationKind } from './invariants.js';
import { LiveChecker } from './live-checker.js';
import { ipOwners } from './observe.js';
import { PodRuntime, newOps, sleep, type SoakOps } from './pods.js';
import { Prng } from './prng.js';
import { startUps } from './waits.js';

export interface SoakOptions {
  seed: number;
  durationMs: number;
  /** Faults on (default) or churn alone. */
  faults?: boolean;
  /** Mean time between two faults. */
  meanFaultGapMs?: number;
  /** After the last DEL, how long the system has to settle (NICs at the pool minimum, nothing left). */
  settleTimeoutMs?: number;
  checkIntervalMs?: number;
  /** A CNI call running longer than this is a hang (the plugin is killed at it). */
  cniDeadlineMs?: number;
  /** A pod that got no IP for this long is given up (a violation). */
  addGiveUpMs?: number;
  vms?: number;
  scaleSetInstances?: number;
  poolMinimum?: number;
  poolMaximum?: number;
  batchSize?: number;
  /** Pods per node at most (below the pool maximum, so every pod can get an IP). */
  maxPodsPerNode?: number;
  log?: (line: string) => void;
  /**
   * Runs once, `atMs` into the churn, with the soak's view: for tests that plant a corruption and
   * assert the soak names it.
   */
  plant?: { atMs: number; run: (soak: SoakView) => Promise<void> };
}

export interface SoakView {
  sandbox: Sandbox;
  livePods(): LivePod[];
  /** Resolves after the next completed invariant check. */
  nextCheck(): Promise<void>;
}

export interface TimedViolation extends Violation { atMs: number }

/** The run's counts and figures (figures.ts), its faults, start-ups and violations. */
export interface SoakResult extends SoakFigures {
  seed: number;
  durationMs: number;
  ops: SoakOps;
  faults: Partial<Record<FaultKind, number>>;
  /** The start of the churn (for times relative to it). */
  startedAt: number;
  /** Restart to serving of the crashed processes (ms), and restarts killed again before they served. */
  startUps: { controller: number[]; agent: number[]; neverServed: number };
  /** From the last DEL to every final invariant holding; undefined if it never did within settleTimeoutMs. */
  settleMs?: number;
  violations: TimedViolation[];
  logDir: string;
}

/** A violation is reported once, when first seen: a condition that lasts is seen by check after check. */
class ViolationLog {
  readonly list: TimedViolation[] = [];
  private readonly seen = new Set<string>();
  constructor(private readonly sinceStart: () => number, private readonly log: (line: string) => void) {}

  readonly violate = (kind: ViolationKind, detail: string): void => {
    if (this.seen.has(`${kind}\0${detail}`)) return;
    this.seen.add(`${kind}\0${detail}`);
    const atMs = this.sinceStart();
    this.list.push({ kind, detail, atMs });
    this.log(`VIOLATION ${kind} at ${(atMs / 1000).toFixed(1)} s: ${detail}`);
  };
}

const DEFAULTS = {
  faults: true, meanFaultGapMs: 6000, settleTimeoutMs: 60_000, checkIntervalMs: 3000, cniDeadlineMs: 30_000, addGiveUpMs: 120_000,
  vms: 2, scaleSetInstances: 1, poolMinimum: 8, poolMaximum: 64, batchSize: 8, maxPodsPerNode: 40, log: () => undefined,
} satisfies Omit<SoakOptions, 'seed' | 'durationMs' | 'plant'>;

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const o = { ...DEFAULTS, ...opts };
  const log = o.log;
  const root = new Prng(o.seed);
  const workRng = root.fork('workload');
  const faultRng = root.fork('faults');
  const logDir = mkdtempSync(path.join(tmpdir(), `podvnet-soak-${o.seed}-`));
  log(`soak: seed ${o.seed}, ${Math.round(o.durationMs / 1000)} s of churn, faults ${o.faults ? 'on' : 'off'}; logs in ${logDir}`);

  const sandbox = await Sandbox.start({
    vms: o.vms, scaleSetInstances: o.scaleSetInstances, logDir, startTimeoutMs: 180_000,
    pool: { ipsPerNode: { min: o.poolMinimum, max: o.poolMaximum }, scaling: { batchSize: o.batchSize, requestThresholdPercent: 50, releaseThresholdPercent: 150 } },
  });
  const t0 = Date.now();
  const sinceStart = () => Date.now() - t0;
  const violations = new ViolationLog(sinceStart, log);
  const ops = newOps();
  const runtime = new PodRuntime(sandbox, ops, violations.violate, o);
  const schedule: FaultSchedule = { episodes: [], counts: {} };
  const checker = new LiveChecker(sandbox, runtime, workRng, violations.violate, log, o.checkIntervalMs);
  checker.start();

  try {
    log('waiting for every node to hold the pool minimum');
    await sandbox.waitFor('every node record to hold the pool minimum', async () =>
      sandbox.nodes.every((n) => ipOwners(sandbox).secondaryCount(n.name) >= o.poolMinimum), 120_000);
    const churnEnd = Date.now() + o.durationMs;
    const faults = o.faults ? runFaultSchedule(sandbox, faultRng, { churnEnd, meanGapMs: o.meanFaultGapMs, schedule, log, sinceStart }) : Promise.resolve();
    const planted = o.plant ? plant(o.plant, { sandbox, livePods: () => runtime.live().map((p) => p.live!), nextCheck: () => checker.nextCheck() }) : Promise.resolve();
    await churn(sandbox, runtime, workRng, { churnEnd, maxPodsPerNode: o.maxPodsPerNode, log, sinceStart });

    log(`churn over at ${(sinceStart() / 1000).toFixed(1)} s; waiting for the faults to end and the pods under way`);
    await faults;
    await planted;
    liftFaults(sandbox);
    await runtime.drain();
    await deleteAll(runtime, log);
    await runtime.drain();
    await checker.stop();

    const settled = await awaitSettled(sandbox, { poolMinimum: o.poolMinimum, timeoutMs: o.settleTimeoutMs });
    for (const v of settled.left) violations.violate(v.kind, `${v.detail} (${Math.round(o.settleTimeoutMs / 1000)} s after the last DEL)`);
    return {
      seed: o.seed, durationMs: o.durationMs, ops, faults: schedule.counts,
      ...soakFigures(runtime.addCalls, runtime.ipWaits, schedule.episodes, Date.now()),
      startedAt: t0, startUps: startUps(schedule.episodes), settleMs: settled.settleMs, violations: violations.list, logDir,
    };
  } finally {
    await checker.stop().catch(() => undefined);
    await sandbox.close();
  }
}

/** The test's corruption, `atMs` into the churn. */
async function plant(p: NonNullable<SoakOptions['plant']>, view: SoakView): Promise<void> {
  await sleep(p.atMs);
  await p.run(view);
}
