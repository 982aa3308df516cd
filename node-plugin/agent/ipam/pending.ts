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
  private readonly since = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: PendingDemandOptions) {
    this.now = o.now ?? Date.now;
  }

  /** A pod found no IP (again): it counts, from now, for one window. Returns whether it is new (demand rose). */
  note(key: string): boolean {
    const isNew = !this.has(key);
    this.since.set(key, this.now());
    this.schedule();
    return isNew;
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
    for (const at of this.since.values()) earliest = earliest === undefined ? at : Math.min(earliest, at);
    return earliest === undefined ? undefined : earliest + this.o.windowMs;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private prune(): boolean {
    const now = this.now();
    let removed = false;
    for (const [key, at] of this.since) {
      if (now - at >= this.o.windowMs) {
        this.since.delete(key);
        removed = true;
      }
    }
    return removed;
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
