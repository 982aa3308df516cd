/**
 * The node's permanent neighbour entries on the bridge, one per pod IP with the pod's MAC (anti-ARP-
 * spoofing, see README "ARP"). One NeighbourPins per node (node-datapath.ts); every method but `note` runs
 * under the node's serialization.
 */
import { ipJSON, runRaw } from './exec.js';
import { type NeighEntry, neighbourPlan, type PinnedPod } from './plan.js';
import { DatapathError, type NodeNetwork } from './types.js';

export const bridgeNeighbours = (net: NodeNetwork): Promise<NeighEntry[]> => ipJSON<NeighEntry>(net.hostNetns, ['-4', 'neigh', 'show', 'dev', net.bridgeName]);

/** A failed `neigh` batch whose entry (or bridge) was gone: the table changed under us, so read it again. */
const NEIGH_GONE = /^RTNETLINK answers: No such file or directory$|^Cannot find device "[^"]+"$|^RTNETLINK answers: No such device$/m;
const NEIGH_ROUNDS = 4;

export interface NeighbourWant {
  /** The live pods whose entries must be pinned (listed after the table is read). */
  listPods?: () => Promise<PinnedPod[]>;
  /** Pods whose entries go, each only if it still carries the pod's MAC. */
  unpin?: PinnedPod[];
  /** Also delete permanent entries no listed pod claims (GC). */
  gcStale?: boolean;
}

export class NeighbourPins {
  /**
   * IP -> the MAC this process last pinned for it on the bridge. A DEL whose pod's entry is known to be
   * its own deletes it without reading the neighbour table first; otherwise the table is read.
   */
  private known: Map<string, string> | undefined;

  /** Records the `neigh replace|del` lines of a batch that succeeded (pod.ts's ADD batch, sync). */
  note(lines: readonly string[]): void {
    for (const l of lines) {
      const m = /^neigh (replace|del) (\S+)(?: lladdr (\S+))?/.exec(l);
      if (!m) continue;
      this.known ??= new Map();
      if (m[1] === 'replace' && m[3]) this.known.set(m[2]!, m[3].toLowerCase());
      else this.known.delete(m[2]!);
    }
  }

  /** Forgets what this process pinned: the next unpin reads the table. */
  forget(): void {
    this.known = undefined;
  }

  /**
   * Brings the bridge's neighbour entries to what the pods need (plan.ts neighbourPlan). The entries are
   * read before the pods (a pod's entry is pinned after its veth is labelled), so a GC never takes a fresh
   * pod's entry for a stale one. An `ip neigh` failure ends its batch: if it was an entry (or the bridge)
   * that vanished meanwhile, the table is read again and the rest done; any other failure is an error.
   */
  async sync(net: NodeNetwork, want: NeighbourWant): Promise<void> {
    let last = '';
    let recheck = want.gcStale === true;
    for (let round = 0; round < NEIGH_ROUNDS; round++) {
      const entries = await bridgeNeighbours(net);
      const pods = want.listPods ? await want.listPods() : undefined;
      const lines = neighbourPlan(net, { entries, ...(pods ? { pods } : {}), ...(want.unpin ? { unpin: want.unpin } : {}), gcStale: want.gcStale ?? false });
      if (!lines.length) return;
      const r = await runRaw(net.hostNetns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
      if (r.code === 0) this.note(lines);
      else this.forget(); // part of it ran: read the table next time
      // GC deletes by IP: a pod attached (and pinned) on a freed IP between the reading and the delete lost
      // its entry; one more reading finds it listed now and pins it again.
      if (r.code === 0 && recheck && round < NEIGH_ROUNDS - 1 && lines.some((l) => l.startsWith('neigh del '))) { recheck = false; continue; }
      if (r.code === 0) return;
      last = r.stderr.trim();
      if (!NEIGH_GONE.test(r.stderr)) throw new DatapathError(`neighbour entries on ${net.bridgeName}: ${last}`, 'ip -batch -', r.stderr);
    }
    throw new DatapathError(`neighbour entries on ${net.bridgeName} kept changing under ${NEIGH_ROUNDS} attempts: ${last}`);
  }

  /**
   * Removes the pods' neighbour entries, each only if it still carries the pod's MAC. Entries this process
   * pinned itself with that MAC (and nobody re-pinned since, as far as it knows) are deleted straight away
   * in one `ip -batch`; the others, or all of them if that batch fails (an entry flushed meanwhile), go
   * through sync, which reads the table first.
   */
  async unpin(net: NodeNetwork, unpin: PinnedPod[]): Promise<void> {
    const pins = this.known;
    const seen = new Set<string>();
    const direct = unpin.filter((u) => {
      const ours = pins?.get(u.ip) === u.mac && !seen.has(u.ip);
      seen.add(u.ip);
      return ours;
    });
    const rest = unpin.filter((u) => !direct.includes(u));
    if (direct.length) {
      const lines = direct.map((u) => `neigh del ${u.ip} dev ${net.bridgeName}`);
      const r = await runRaw(net.hostNetns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
      if (r.code === 0) this.note(lines);
      else {
        this.forget();
        rest.push(...direct);
      }
    }
    if (rest.length) await this.sync(net, { unpin: rest });
  }
}
