/**
 * A keyed work queue in the manner of client-go's: many events for one key fold into one pending run;
 * a key never runs twice at once (an event during a run schedules one more run after it); failures retry
 * with per-key exponential backoff; a handler can ask to run again after a delay.
 */

export interface Result {
  requeueAfterMs?: number | undefined;
}

export interface WorkQueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * The delay before retrying a key whose run threw for the `failures`th time in a row; undefined: the
   * default exponential backoff (baseDelayMs doubling, up to maxDelayMs). The count resets on success.
   */
  retryDelayMs?: (key: string, error: unknown, failures: number) => number | undefined;
  onError?: (key: string, error: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private active = 0;
  private started = false;
  private stopping = false;
  private idleWaiters: Array<() => void> = [];
  readonly stats = { runs: 0, errors: 0 };

  constructor(private readonly handler: (key: string) => Promise<Result | void>, private readonly options: WorkQueueOptions) {}

  start(): void {
    this.started = true;
    this.pump();
  }

  /** Stops taking work and waits for runs in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    await this.whenIdle();
  }

  add(key: string): void {
    if (this.stopping) return;
    const t = this.timers.get(key);
    if (t) { clearTimeout(t.timer); this.timers.delete(key); }
    if (this.running.has(key)) { this.dirty.add(key); return; }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Adds the key after `ms`; an earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopping) return;
    if (ms <= 0) return this.add(key);
    if (this.queued.has(key)) return;
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => { this.timers.delete(key); this.add(key); }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  get depth(): number { return this.ready.length; }
  get inProgress(): number { return this.active; }
  get scheduled(): number { return this.timers.size; }

  /** Resolves when nothing is queued or running (delayed keys do not count). */
  whenIdle(): Promise<void> {
    if (this.active === 0 && (this.ready.length === 0 || this.stopping)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (!this.started) return;
    while (!this.stopping && this.active < this.options.concurrency && this.ready.length) {
      const key = this.ready.shift()!;
      this.queued.delete(key);
      this.running.add(key);
      this.active++;
      void this.run(key);
    }
    if (this.active === 0 && (this.ready.length === 0 || this.stopping)) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string): Promise<void> {
    let next: number | undefined;
    try {
      this.stats.runs++;
      const r = await this.handler(key);
      this.failures.delete(key);
      next = r?.requeueAfterMs;
    } catch (e) {
      this.stats.errors++;
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const base = this.options.baseDelayMs ?? 200;
      next = this.options.retryDelayMs?.(key, e, n) ?? Math.min(this.options.maxDelayMs ?? 300_000, base * 2 ** (n - 1));
      this.options.onError?.(key, e, next);
    } finally {
      this.running.delete(key);
      this.active--;
    }
    if (this.dirty.delete(key)) this.add(key);
    else if (next !== undefined) this.addAfter(key, next);
    this.pump();
  }
}
