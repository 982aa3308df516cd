/**
 * Pod veth removals of one node, coalesced. Deleting a link costs the kernel a wait for an RCU grace
 * period and a barrier (measured here: 16-80 ms per `link del` under load, the bulk of a DEL), and link
 * deletions are serialized under the RTNL lock, so 250 DELs at once each paying for their own wait take
 * seconds. One `link del group <G>` deletes every device of group G in one unregistration, with one wait:
 * 20 veths took 154 ms that way against 679 ms one by one.
 *
 * So: a removal starts at once when none is running (a lone DEL is exactly what it was: its route and
 * `link del dev`, one `ip -force -batch`); removals asked for while one runs wait for it and then go
 * together in one batch: every route, then each veth put into a fresh random group, then that group
 * deleted. Each step keeps its own "already gone" messages (kernel-errors.ts), and each request gets back
 * only the errors of its own lines (and of the group deletion, which is every request's).
 *
 * The group is a random number in [2^30, 2^31): nothing else on a node uses such a group (the default is
 * 0); a veth whose group was set but whose deletion failed keeps it, which changes nothing for it.
 *
 * A DEL does not wait for that deletion at all: it *retires* the veth (route removed, veth down, veth put
 * into the bridge's retired group) in the same kind of batch, a few ms, and retired-veths.ts deletes the
 * retired group later, in one go. Retirements and removals asked for together share one batch.
 */
import { randomInt } from 'node:crypto';
import { Coalescer } from './coalescer.js';
import { ipRemove, type Netns } from './exec.js';
import { linkDelStep, linkDownStep, type RemovalStep } from './kernel-errors.js';
import type { LinkRemoval } from './plan.js';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `link set dev <veth> group <g>`: gone if the veth is. */
export function groupSetStep(veth: string, group: number): RemovalStep {
  return { line: `link set dev ${veth} group ${group}`, gone: linkDelStep(veth).gone };
}

/** `link del group <g>`: "No such device" means no device is in the group any more (all gone already). */
export function groupDelStep(group: number): RemovalStep {
  return { line: `link del group ${group}`, gone: [/^RTNETLINK answers: No such device$/] };
}

/**
 * A retirement (pure): the pod's route, then its veth down (nothing the pod sends passes a down veth, and
 * the bridge stops forwarding to it) and into the retired group, where retired-veths.ts finds it.
 */
export function retireSteps(r: LinkRemoval, retiredGroup: number): RemovalStep[] {
  return [...r.before, linkDownStep(r.hostVeth), groupSetStep(r.hostVeth, retiredGroup)];
}

/** The steps of one batch (pure): a lone removal as before, several through one group deletion. */
export function removalSteps(batch: readonly LinkRemoval[], group: number): RemovalStep[] {
  if (!batch.length) return [];
  if (batch.length === 1) return [...batch[0]!.before, linkDelStep(batch[0]!.hostVeth)];
  return [...batch.flatMap((r) => r.before), ...batch.map((r) => groupSetStep(r.hostVeth, group)), groupDelStep(group)];
}

/**
 * Which of a batch's errors (ipRemove's, each `<line>: <message>`) belong to which removal (pure): those
 * of its own lines; those of a line no removal owns alone (the group deletion) or of no line, to all.
 */
export function errorsByRemoval(batch: readonly LinkRemoval[], steps: readonly RemovalStep[], errors: readonly string[]): string[][] {
  const lineOf = (e: string) => steps.find((s) => new RegExp(`^${esc(s.line)}: `).test(e))?.line;
  const own = batch.map((r) => new Set([...r.before.map((s) => s.line), linkDelStep(r.hostVeth).line, linkDownStep(r.hostVeth).line, ...steps.filter((s) => s.line.startsWith(`link set dev ${r.hostVeth} group `)).map((s) => s.line)]));
  return batch.map((_, i) => errors.filter((e) => {
    const line = lineOf(e);
    if (line === undefined) return true;
    const owners = own.filter((o) => o.has(line)).length;
    return owners === 0 || own[i]!.has(line);
  }));
}

interface Queued { removal: LinkRemoval; retire: boolean; settle: (errors: string[] | Error) => void }

export class LinkRemovals {
  private readonly batches = new Coalescer<Queued>((batch) => this.runBatch(batch));

  constructor(private readonly ns: Netns, private readonly retiredGroup: number) {}

  /** Removes the routes and the veth; resolves with this removal's errors (none: all removed or gone). */
  remove(removal: LinkRemoval): Promise<string[]> {
    return this.push(removal, false);
  }

  /** Removes the routes and retires the veth (retireSteps); resolves with this retirement's errors. */
  retire(removal: LinkRemoval): Promise<string[]> {
    return this.push(removal, true);
  }

  private push(removal: LinkRemoval, retire: boolean): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.batches.push({ removal, retire, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
  }

  private async runBatch(queued: Queued[]): Promise<void> {
    // Retirements first (each a few quick lines), then the removals, which wait for the kernel.
    const batch = [...queued.filter((b) => b.retire), ...queued.filter((b) => !b.retire)];
    const removals = batch.map((b) => b.removal);
    const steps = [
      ...batch.filter((b) => b.retire).flatMap((b) => retireSteps(b.removal, this.retiredGroup)),
      ...removalSteps(batch.filter((b) => !b.retire).map((b) => b.removal), randomInt(2 ** 30, 2 ** 31 - 1)),
    ];
    try {
      const split = errorsByRemoval(removals, steps, await ipRemove(this.ns, steps));
      // The removals' shared group deletion is none of a retirement's business.
      batch.forEach((b, i) => b.settle(b.retire ? split[i]!.filter((e) => !e.startsWith('link del group ')) : split[i]!));
    } catch (e) {
      for (const b of batch) b.settle(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
