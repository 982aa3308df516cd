import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import type { NodeIPPool } from '../../crds/api/nodeippool.js';
import type { PoolSettings } from './address-service.js';

/**
 * What the agent writes back to its own NodeIPAllocation (spec.demand and spec.releasedIPs only), and
 * when: a pure comparison against what was last written, plus a coalescing writer that folds many
 * changes into one write at most every `minIntervalMs`.
 */

export interface SpecWrite {
  demand: { usedIPs: number; pendingIPs: number };
  releasedIPs: string[];
  /** Block mode only: the /28s given back whole (spec.releasedBlocks). */
  releasedBlocks?: string[];
}

/** Where records come from and spec writes go: the API server, or a file (tests, the benchmark). */
export interface RecordSource {
  /**
   * Calls onUpdate, in order, with each new version of the node's record; with `undefined` when the
   * source knows the record does not exist (after a complete list, or on deletion), never merely
   * because it could not read it.
   */
  start(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void>;
  writeSpec(write: SpecWrite): Promise<void>;
  stop(): Promise<void>;
}

/** The merge patch for spec, or undefined when the record already says this. */
export function specPatch(desired: SpecWrite, current: SpecWrite | undefined): { spec: SpecWrite } | undefined {
  if (current && sameWrite(desired, current)) return undefined;
  return {
    spec: {
      demand: { ...desired.demand },
      releasedIPs: [...desired.releasedIPs].sort(),
      ...(desired.releasedBlocks !== undefined ? { releasedBlocks: [...desired.releasedBlocks].sort() } : {}),
    },
  };
}

export function sameWrite(a: SpecWrite, b: SpecWrite): boolean {
  if (a.demand.usedIPs !== b.demand.usedIPs || a.demand.pendingIPs !== b.demand.pendingIPs) return false;
  return sameSet(a.releasedIPs, b.releasedIPs) && sameSet(a.releasedBlocks ?? [], b.releasedBlocks ?? []);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sb = new Set(b);
  return a.every((x) => sb.has(x));
}

/** What the record's spec currently says, to avoid rewriting the same values after a restart. */
export function writtenSpec(record: NodeIPAllocation): SpecWrite | undefined {
  if (!record.spec.demand) return undefined;
  return { demand: { usedIPs: record.spec.demand.usedIPs, pendingIPs: record.spec.demand.pendingIPs ?? 0 }, releasedIPs: record.spec.releasedIPs ?? [],
    ...(record.spec.releasedBlocks !== undefined ? { releasedBlocks: record.spec.releasedBlocks } : {}) };
}

export function poolSettingsFrom(pool: NodeIPPool): PoolSettings {
  return {
    snat: { enabled: pool.spec.snat.enabled, excludeCIDRs: [...pool.spec.snat.excludeCIDRs] },
    ipsPerNode: { min: pool.spec.ipsPerNode.min, max: pool.spec.ipsPerNode.max },
    scaling: { ...pool.spec.scaling },
    ...(pool.spec.allocation === 'Block' ? { allocation: 'Block' as const } : {}),
  };
}

export interface CoalescingWriterOptions {
  /** Computes what should be written now (may do durable work first, e.g. record releases). */
  desired: () => Promise<SpecWrite>;
  write: (patch: { spec: SpecWrite }) => Promise<void>;
  minIntervalMs: number;
  /** The shorter spacing for writes that raise demand (a pod is waiting); default 100 ms. */
  urgentIntervalMs?: number;
  /** Whether there is anything to write to (the record exists); while false, nothing is written or retried. */
  enabled?: () => boolean;
  /** Back-off after a failed write. */
  retryMs?: number;
  onError?: (err: unknown) => void;
  now?: () => number;
}

/**
 * Many `poke()`s become at most one write per `minIntervalMs`; a write happens only when the desired
 * values differ from the last successful write. Failed writes are retried.
 */
export class CoalescingWriter {
  private last: SpecWrite | undefined;
  private lastAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private urgent = false;
  private stopped = false;
  writes = 0;

  constructor(private readonly o: CoalescingWriterOptions) {}

  /** Tells the writer what the record says now (e.g. after a restart). */
  observe(current: SpecWrite | undefined): void {
    if (current && !this.last) this.last = current;
  }

  /** A different record (deleted and created again): what was written to the old one counts for nothing. */
  reset(current: SpecWrite | undefined): void {
    this.last = current;
    this.poke();
  }

  /**
   * Something changed. `demandRaised`: a pod is waiting for an IP, so the write goes out now rather than
   * after the rest of the interval (the controller cannot add IPs before it hears), at most one per
   * `urgentIntervalMs` and never two at once, so a burst of waiting pods still folds into few writes.
   */
  poke(opts: { demandRaised?: boolean } = {}): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      this.urgent ||= opts.demandRaised === true;
      return;
    }
    if (this.timer && !opts.demandRaised) return;
    if (this.timer) clearTimeout(this.timer);
    const now = (this.o.now ?? Date.now)();
    const interval = opts.demandRaised ? Math.min(this.o.urgentIntervalMs ?? 100, this.o.minIntervalMs) : this.o.minIntervalMs;
    const wait = Math.max(0, this.lastAt + interval - now);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run().finally(() => {
        this.running = undefined;
        if (this.again) {
          const demandRaised = this.urgent;
          this.again = false;
          this.urgent = false;
          this.poke({ demandRaised });
        }
      });
    }, wait);
  }

  private async run(): Promise<void> {
    if (this.o.enabled && !this.o.enabled()) return; // a poke when it becomes enabled writes
    try {
      const desired = await this.o.desired();
      const patch = specPatch(desired, this.last);
      if (!patch) return;
      this.lastAt = (this.o.now ?? Date.now)();
      await this.o.write(patch);
      this.last = patch.spec;
      this.writes++;
    } catch (err) {
      this.o.onError?.(err);
      if (!this.stopped) setTimeout(() => this.poke(), this.o.retryMs ?? 1000).unref();
    }
  }

  /** Writes whatever is outstanding now (graceful shutdown), then stops. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    this.stopped = true;
    await this.run();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
