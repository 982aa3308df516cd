/**
 * Pending demand: pods that asked for an IP and found none. Each counts for `windowMs` after its last
 * attempt (a retried ADD of the same container counts once and refreshes its entry). Entries expire on
 * their own: a timer fires at the earliest expiry and tells the owner, so the demand written to the
 * record falls back without any further CNI traffic (nothing else may ever ask again once churn stops).
 */

export interface PendingDemandOptions {
  windowMs: number;
  /** Called after entries expired by time (not after note/clear, which the caller knows about). */
  onExpired: () => void;
  now?: () => number;
}

export class PendingDemand {
  /** Per waiting container: its last attempt, the pod it belongs to, and an earlier end once abandoned. */
  private readonly since = new Map<string, { at: number; pod?: string; until?: number }>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: PendingDemandOptions) {
    this.now = o.now ?? Date.now;
  }

  /** A pod found no IP (again): it counts, from now, for one window. Returns whether it is new (demand rose). */
  note(key: string, pod?: string): boolean {
    this.prune();
    let isNew = !this.since.has(key);
    if (pod !== undefined) {
      // A runtime retries a pod with a new sandbox (containerd: ADD fails, DEL, ADD with a new ID): the
      // pod's earlier, abandoned sandboxes stop counting, so one waiting pod is one IP of demand.
      for (const [k, e] of this.since) {
        if (k !== key && e.pod === pod) {
          this.since.delete(k);
          isNew = false;
        }
      }
    }
    this.since.set(key, { at: this.now(), ...(pod !== undefined ? { pod } : {}) });
    this.schedule();
    return isNew;
  }

  /**
   * The container is gone without an IP. If its pod is known, the pod may well come back with a new
   * sandbox a moment later (what containerd and the kubelet do after a failed ADD): it keeps counting for
   * `graceMs` at most, so the demand the controller sees does not drop between the DEL and the retry,
   * and the retry takes its place. A container of no known pod stops counting at once. Returns whether
   * the demand dropped now.
   */
  abandon(key: string, graceMs: number): boolean {
    this.prune();
    const e = this.since.get(key);
    if (!e) return false;
    if (e.pod === undefined) return this.since.delete(key);
    const until = this.now() + graceMs;
    if (e.until === undefined || until < e.until) e.until = until;
    this.schedule();
    return false;
  }

  /** The pod got an IP, or is gone (DEL, GC): it no longer counts. Returns whether it did. */
  clear(key: string): boolean {
    return this.since.delete(key);
  }

  has(key: string): boolean {
    this.prune();
    return this.since.has(key);
  }

  keys(): string[] {
    this.prune();
    return [...this.since.keys()];
  }

  count(): number {
    this.prune();
    return this.since.size;
  }

  /** The time the earliest entry expires, or undefined when there is none. */
  nextExpiry(): number | undefined {
    let earliest: number | undefined;
    for (const e of this.since.values()) {
      const end = this.endOf(e);
      earliest = earliest === undefined ? end : Math.min(earliest, end);
    }
    return earliest;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private prune(): boolean {
    const now = this.now();
    let removed = false;
    for (const [key, e] of this.since) {
      if (now >= this.endOf(e)) {
        this.since.delete(key);
        removed = true;
      }
    }
    return removed;
  }

  private endOf(e: { at: number; until?: number }): number {
    return Math.min(e.at + this.o.windowMs, e.until ?? Infinity);
  }

  /** Keeps one timer armed at the earliest expiry (an earlier one replaces a later one). */
  private schedule(): void {
    if (this.closed) return;
    const at = this.nextExpiry();
    if (at === undefined || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.closed) return;
    const expired = this.prune();
    if (this.since.size > 0) {
      // Entries refreshed since the timer was armed: wait for the new earliest expiry. With an injected
      // clock behind the real one, nothing expired yet: try again a little later rather than spin.
      const at = this.nextExpiry()!;
      this.timerAt = at;
      this.timer = setTimeout(() => this.fire(), Math.max(10, at - this.now()));
      this.timer.unref();
    }
    if (expired) this.o.onExpired();
  }
}
