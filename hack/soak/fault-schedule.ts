/**
 * When faults happen: one every `meanGapMs` on average (half to one and a half of it), until 5 s before
 * the churn ends, at most one Azure and one API-server episode at a time (crashes may overlap). Each is
 * run to its end by faults.ts; the schedule records every episode for the waits' attribution.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { isAzureFault, isKubeFault, pickFault, runFault, type FaultEpisode, type FaultKind } from './faults.js';
import { sleep } from './pods.js';
import type { Prng } from './prng.js';

export interface FaultSchedule {
  readonly episodes: FaultEpisode[];
  readonly counts: Partial<Record<FaultKind, number>>;
}

/** Runs faults until `churnEnd - 5 s`; resolves once the last one has ended. */
export async function runFaultSchedule(sandbox: Sandbox, rng: Prng, o: {
  churnEnd: number; meanGapMs: number; schedule: FaultSchedule; log: (line: string) => void; sinceStart: () => number;
}): Promise<void> {
  const running = new Set<Promise<void>>();
  let azureBusy = false;
  let kubeBusy = false;
  const until = o.churnEnd - 5000;
  while (Date.now() < until) {
    await sleep(rng.int(Math.round(o.meanGapMs / 2), Math.round(o.meanGapMs * 1.5)));
    if (Date.now() >= until) break;
    const kind = pickFault(rng, azureBusy, kubeBusy);
    const ep: FaultEpisode = { kind, what: kind, startedAt: Date.now() };
    o.schedule.episodes.push(ep);
    o.schedule.counts[kind] = (o.schedule.counts[kind] ?? 0) + 1;
    if (isAzureFault(kind)) azureBusy = true;
    if (isKubeFault(kind)) kubeBusy = true;
    const run = runFault(sandbox, kind, rng, sleep, ep)
      .catch((e: Error) => o.log(`fault ${kind} failed: ${e.message}`))
      .finally(() => {
        ep.endedAt = Date.now();
        if (isAzureFault(kind)) azureBusy = false;
        if (isKubeFault(kind)) kubeBusy = false;
      });
    o.log(`fault at ${(o.sinceStart() / 1000).toFixed(1)} s: ${ep.what}`);
    running.add(run);
    void run.finally(() => running.delete(run));
  }
  await Promise.all(running);
}

/** After the churn: every injected fault lifted, Azure fast again, every crashed process running. */
export function liftFaults(sandbox: Sandbox): void {
  sandbox.azure.clearFaults();
  sandbox.kube.clearFaults();
  sandbox.azure.configure({ mode: 'sync' });
  for (const pr of [sandbox.controller, ...sandbox.nodes.map((n) => n.agent)]) if (!pr.running) pr.start();
}
