import type { Logger } from 'pino';
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_GROUP, POOL_LABEL } from '../crds/api/index.js';
import type { AzureAdapter } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import { parsedCaches, type Caches } from './caches.js';
import { markKey, nodeMark, poolMark, recordMark, SeenMarks } from './event-marks.js';
import { EventRecorder } from './events.js';
import { isConflict, PATHS, type KubeClient } from './kube.js';
import type { Metrics } from './metrics.js';
import { NodeReconciler } from './node-reconciler.js';
import { DEFAULT_CONTROLLER_OPTIONS, type ControllerOptions } from './options.js';
import { PoolReconciler } from './pool-reconciler.js';
import { ReconcileEvents } from './reconcile-events.js';
import { SubnetBudget } from './subnet-budget.js';
import { WorkQueue, type Result } from './workqueue.js';

export { ARGOCD_IGNORE_UPDATES_ANNOTATION, DEFAULT_CONTROLLER_OPTIONS, PROVIDER_ID_ANNOTATION, type ControllerOptions } from './options.js';

/**
 * The dispatcher. Informers keep caches of Nodes, NodeIPPools and NodeIPAllocations; events that change
 * something we act on (event-marks.ts) turn into keys on one work queue (`node/<name>`, `pool/<name>`); each
 * key runs the node reconciler (node-reconciler.ts) or the pool reconciler (pool-reconciler.ts), which read
 * the caches and Azure, decide with the pure functions in plan.ts, block-plan.ts and round-outcome.ts, make
 * at most one NIC write, and write status. Both share the subnet budget (subnet-budget.ts) and the Events.
 */
export class Controller {
  readonly queue: WorkQueue;
  private readonly opts: ControllerOptions;
  private caches!: Caches;
  private nodeReconciler!: NodeReconciler;
  private poolReconciler!: PoolReconciler;
  private readonly stoppers: Array<() => Promise<void>> = [];
  /** Last relevant state seen per object, to ignore events that change nothing we act on. */
  private readonly marks = new SeenMarks();
  private readonly budget: SubnetBudget;
  private readonly events: ReconcileEvents;
  private synced = false;

