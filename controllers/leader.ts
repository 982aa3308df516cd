import type { Logger } from 'pino';
import { z } from 'zod';
import { isConflict, isNotFound, PATHS, type KubeClient } from './kube.js';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews every
 * retry period; others take the lease over once renewTime + leaseDuration has passed; every write carries
 * the resourceVersion read, so two candidates never both win. A leader that cannot renew within the
 * renew deadline stops leading (the caller exits, so a new process starts clean).
 */

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEADER_TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

const Lease = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string().optional() }),
  spec: z.looseObject({
    holderIdentity: z.string().nullish(),
    leaseDurationSeconds: z.int().nullish(),
    acquireTime: z.string().nullish(),
    renewTime: z.string().nullish(),
    leaseTransitions: z.int().nullish(),
  }).default({}),
});

/** MicroTime as the API server writes it: RFC 3339 with microseconds. */
export const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private leading = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The attempt under way, which stop() waits for: else it could land after the release and keep the lease. */
  private inflight: Promise<void> | undefined;
  /** Our last write made us the holder (also after stop() began, when we no longer count as leading). */
  private holding = false;

  constructor(
    private readonly kube: KubeClient,
    private readonly opts: LeaderOptions,
    private readonly log: Logger,
    private readonly callbacks: { onStartedLeading: () => void; onStoppedLeading: () => void },
  ) {}

  get isLeader(): boolean { return this.leading; }

  start(): void {
    const tick = async () => {
      if (this.stopped) return;
      this.inflight = this.tryAcquireOrRenew().then(() => undefined, (e: Error) => {
        this.log.warn({ err: e.message }, 'lease update failed');
      });
      await this.inflight;
      this.inflight = undefined;
      if (this.stopped) return;
      if (this.leading && Date.now() - this.lastRenew > this.opts.renewDeadlineMs) {
        this.log.error({ lease: this.opts.name }, 'could not renew the lease in time; stepping down');
        this.leading = false;
        this.callbacks.onStoppedLeading();
      }
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.opts.retryPeriodMs);
    };
    void tick();
  }

  private path(): string { return `${PATHS.leases(this.opts.namespace)}/${this.opts.name}`; }

  /** One attempt; true when we hold the lease afterwards. */
  async tryAcquireOrRenew(now = Date.now()): Promise<boolean> {
    const seconds = Math.ceil(this.opts.leaseDurationMs / 1000);
    let current: z.infer<typeof Lease> | undefined;
    try {
      current = Lease.parse(await this.kube.get(this.path()));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!current) {
      try {
        await this.kube.create(PATHS.leases(this.opts.namespace), {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { holderIdentity: this.opts.identity, leaseDurationSeconds: seconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
      } catch (e) {
        if (isConflict(e)) return false; // someone else created it first
        throw e;
      }
      return this.won(now);
    }
    const spec = current.spec;
    const mine = spec.holderIdentity === this.opts.identity;
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = !spec.holderIdentity || renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < now;
    if (!mine && !expired) {
      this.holding = false;
      if (this.leading) { this.leading = false; this.callbacks.onStoppedLeading(); }
      return false;
    }
    const next = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: seconds,
        renewTime: microTime(now),
        acquireTime: mine ? spec.acquireTime ?? microTime(now) : microTime(now),
        leaseTransitions: mine ? spec.leaseTransitions ?? 0 : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      await this.kube.update(this.path(), next);
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
    return this.won(now);
  }

  private won(now: number): boolean {
    this.lastRenew = now;
    this.holding = true;
    // An attempt that was under way when stop() began: stop() hands the lease back, nobody starts leading.
    if (this.stopped) return true;
    if (!this.leading) {
      this.leading = true;
      this.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity }, 'became leader');
      this.callbacks.onStartedLeading();
    }
    return true;
  }

  /** Stops renewing and, if leading, hands the lease back so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inflight;
    if (!this.leading && !this.holding) return;
    this.leading = false;
    this.holding = false;
    try {
      const current = Lease.parse(await this.kube.get(this.path()));
      if (current.spec.holderIdentity === this.opts.identity) {
        await this.kube.update(this.path(), { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(Date.now()) } });
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not release the lease');
    }
  }
}
