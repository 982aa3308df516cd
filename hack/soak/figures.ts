/**
 * The soak's figures from what it recorded: the ADD success ratio and latencies (all, and those under
 * a fault or within 5 s after one), and the longest waits for an IP with the faults around them.
 */
import type { FaultEpisode } from './faults.js';
import { percentile } from './invariants.js';
import type { AddCall } from './pods.js';
import { attributeWait, type AttributedWait, type IpWait } from './waits.js';

export interface SoakFigures {
  addSuccessRatio: number;
  addP50Ms?: number;
  addP99Ms?: number;
  addUnderFaultsP50Ms?: number;
  addUnderFaultsP99Ms?: number;
  longestIpWaitMs: number;
  /** The longest wait counted from the end of the faults that held its node back (waits.ts). */
  longestIpWaitAfterFaultMs: number;
  /** The longest waits, raw, with the faults around them (up to 3), and the longest after the faults cleared if not among them. */
  longestWaits: AttributedWait[];
}

/** `now` stands in for the end of a fault not over yet. */
export function soakFigures(addCalls: readonly AddCall[], ipWaits: readonly IpWait[], episodes: readonly FaultEpisode[], now: number): SoakFigures {
  const under = (c: { start: number; end: number }) => episodes.some((e) => c.start <= (e.endedAt ?? now) + 5000 && c.end >= e.startedAt);
  const waits = ipWaits.map((w) => attributeWait(w, episodes, now));
  const longestWaits = [...waits].sort((a, b) => b.waitMs - a.waitMs).slice(0, 3);
  const longestAfter = [...waits].sort((a, b) => b.afterFaultMs - a.afterFaultMs)[0];
  if (longestAfter && !longestWaits.includes(longestAfter)) longestWaits.push(longestAfter);
  const okMs = addCalls.filter((c) => c.ok).map((c) => c.end - c.start);
  const underMs = addCalls.filter((c) => c.ok && under(c)).map((c) => c.end - c.start);
  return {
    addSuccessRatio: addCalls.length ? addCalls.filter((c) => c.ok).length / addCalls.length : 1,
    addP50Ms: percentile(okMs, 50), addP99Ms: percentile(okMs, 99),
    addUnderFaultsP50Ms: percentile(underMs, 50), addUnderFaultsP99Ms: percentile(underMs, 99),
    longestIpWaitMs: Math.max(0, ...waits.map((w) => w.waitMs)),
    longestIpWaitAfterFaultMs: Math.max(0, ...waits.map((w) => w.afterFaultMs)),
    longestWaits,
  };
}
