// ARM's per-subscription token buckets: a burst capacity refilled at a steady rate.

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
