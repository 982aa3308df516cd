/**
 * Retired pod veths of one node, deleted later and together. Deleting a veth is the slow part of a DEL
 * (the kernel waits for an RCU grace period under the RTNL lock: 20-35 ms here, more than everything
 * else a DEL does), and nothing about the pod needs it: once its route is gone and its veth is down, the
 * pod can neither send nor receive. So a DEL retires the veth (link-removals.ts retireSteps: route,
 * down, into the bridge's retired group) and unpins the pod's neighbour entry, and returns; this deletes
 * the whole retired group with one `link del group` (one grace period for all of them) once the node's
 * pods have been quiet (no ADD or DEL) for `quietMs`, and at the latest `maxWaitMs` after the first
 * retirement it has not deleted yet. Then it removes the pods' anti-spoofing rules (each RetiredVeth's
 * `release`): that costs iptables-nft 10-15 ms and shares the node's queue with the ADDs' rule
 * additions, so it waits for a pause rather than delay an ADD. Until then a rule stays, which only makes
 * the down veth stricter; a new pod given the same IP has its own veth and rule. A rule left by an agent
 * that died first goes with the next agent's chain rebuild.
 *
 * Most retired veths never wait that long: a runtime deletes the pod's namespace right after DEL, and
 * the kernel then destroys the pair itself.
 *
 * The retired group is the record (names.ts retiredGroup): listAttachments, GC, CHECK and the start-up
 * reconciliation never count a retired veth as a pod, and a restarted agent deletes what a crashed one
 * left retired (NodeDatapath.ensure). An ADD that reuses a retired veth's name (same container and
 * interface, e.g. `podman restart`) first has it deleted (settle).
 */
import { ipRemove, type Netns } from './exec.js';
import { groupDelStep } from './link-removals.js';
import { datapathOptions } from './options.js';

/** A retired veth and, when its pod's IP was known, what removes the pod's anti-spoofing rule once the veth is gone. */
export interface RetiredVeth { hostVeth: string; release?: () => Promise<void> }

export interface RetiredVethsOptions {
  ns: Netns;
  group: number;
  /** When (Date.now()) a pod of the node last began or finished being attached or detached. */
  lastPodChange: () => number;
}

export class RetiredVeths {
  private readonly waiting = new Map<string, RetiredVeth>();
  /** Names in the deletion that is running. */
  private readonly reaping = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private firstWaitingAt = 0;
  private failures = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: RetiredVethsOptions) {}

  /** Delete once no pod was attached or detached for this long (ms) ... */
  private get quietMs(): number { return datapathOptions().retiredVeths.quietMs; }
  /** ... and at the latest this long after the first retirement not yet deleted (ms). */
  private get maxWaitMs(): number { return datapathOptions().retiredVeths.maxWaitMs; }

  /** Notes a veth a DEL has just retired; it is deleted with the next reap. */
  add(veth: RetiredVeth): void {
    if (!this.waiting.size) this.firstWaitingAt = Date.now();
    this.waiting.set(veth.hostVeth, veth);
    this.schedule();
  }

  /** How many retired veths wait for deletion or are being deleted. */
  get size(): number {
    return this.waiting.size + this.reaping.size;
  }

  /** Resolves once nothing waits or is being deleted, on the normal schedule (nothing is hurried). */
  idle(): Promise<void> {
    if (!this.size) return Promise.resolve();
    this.timer?.ref(); // someone waits for it now: keep the process alive until it has run
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves once `hostVeth` is not retired here any more (deleted now if it was waiting). */
  async settle(hostVeth: string): Promise<void> {
    if (this.waiting.has(hostVeth) || this.reaping.has(hostVeth)) await this.reapNow();
  }

  /** Deletes every waiting veth now (after a deletion already running); never rejects. */
  reapNow(): Promise<void> {
    this.chain = this.chain.then(() => this.reap());
    return this.chain;
  }

  /** Forgets what waits (the node was torn down, which deleted the retired group with everything else). */
  forget(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
    if (!this.size) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const now = Date.now();
    // A failing deletion is tried again less and less often, up to once a minute.
    const backoff = this.failures ? Math.min(60_000, this.maxWaitMs * 2 ** this.failures) : 0;
    const deadline = this.firstWaitingAt + this.maxWaitMs;
    const quietAt = this.opts.lastPodChange() + this.quietMs;
    const delay = Math.max(0, Math.min(quietAt, deadline) - now, backoff);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Pods came or went meanwhile: wait for the next pause (up to the deadline).
      if (!this.failures && Date.now() < deadline && this.opts.lastPodChange() + this.quietMs > Date.now()) this.schedule();
      else void this.reapNow();
    }, delay);
    // Nobody waits for it: a process that ends meanwhile leaves the veths retired, and the next agent's
    // first ensureNode deletes them.
    if (!this.idleWaiters.length) this.timer.unref();
  }

  private async reap(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.waiting.size) return;
    const batch = [...this.waiting.values()];
    this.waiting.clear();
    for (const v of batch) this.reaping.add(v.hostVeth);
    try {
      // "No such device": every veth of the group is gone already (their namespaces were deleted).
      const errors = await ipRemove(this.opts.ns, [groupDelStep(this.opts.group)]);
      if (errors.length) throw new Error(errors.join('; '));
      this.failures = 0;
      // Started together, so the node batches them into one rule change. A rule left behind by a failure
      // here is removed by the next GC or chain rebuild (its veth is gone).
      await Promise.all(batch.map((v) => v.release?.().catch(() => undefined)));
    } catch {
      // The veths stay retired (down, off the network) and wait for the next try; a newer retirement of
      // the same veth keeps its own record. (Nothing here can report: the next agent start deletes them
      // in ensureNode, which does report.)
      this.failures++;
      if (!this.waiting.size) this.firstWaitingAt = Date.now();
      for (const v of batch) if (!this.waiting.has(v.hostVeth)) this.waiting.set(v.hostVeth, v);
      this.schedule();
    } finally {
      for (const v of batch) this.reaping.delete(v.hostVeth);
      if (!this.size) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}
