/**
 * The ADDs' node-side `ip -batch` of one node, coalesced. 250 pods starting at once are 250 `ip`
 * processes on the node side alone, and on a small machine the process starts, not the kernel work, are
 * what an ADD burst waits for. So: a batch starts at once when none is running (a lone ADD is exactly one
 * `ip -batch` of its lines, as before); the ADDs that arrive meanwhile go next, their lines one after the
 * other in one `ip -batch`.
 *
 * Each pod's lines keep their meaning: `ip -batch` (without -force) stops at the first failing line and
 * says which (`Command failed -:N`). The pods whose lines all came before it are done; the pod that owns
 * it gets the error (exactly what its own batch would have said, but for N), with its earlier lines run as
 * they would have been; the pods after it did not run at all and go again. A failure ip does not number
 * (a `neigh` line ends the process without `Command failed`) cannot be placed: then every pod of the batch
 * runs again alone, as before (a pod whose lines had all run then finds its veth, "File exists", which
 * attachPod already handles as a retried ADD).
 */
import { Coalescer } from './coalescer.js';
import { commandError, ipBatch, runRaw, type Netns } from './exec.js';

interface Queued { lines: string[]; settle: (e?: unknown) => void }

const ARGV = ['ip', '-batch', '-'];

/**
 * Whose lines a failing batch stopped at (pure): index of the pod owning 1-based line `failedLine`;
 * undefined if the number is outside the batch.
 */
export function ownerOfLine(lineCounts: readonly number[], failedLine: number): number | undefined {
  let end = 0;
  for (const [i, n] of lineCounts.entries()) {
    end += n;
    if (failedLine <= end) return failedLine >= 1 ? i : undefined;
  }
  return undefined;
}

export class HostBatches {
  private readonly batches = new Coalescer<Queued>((batch) => this.runBatch(batch));

  constructor(private readonly ns: Netns) {}

  /** Runs the lines as `ip -batch` (in order, stopping at the first failure) and rejects like ipBatch would. */
  run(lines: string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.batches.push({ lines, settle: (e) => (e === undefined ? resolve() : reject(e)) });
    });
  }

  /** Settles each request; returns those that did not run (after a numbered failure) to go again first. */
  private async runBatch(batch: Queued[]): Promise<Queued[]> {
    if (batch.length === 1) { await this.alone(batch[0]!); return []; }
    let r;
    try {
      r = await runRaw(this.ns, ARGV, batch.flatMap((q) => q.lines).join('\n') + '\n');
    } catch (e) {
      for (const q of batch) q.settle(e);
      return [];
    }
    if (r.code === 0) { for (const q of batch) q.settle(); return []; }
    const numbered = /^Command failed -:(\d+)$/m.exec(r.stderr);
    const owner = numbered ? ownerOfLine(batch.map((q) => q.lines.length), Number(numbered[1])) : undefined;
    if (owner === undefined) {
      for (const q of batch) await this.alone(q);
      return [];
    }
    for (const q of batch.slice(0, owner)) q.settle();
    batch[owner]!.settle(commandError(this.ns, ARGV, r));
    return batch.slice(owner + 1);
  }

  private async alone(q: Queued): Promise<void> {
    try {
      await ipBatch(this.ns, q.lines);
      q.settle();
    } catch (e) {
      q.settle(e);
    }
  }
}
