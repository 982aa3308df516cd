// Throttling as ARM and the Network resource provider do it: per-subscription token buckets (burst capacity
// refilled at a steady rate) and the Network RP's sliding write window per subscription and region.

export interface BucketLimits { capacity: number; refillPerSecond: number }

export const ARM_DEFAULT_LIMITS: { reads: BucketLimits; writes: BucketLimits } = {
  writes: { capacity: 200, refillPerSecond: 10 },
  reads: { capacity: 250, refillPerSecond: 25 },
};

export interface TakeResult { ok: boolean; remaining: number; retryAfterMs: number }

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private limits: BucketLimits, private readonly now: () => number = Date.now) {
    this.tokens = limits.capacity;
    this.last = now();
  }

  setLimits(limits: BucketLimits): void {
    this.refill();
    this.limits = limits;
    this.tokens = Math.min(this.tokens, limits.capacity);
  }

  take(): TakeResult {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true, remaining: Math.floor(this.tokens), retryAfterMs: 0 };
    }
    const missing = 1 - this.tokens;
    const retryAfterMs = this.limits.refillPerSecond > 0 ? Math.ceil((missing / this.limits.refillPerSecond) * 1000) : 3_600_000;
    return { ok: false, remaining: 0, retryAfterMs };
  }

  private refill(): void {
    const now = this.now();
    const elapsed = (now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.limits.capacity, this.tokens + elapsed * this.limits.refillPerSecond);
  }
}

/**
 * The Network resource provider's own write limit, on top of ARM's buckets: at most `limit` writes in any
 * `windowSeconds` (Azure: 1,000 per 5 minutes per subscription and region). A sliding window, exact to the
 * stated limit: a token bucket of the same rate would let 2,000 through in the first five minutes.
 */
export interface WindowLimits { limit: number; windowSeconds: number }

export const NETWORK_RP_WRITE_LIMITS: WindowLimits = { limit: 1000, windowSeconds: 300 };

export class SlidingWindow {
  /** Times of the writes let through, oldest first (a ring would do; a window holds at most `limit`). */
  private readonly times: number[] = [];
  constructor(private limits: WindowLimits, private readonly now: () => number = Date.now) {}

  setLimits(limits: WindowLimits): void { this.limits = limits; }

  take(): TakeResult {
    const t = this.now();
    const windowMs = this.limits.windowSeconds * 1000;
    while (this.times.length > 0 && this.times[0]! <= t - windowMs) this.times.shift();
    if (this.times.length < this.limits.limit) {
      this.times.push(t);
      return { ok: true, remaining: this.limits.limit - this.times.length, retryAfterMs: 0 };
    }
    // The oldest write in the window leaves it at times[k] + window, where k makes room for one more.
    const k = this.times.length - this.limits.limit;
    return { ok: false, remaining: 0, retryAfterMs: Math.max(1, this.times[k]! + windowMs - t) };
  }
}

export interface ThrottleSettings {
  throttling: { enabled: boolean; reads: BucketLimits; writes: BucketLimits };
  networkWriteLimit: WindowLimits & { enabled: boolean };
}

/** ARM's answer to one request: let through or not, and the remaining-requests headers it carries either way. */
export interface ArmTake { ok: boolean; retryAfterMs: number; headers: Record<string, string> }

/** The emulator's throttles: ARM's buckets by subscription, the Network RP's windows by subscription and region. */
export class Throttles {
  private readonly buckets = new Map<string, { reads: TokenBucket; writes: TokenBucket }>();
  private readonly networkWindows = new Map<string, SlidingWindow>();

  constructor(private settings: () => ThrottleSettings) {}

  /** Applies changed limits to the buckets and windows already made (new ones read them when made). */
  limitsChanged(): void {
    const s = this.settings();
    for (const w of this.networkWindows.values()) w.setLimits(s.networkWriteLimit);
    for (const b of this.buckets.values()) {
      b.reads.setLimits(s.throttling.reads);
      b.writes.setLimits(s.throttling.writes);
    }
  }

  /** Refills everything: new buckets start full, new windows empty. */
  reset(): void { this.buckets.clear(); this.networkWindows.clear(); }

  takeArm(sub: string, write: boolean): ArmTake {
    const s = this.settings().throttling;
    if (!s.enabled) return { ok: true, retryAfterMs: 0, headers: {} };
    const k = sub.toLowerCase();
    let b = this.buckets.get(k);
    if (!b) {
      b = { reads: new TokenBucket(s.reads), writes: new TokenBucket(s.writes) };
      this.buckets.set(k, b);
    }
    const r = (write ? b.writes : b.reads).take();
    const name = write ? 'writes' : 'reads';
    return {
      ok: r.ok,
      retryAfterMs: r.retryAfterMs,
      headers: {
        [`x-ms-ratelimit-remaining-subscription-${name}`]: String(r.remaining),
        [`x-ms-ratelimit-remaining-subscription-global-${name}`]: String(r.remaining),
      },
    };
  }

  /** A Microsoft.Network write against the window of its subscription and region; undefined when not applied. */
  takeNetworkWrite(sub: string, location: string): TakeResult | undefined {
    const s = this.settings();
    const lim = s.networkWriteLimit;
    if (!s.throttling.enabled || !lim.enabled) return undefined;
    const k = `${sub.toLowerCase()}/${location.toLowerCase()}`;
    let w = this.networkWindows.get(k);
    if (!w) { w = new SlidingWindow(lim); this.networkWindows.set(k, w); }
    return w.take();
  }
}
