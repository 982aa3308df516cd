/**
 * Waits for an IP and the faults behind them. A wait is from a pod's first code-11 ADD to its successful
 * ADD. Many waits are bounded by a fault's own duration (an agent down for 4 s cannot answer; an API
 * server answering 503 cannot take demand), so besides the raw wait the soak measures the wait after the
 * fault cleared: from the end of the last fault that could hold this node back and ended during the
 * wait (or the wait's start, if none did) to the IP. A fault "ends" when the injected condition is lifted: a
 * crashed process is started again (its start-up counts against PodVNet), an outage is over, Azure's
 * injected answers are cleared or used up, slow operations are back to fast.
 */
import type { FaultEpisode } from './faults.js';

export interface IpWait {
  pod: string;
  node: string;
  /** The first code-11 ADD began. */
  startedAt: number;
  /** The successful ADD ended. */
  gotAt: number;
  /** ADDs answered code 11 before the IP. */
  tryAgains: number;
  /** Pods on the node (adding or up) and the NIC's secondary IPs when the wait began and ended. */
  podsOnNode: [number, number];
  nicIPs: [number, number];
}

export interface AttributedWait extends IpWait {
  waitMs: number;
  /** From the end of the last fault holding this node back (or the wait's start, if later) to the IP. */
  afterFaultMs: number;
  /** Faults that overlapped the wait or ended within `recentMs` before it began, by start time. */
  faults: FaultEpisode[];
}

/** Faults that can hold a node back: every fault but a crash of another node's agent. */
export function affectsNode(ep: FaultEpisode, node: string): boolean {
  return ep.kind !== 'agent-kill' || ep.node === node;
}

/**
 * `now` stands in for the end of a fault not yet over. The wait after the faults cleared is from the
 * latest end, before the IP came, of a fault that was on during the wait (or from the wait's start if
 * none was): a fault that began during the wait and was still on when the IP came did not keep the IP
 * from coming and does not move the clock; one that ended before the wait began is listed (recent) but
 * does not move it either.
 */
export function attributeWait(w: IpWait, episodes: readonly FaultEpisode[], now: number, recentMs = 5000): AttributedWait {
  const related = episodes
    .filter((e) => affectsNode(e, w.node) && e.startedAt <= w.gotAt && (e.endedAt ?? now) >= w.startedAt - recentMs)
    .sort((a, b) => a.startedAt - b.startedAt);
  const ends = related.map((e) => e.endedAt ?? now).filter((end) => end >= w.startedAt && end <= w.gotAt);
  const clearedAt = Math.max(w.startedAt, ...ends);
  return { ...w, waitMs: w.gotAt - w.startedAt, afterFaultMs: w.gotAt - clearedAt, faults: related };
}

/** One line for a wait: where, how long, how long after the faults cleared, and the faults with their times relative to the wait's start. */
export function describeWait(a: AttributedWait, t0: number): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const rel = (t: number) => `${((t - a.startedAt) / 1000).toFixed(1)}`;
  const faults = a.faults.length
    ? a.faults.map((e) => `${e.what} [${rel(e.startedAt)}..${e.endedAt === undefined ? 'end' : rel(e.endedAt)} s${e.servingAt === undefined ? '' : `, serving at ${rel(e.servingAt)} s`}]`).join('; ')
    : 'no fault (churn alone)';
  return `${s(a.waitMs)} (${s(a.afterFaultMs)} after the faults cleared) ${a.pod} on ${a.node} from ${s(a.startedAt - t0)}, ${a.tryAgains} code 11;` +
    ` pods on node ${a.podsOnNode[0]}→${a.podsOnNode[1]}, NIC IPs ${a.nicIPs[0]}→${a.nicIPs[1]}; faults: ${faults}`;
}

/** Restart to serving of crashed processes, by which process: the start-up a crash adds after its restart. */
export function startUps(episodes: readonly FaultEpisode[]): { controller: number[]; agent: number[]; neverServed: number } {
  const r = { controller: [] as number[], agent: [] as number[], neverServed: 0 };
  for (const e of episodes) {
    if (e.kind !== 'controller-kill' && e.kind !== 'agent-kill') continue;
    if (e.endedAt === undefined || e.servingAt === undefined) { r.neverServed++; continue; }
    (e.kind === 'controller-kill' ? r.controller : r.agent).push(e.servingAt - e.endedAt);
  }
  return r;
}