  constructor(
    private readonly kube: KubeClient,
    private readonly azure: AzureAdapter,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    options: Partial<ControllerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_CONTROLLER_OPTIONS, ...options };
    this.queue = new WorkQueue((key) => this.dispatch(key), {
      concurrency: this.opts.workers,
      baseDelayMs: this.opts.retryBaseMs,
      retryDelayMs: (_key, e, failures) =>
        e instanceof AzureCallError && e.failure.kind === 'Other' && e.failure.retryable
          ? Math.min(this.opts.transientRetryMaxMs, this.opts.retryBaseMs * 2 ** (failures - 1))
          : undefined,
      onError: (key, e, ms) => this.log.warn({ key, err: e instanceof Error ? e.message : String(e), retryInMs: ms }, 'reconcile failed'),
    });
    this.budget = new SubnetBudget(azure, { cacheMs: this.opts.subnetCacheMs ?? this.opts.resyncMs, subnetFullBackoffMs: this.opts.subnetFullBackoffMs });
    this.events = new ReconcileEvents(new EventRecorder(kube, log, {
      collection: PATHS.events(this.opts.eventNamespace), reportingController: `${API_GROUP}/controller`, reportingInstance: this.opts.instance,
    }));
  }

  get ready(): boolean { return this.synced; }

  // ---- wiring ----

  async start(): Promise<void> {
    const onError = (what: string) => (e: unknown) => this.log.warn({ err: e instanceof Error ? e.message : String(e) }, `${what} watch failed; restarting`);
    const nodes = this.kube.informer<KubernetesObject>(PATHS.nodes, onError('node'));
    const pools = this.kube.informer<KubernetesObject>(PATHS.pools, onError('pool'));
    const records = this.kube.informer<KubernetesObject>(PATHS.records, onError('record'));
    this.caches = parsedCaches({ nodes: nodes.informer, pools: pools.informer, records: records.informer }, this.log);
    const shared = { kube: this.kube, log: this.log, metrics: this.metrics, opts: this.opts, caches: this.caches, budget: this.budget, events: this.events, wakeNode: (n: string) => this.queue.add(`node/${n}`) };
    this.nodeReconciler = new NodeReconciler({ ...shared, azure: this.azure, poolSoon: (p) => this.poolSoon(p) }, this.marks);
    this.poolReconciler = new PoolReconciler(shared);

    for (const verb of ['add', 'update', 'delete'] as const) {
      nodes.informer.on(verb, (o) => this.onNode(o, verb));
      pools.informer.on(verb, (o) => this.onPool(o, verb));
      records.informer.on(verb, (o) => this.onRecord(o, verb));
    }
    await Promise.all([nodes.start(), pools.start(), records.start()]);
    this.stoppers.push(() => nodes.stop(), () => pools.stop(), () => records.stop());
    this.synced = true;
    for (const p of this.caches.pools.list()) this.queue.add(`pool/${p.metadata.name}`);
    for (const n of this.caches.nodes.list()) this.queue.add(`node/${n.metadata.name}`);
    for (const r of this.caches.records.list()) this.queue.add(`node/${r.metadata.name}`);
    this.queue.start();
    this.log.info({ nodes: this.caches.nodes.list().length, pools: this.caches.pools.list().length }, 'controller started');
  }

  async stop(): Promise<void> {
    this.synced = false;
    await this.queue.stop();
    await this.events.flush();
    for (const s of this.stoppers) await s().catch(() => {});
  }

  // ---- events ----

  private onNode(o: KubernetesObject & { spec?: { providerID?: string } }, verb: 'add' | 'update' | 'delete'): void {
    const name = o.metadata?.name ?? '';
    // Kubelets update their Node every few seconds (status, heartbeats): only labels, providerID and
    // deletion matter here, and a round costs an Azure read, so everything else is ignored.
    if (!this.marks.changed(markKey.node(name), nodeMark(o), verb)) return;
    this.queue.add(`node/${name}`);
    for (const p of this.caches.pools.list()) this.poolSoon(p.metadata.name);
  }

  private onPool(o: KubernetesObject, verb: 'add' | 'update' | 'delete'): void {
    const name = o.metadata?.name ?? '';
    this.queue.add(`pool/${name}`);
    // Our own status writes change neither generation nor deletion: no need to revisit every node.
    if (!this.marks.changed(markKey.pool(name), poolMark(o.metadata), verb)) return;
    for (const n of this.caches.nodes.list()) this.queue.add(`node/${n.metadata.name}`);
  }

  private onRecord(o: KubernetesObject, verb: 'add' | 'update' | 'delete'): void {
    const name = o.metadata?.name ?? '';
    const pool = o.metadata?.labels?.[POOL_LABEL];
    if (pool) this.poolSoon(pool);
    // Only our status changed, or the add event of a record this controller just created and served.
    if (!this.marks.changed(markKey.record(name), recordMark(o.metadata), verb, true)) return;
    this.queue.add(`node/${name}`);
  }

  private poolSoon(name: string): void {
    this.queue.addAfter(`pool/${name}`, this.opts.poolStatusDelayMs);
  }

  // ---- dispatch ----

  private async dispatch(key: string): Promise<Result | void> {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    this.log.debug({ key }, 'reconcile');
    try {
      const r = kind === 'pool' ? await this.reconcilePool(name) : await this.reconcileNode(name);
      this.metrics.reconciles.inc({ kind, result: 'ok' });
      return r;
    } catch (e) {
      this.metrics.reconciles.inc({ kind, result: e instanceof AzureCallError ? e.failure.kind : isConflict(e) ? 'Conflict' : 'error' });
      // A stale read of our own object: go again at once, with the informer's newer copy.
      if (isConflict(e)) return { requeueAfterMs: 100 };
      throw e;
    } finally {
      this.metrics.queueDepth.set(this.queue.depth);
    }
  }

  /** Level-triggered: read node, pool and record; make one step towards what should be. */
  reconcileNode(name: string): Promise<Result> { return this.nodeReconciler.reconcile(name); }

  reconcilePool(name: string): Promise<Result> { return this.poolReconciler.reconcile(name); }
}
