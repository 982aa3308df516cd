import PQueue from 'p-queue';

/**
 * ARM's budget per subscription, kept on our side so we spend it evenly instead of hitting 429s:
 * token buckets for reads and writes (ARM: 200 writes burst + 10/s, 250 reads + 25/s), a p-queue per
 * subscription and kind bounding calls in flight, and a pause of the whole subscription when ARM
 * throttles us anyway (another writer spent the budget): nothing starts until Retry-After has passed.
 * Writes to Microsoft.Network (NIC PUTs) also keep to the Network resource provider's own limit, 1,000
 * writes in any 5 minutes (per subscription and region; kept per subscription here, which is the
 * stricter reading when a subscription spans regions): a sliding window beside the write bucket.
 */

export interface BucketLimits {
  capacity: number;
  refillPerSecond: number;
}

export const ARM_WRITE_BUDGET: BucketLimits = { capacity: 200, refillPerSecond: 10 };
export const ARM_READ_BUDGET: BucketLimits = { capacity: 250, refillPerSecond: 25 };

export type CallKind = 'read' | 'write';

export interface WindowLimits {
  limit: number;
  windowSeconds: number;
}

export const NETWORK_RP_WRITE_BUDGET: WindowLimits = { limit: 1000, windowSeconds: 300 };

export interface LimiterOptions {
  concurrency: number;
  writes: BucketLimits;
  reads: BucketLimits;
  /** The Network RP's write window; NETWORK_RP_WRITE_BUDGET when absent. */
  networkWrites?: WindowLimits;
  now?: () => number;
}

/** At most `limit` calls started in any `windowSeconds`. */
export class Window {
  private readonly times: number[] = [];
  constructor(private readonly limits: WindowLimits, private readonly now: () => number) {}

  /** 0 when a call may start now (and counts it), else how long until one may. */
  take(): number {
    const t = this.now();
    const windowMs = this.limits.windowSeconds * 1000;
    while (this.times.length > 0 && this.times[0]! <= t - windowMs) this.times.shift();
    if (this.times.length < this.limits.limit) {
      this.times.push(t);
      return 0;
    }
    return Math.max(1, this.times[this.times.length - this.limits.limit]! + windowMs - t);
  }
}

class Bucket {
  private tokens: number;
  private last: number;
  constructor(private readonly limits: BucketLimits, private readonly now: () => number) {
    this.tokens = limits.capacity;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.limits.capacity, this.tokens + ((t - this.last) / 1000) * this.limits.refillPerSecond);
    this.last = t;
  }

  /** 0 when a token was taken, else how long until one will be there. */
  take(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    if (this.limits.refillPerSecond <= 0) return 60_000;
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.limits.refillPerSecond) * 1000));
  }

  drain(): void {
    this.refill();
    this.tokens = Math.min(this.tokens, 0);
  }
}

interface Lane {
  queue: PQueue;
  bucket: Bucket;
}

interface Subscription {
  read: Lane;
  write: Lane;
  networkWrites: Window;
  pausedUntil: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ArmLimiter {
  private readonly subs = new Map<string, Subscription>();
  private readonly now: () => number;
  /** Time calls spent waiting for a token or a pause, summed (ms). */
  waitedMs = 0;
  pauses = 0;

  constructor(private readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
  }

  private sub(id: string): Subscription {
    const k = id.toLowerCase();
    let s = this.subs.get(k);
    if (!s) {
      const lane = (limits: BucketLimits): Lane => ({ queue: new PQueue({ concurrency: this.options.concurrency }), bucket: new Bucket(limits, this.now) });
      s = {
        read: lane(this.options.reads), write: lane(this.options.writes),
        networkWrites: new Window(this.options.networkWrites ?? NETWORK_RP_WRITE_BUDGET, this.now), pausedUntil: 0,
      };
      this.subs.set(k, s);
    }
    return s;
  }

  /**
   * Runs `fn` once the subscription is not paused and a token of `kind` is available; a Network RP write
   * (`networkWrite`) also waits for room in the Network RP's window.
   */
  run<T>(subscriptionId: string, kind: CallKind, fn: () => Promise<T>, opts: { networkWrite?: boolean } = {}): Promise<T> {
    const s = this.sub(subscriptionId);
    const lane = s[kind];
    return lane.queue.add(async () => {
      if (kind === 'write' && opts.networkWrite === true) {
        for (;;) {
          const wait = s.networkWrites.take();
          if (wait === 0) break;
          // Look again at least every second: a pause or another clock may change the answer.
          const nap = Math.min(wait, 1000);
          this.waitedMs += nap;
          await sleep(nap);
        }
      }
      for (;;) {
        const paused = s.pausedUntil - this.now();
        if (paused > 0) {
          this.waitedMs += paused;
          await sleep(paused);
          continue;
        }
        const wait = lane.bucket.take();
        if (wait === 0) break;
        this.waitedMs += wait;
        await sleep(wait);
      }
      return fn();
    }) as Promise<T>;
  }

  /** ARM said 429: hold every call to this subscription for `ms`, and assume both budgets are spent. */
  pause(subscriptionId: string, ms: number): void {
    const s = this.sub(subscriptionId);
    const until = this.now() + ms;
    if (until > s.pausedUntil) {
      s.pausedUntil = until;
      this.pauses++;
    }
    s.read.bucket.drain();
    s.write.bucket.drain();
  }

  pausedFor(subscriptionId: string): number {
    return Math.max(0, this.sub(subscriptionId).pausedUntil - this.now());
  }

  /** Calls waiting or running. */
  inFlight(): number {
    let n = 0;
    for (const s of this.subs.values()) n += s.read.queue.size + s.read.queue.pending + s.write.queue.size + s.write.queue.pending;
    return n;
  }
}
