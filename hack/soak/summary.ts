import type { SoakResult } from './soak.js';
import { describeWait } from './waits.js';
import { percentile } from './invariants.js';

const s = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
const spread = (xs: number[]) => (xs.length ? `p50 ${s(percentile(xs, 50))} max ${s(Math.max(...xs))} (${xs.length})` : 'none');

/** The summary a person reads after a soak: one headline line, then faults and violations by kind. */
export function summarize(r: SoakResult, replay: string): string[] {
  const byKind = new Map<string, { n: number; first: string }>();
  for (const v of r.violations) {
    const e = byKind.get(v.kind);
    if (e) e.n++;
    else byKind.set(v.kind, { n: 1, first: v.detail });
  }
  const faults = Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const lines = [
    `soak seed ${r.seed}, ${Math.round(r.durationMs / 1000)} s: ${r.violations.length === 0 ? 'PASS' : `FAIL (${r.violations.length} violations of ${byKind.size} kinds: ${[...byKind.keys()].join(', ')})`}`,
    `  operations: ${r.ops.pods} pods, ${r.ops.adds} ADDs (${r.ops.addsOk} ok, ${r.ops.addsTryAgain} code 11), ${r.ops.dels} DELs (${r.ops.delsOk} ok), ${r.ops.pings} pings, ${r.ops.checks} checks`,
    `  faults (${Object.values(r.faults).reduce((a, b) => a + (b ?? 0), 0)}): ${faults}`,
    `  ADD success ratio ${r.addSuccessRatio.toFixed(3)}; ADD p50 ${s(r.addP50Ms)} p99 ${s(r.addP99Ms)}; under faults p50 ${s(r.addUnderFaultsP50Ms)} p99 ${s(r.addUnderFaultsP99Ms)}`,
    `  longest wait for an IP ${s(r.longestIpWaitMs)}, after the faults cleared ${s(r.longestIpWaitAfterFaultMs)}; settle time ${r.settleMs === undefined ? 'did not settle' : s(r.settleMs)}`,
    ...r.longestWaits.map((w) => `    wait ${describeWait(w, r.startedAt)}`),
    `  restart to serving after a crash: controller ${spread(r.startUps.controller)}, agent ${spread(r.startUps.agent)}${r.startUps.neverServed ? `, ${r.startUps.neverServed} killed again before serving` : ''}`,
  ];
  for (const [kind, e] of byKind) lines.push(`  VIOLATION ${kind} x${e.n}: ${e.first}`);
  lines.push(`  logs: ${r.logDir}`, `  replay: ${replay}`);
  return lines;
}
