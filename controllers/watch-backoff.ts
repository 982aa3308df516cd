/**
 * When to restart a watch that failed. The first restart comes almost at once (a dropped stream or a
 * compacted history is over as soon as it happened, and every moment without a watch is a moment the
 * agent does not see new IPs or the controller new demand); repeated failures (the API server down)
 * back off, doubling up to `maxMs`; a successful list resets it, and so does a quiet spell of `quietMs`
 * since the last failure (a resumed watch does not list again, and may see no event for a while). Used by the agent's record watch and the
 * controller's informers.
 */
export class WatchBackoff {
  private failures = 0;
  private lastFailure = -Infinity;

  constructor(private readonly o: { firstMs?: number; maxMs: number; quietMs?: number; now?: () => number } = { maxMs: 2000 }) {}

  /** The delay before the next restart, counting this failure. */
  next(): number {
    const now = (this.o.now ?? Date.now)();
    if (now - this.lastFailure > (this.o.quietMs ?? 30_000)) this.failures = 0;
    this.lastFailure = now;
    const first = this.o.firstMs ?? 100;
    const ms = Math.min(this.o.maxMs, first * 2 ** Math.min(this.failures, 20));
    this.failures++;
    return ms;
  }

  /** The watch works again (a list went through): the next failure restarts quickly again. */
  reset(): void {
    this.failures = 0;
  }
}
