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
 */
import { randomInt } from 'node:crypto';
import { Coalescer } from './coalescer.js';
import { ipRemove, type Netns } from './exec.js';
import { linkDelStep, type RemovalStep } from './kernel-errors.js';
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

/** The steps of one batch (pure): a lone removal as before, several through one group deletion. */
export function removalSteps(batch: readonly LinkRemoval[], group: number): RemovalStep[] {
  if (batch.length === 1) return [...batch[0]!.before, linkDelStep(batch[0]!.hostVeth)];
  return [...batch.flatMap((r) => r.before), ...batch.map((r) => groupSetStep(r.hostVeth, group)), groupDelStep(group)];
}

/**
 * Which of a batch's errors (ipRemove's, each `<line>: <message>`) belong to which removal (pure): those
 * of its own lines; those of a line no removal owns alone (the group deletion) or of no line, to all.
 */
export function errorsByRemoval(batch: readonly LinkRemoval[], steps: readonly RemovalStep[], errors: readonly string[]): string[][] {
  const lineOf = (e: string) => steps.find((s) => new RegExp(`^${esc(s.line)}: `).test(e))?.line;
  const own = batch.map((r) => new Set([...r.before.map((s) => s.line), linkDelStep(r.hostVeth).line, ...steps.filter((s) => s.line.startsWith(`link set dev ${r.hostVeth} group `)).map((s) => s.line)]));
  return batch.map((_, i) => errors.filter((e) => {
    const line = lineOf(e);
    if (line === undefined) return true;
    const owners = own.filter((o) => o.has(line)).length;
    return owners === 0 || own[i]!.has(line);
  }));
}

interface Queued { removal: LinkRemoval; settle: (errors: string[] | Error) => void }

export class LinkRemovals {
  private readonly batches = new Coalescer<Queued>((batch) => this.runBatch(batch));

  constructor(private readonly ns: Netns) {}

  /** Removes the routes and the veth; resolves with this removal's errors (none: all removed or gone). */
  remove(removal: LinkRemoval): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.batches.push({ removal, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
  }

  private async runBatch(batch: Queued[]): Promise<void> {
    const removals = batch.map((b) => b.removal);
    const steps = removalSteps(removals, randomInt(2 ** 30, 2 ** 31 - 1));
    try {
      const split = errorsByRemoval(removals, steps, await ipRemove(this.ns, steps));
      batch.forEach((b, i) => b.settle(split[i]!));
    } catch (e) {
      for (const b of batch) b.settle(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
