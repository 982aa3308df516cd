import type { Logger } from 'pino';
import { z } from 'zod';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  API_GROUP, API_GROUP_VERSION, BLOCK_SIZE, NodeIPAllocation, NodeIPPool, ObjectMeta, POOL_LABEL, RELEASE_FINALIZER,
  type NodeIPAllocationStatus,
} from '../crds/api/index.js';
import { describeIssues } from '../crds/api/validation.js';
import { ipToInt } from '../crds/ipv4.js';
import type { AzureAdapter, NodeNic, SubnetDetails } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import { EventRecorder, type Regarding } from './events.js';
import { isConflict, isNotFound, KubeError, PATHS, type KubeClient } from './kube.js';
import type { Metrics } from './metrics.js';
import { hasChanges, nextIpConfigs, planNode, planRelease, poolIpConfigs, type Plan } from './plan.js';
import { parseProviderID, type MachineRef } from './providerid.js';
import { isBlock, nextBlockIpConfigs, planBlocks, poolBlocks } from './block-plan.js';
import { fragmentedCondition, modeConflictCondition, modeConflicts, type PoolModeView } from './block-conditions.js';
import { choosePool, selectorMatches, type PoolCandidate } from './select.js';
import { conditionOf, setConditions, subnetDisplayName, summarizePool, type ConditionInput, type RecordSummary } from './status.js';
import { PoolGauges, nodeFigures } from './pool-metrics.js';
import { SubnetHealth } from './subnet-health.js';
import { WorkQueue, type Result } from './workqueue.js';

/**
 * The reconcilers. Informers keep caches of Nodes, NodeIPPools and NodeIPAllocations; events turn into
 * keys on one work queue (`node/<name>`, `pool/<name>`); each run reads the caches and Azure, decides
 * with the pure functions in plan.ts, makes at most one NIC write, and writes status.
 */

export const PROVIDER_ID_ANNOTATION = `${API_GROUP}/provider-id`;
/** Argo CD applies its ignore-resource-updates rules only to resources carrying this annotation. */
export const ARGOCD_IGNORE_UPDATES_ANNOTATION = 'argocd.argoproj.io/ignore-resource-updates';

/** Azure refused the pool subnet on a node's NIC: what to say meanwhile, and when to try again. */
interface Refusal {
  subnetId: string;
  until: number;
  count: number;
  message: string;
}

/** A pool subnet as last read, and the free addresses left after our own adds and removes since. */
interface SubnetEntry {
  at: number;
  details: Promise<SubnetDetails>;
  /** Set from the read when it lands; then lowered by each add we plan, raised by each remove. */
  free?: number;
  /** Free aligned /28s by the same count (Block pools). */
  freeBlocks?: number;
  /** The subnet had free addresses but no aligned /28 for a Block pool: since when, and what to say. */
  fragmented?: { since: number; message: string };
  /** When our count first reached zero (for the pool's SubnetExhausted condition). */
  noRoomSince?: number;
  /** The read could not tell the headroom, and that was said once. */
  warned?: boolean;
}

export interface ControllerOptions {
  workers: number;
  /** Re-read every node's NIC this often even without events (drift, lost events). */
  resyncMs: number;
  /** Re-read a pool subnet (its free addresses) this often; defaults to resyncMs. */
  subnetCacheMs?: number;
  /** Namespace for Events about cluster-scoped objects. */
  eventNamespace: string;
  /** Identity in Events (pod name). */
  instance: string;
  subnetFullBackoffMs: number;
  /**
   * After Azure refused the pool subnet on a node's NIC (IpConfigurationsOnSameNicCannotUseDifferentSubnets):
   * no Azure call for that node for this long, doubling with each refusal up to max(this, resyncMs). Only a
   * change outside the cluster (the platform allowing several subnets per NIC) or of the pool's subnet fixes it.
   */
  subnetNotAllowedBackoffMs: number;
  /** Delay that folds many record changes into one pool status write. */
  poolStatusDelayMs: number;
  retryBaseMs: number;
  /**
   * Longest wait before retrying after a transient Azure failure (5xx, a failed long-running operation, a
   * dropped connection): the backoff doubles from retryBaseMs up to this, and resets on success. Other
   * failures (authorization, bad requests) keep doubling up to 5 minutes. Pods wait for IPs meanwhile;
   * the ARM budget is still kept by the limiter, which holds calls back rather than letting them fail.
   */
  transientRetryMaxMs: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = {
  workers: 32,
  resyncMs: 600_000,
  eventNamespace: 'default',
  instance: 'podvnet-controller',
  subnetFullBackoffMs: 30_000,
  subnetNotAllowedBackoffMs: 300_000,
  poolStatusDelayMs: 1000,
  retryBaseMs: 200,
  transientRetryMaxMs: 500,
};

const NodeObject = z.looseObject({
  metadata: ObjectMeta,
  spec: z.looseObject({ providerID: z.string().optional() }).optional(),
});
type NodeObject = z.infer<typeof NodeObject>;

type Pool = NodeIPPool;
type Record_ = NodeIPAllocation;

interface Cache<T> {
  get(name: string): T | undefined;
  list(): T[];
}

/** Parses cached objects once per version: the same object from the informer is parsed once. */
function parsedCache<T>(schema: z.ZodType<T>, what: string, raw: () => readonly KubernetesObject[], one: (name: string) => KubernetesObject | undefined, log: Logger): Cache<T> {
  const memo = new WeakMap<object, T | null>();
  const parse = (o: KubernetesObject | undefined): T | undefined => {
    if (!o) return undefined;
    const hit = memo.get(o);
    if (hit !== undefined) return hit ?? undefined;
    const r = schema.safeParse(o);
    if (!r.success) log.warn({ name: o.metadata?.name, problems: describeIssues(r.error) }, `ignoring invalid ${what}`);
    memo.set(o, r.success ? r.data : null);
    return r.success ? r.data : undefined;
  };
  return {
    get: (name) => parse(one(name)),
    list: () => raw().map((o) => parse(o)).filter((x): x is T => x !== undefined),
  };
}

const now = () => new Date().toISOString();
const sortIPs = (a: { ip: string }, b: { ip: string }) => ipToInt(a.ip) - ipToInt(b.ip);

export class Controller {
  readonly queue: WorkQueue;
  private readonly opts: ControllerOptions;
  private nodes!: Cache<NodeObject>;
  private pools!: Cache<Pool>;
  private records!: Cache<Record_>;
  private readonly stoppers: Array<() => Promise<void>> = [];
  /** Last relevant state seen per object (generation, deletion, labels...), to ignore events that change nothing we act on. */
  private readonly seenMarks = new Map<string, string>();
  private readonly subnets = new Map<string, SubnetEntry>();
  private readonly health = new Map<string, SubnetHealth>();
  private readonly nicHints = new Map<string, string>();
  private readonly shortSince = new Map<string, number>();
  /** Nodes whose NIC refused ip-configs of their pool's subnet, by node name. */
  private readonly refused = new Map<string, Refusal>();
  private readonly events: EventRecorder;
  private readonly gauges: PoolGauges;
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
    this.gauges = new PoolGauges(metrics);
    this.events = new EventRecorder(kube, log, {
      collection: PATHS.events(this.opts.eventNamespace), reportingController: `${API_GROUP}/controller`, reportingInstance: this.opts.instance,
    });
  }

  get ready(): boolean { return this.synced; }

  // ---- wiring ----

  async start(): Promise<void> {
    const onError = (what: string) => (e: unknown) => this.log.warn({ err: e instanceof Error ? e.message : String(e) }, `${what} watch failed; restarting`);
    const nodes = this.kube.informer<KubernetesObject>(PATHS.nodes, onError('node'));
    const pools = this.kube.informer<KubernetesObject>(PATHS.pools, onError('pool'));
    const records = this.kube.informer<KubernetesObject>(PATHS.records, onError('record'));
    this.nodes = parsedCache(NodeObject, 'Node', () => nodes.informer.list(), (n) => nodes.informer.get(n), this.log);
    this.pools = parsedCache(NodeIPPool as unknown as z.ZodType<Pool>, 'NodeIPPool', () => pools.informer.list(), (n) => pools.informer.get(n), this.log);
    this.records = parsedCache(NodeIPAllocation as unknown as z.ZodType<Record_>, 'NodeIPAllocation', () => records.informer.list(), (n) => records.informer.get(n), this.log);

    for (const verb of ['add', 'update', 'delete'] as const) {
      nodes.informer.on(verb, (o) => this.onNode(o, verb));
      pools.informer.on(verb, (o) => this.onPool(o, verb));
      records.informer.on(verb, (o) => this.onRecord(o, verb));
    }
    await Promise.all([nodes.start(), pools.start(), records.start()]);
    this.stoppers.push(() => nodes.stop(), () => pools.stop(), () => records.stop());
    this.synced = true;
    for (const p of this.pools.list()) this.queue.add(`pool/${p.metadata.name}`);
    for (const n of this.nodes.list()) this.queue.add(`node/${n.metadata.name}`);
    for (const r of this.records.list()) this.queue.add(`node/${r.metadata.name}`);
    this.queue.start();
    this.log.info({ nodes: this.nodes.list().length, pools: this.pools.list().length }, 'controller started');
  }

  async stop(): Promise<void> {
    this.synced = false;
    await this.queue.stop();
    await this.events.flush();
    for (const s of this.stoppers) await s().catch(() => {});
  }

  private onNode(o: KubernetesObject & { spec?: { providerID?: string } }, verb: string): void {
    const name = o.metadata?.name ?? '';
    // Kubelets update their Node every few seconds (status, heartbeats): only labels, providerID and
    // deletion matter here, and a round costs an Azure read, so everything else is ignored.
    const key = `nodeobj/${name}`;
    const mark = `${JSON.stringify(Object.entries(o.metadata?.labels ?? {}).sort())}|${o.spec?.providerID ?? ''}|${o.metadata?.deletionTimestamp ?? ''}`;
    if (verb === 'update' && this.seenMarks.get(key) === mark) return;
    if (verb === 'delete') this.seenMarks.delete(key);
    else this.seenMarks.set(key, mark);
    this.queue.add(`node/${name}`);
    for (const p of this.pools.list()) this.poolSoon(p.metadata.name);
  }

  private onPool(o: KubernetesObject, verb: string): void {
    const name = o.metadata?.name ?? '';
    this.queue.add(`pool/${name}`);
    // Our own status writes change neither generation nor deletion: no need to revisit every node.
    const key = `pool/${name}`;
    const mark = `${o.metadata?.generation}/${o.metadata?.deletionTimestamp ?? ''}`;
    if (verb === 'update' && this.seenMarks.get(key) === mark) return;
    this.seenMarks.set(key, mark);
    if (verb === 'delete') this.seenMarks.delete(key);
    for (const n of this.nodes.list()) this.queue.add(`node/${n.metadata.name}`);
  }

  private onRecord(o: KubernetesObject, verb: string): void {
    const name = o.metadata?.name ?? '';
    const pool = o.metadata?.labels?.[POOL_LABEL];
    if (pool) this.poolSoon(pool);
    const key = `record/${name}`;
    const mark = `${o.metadata?.generation}/${o.metadata?.deletionTimestamp ?? ''}/${(o.metadata?.finalizers ?? []).join(',')}`;
    // Only our status changed, or the add event of a record this controller just created and served.
    if (verb !== 'delete' && this.seenMarks.get(key) === mark) return;
    this.seenMarks.set(key, mark);
    if (verb === 'delete') this.seenMarks.delete(key);
    this.queue.add(`node/${name}`);
  }

  private poolSoon(name: string): void {
    this.queue.addAfter(`pool/${name}`, this.opts.poolStatusDelayMs);
  }

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

  // ---- nodes ----

  private poolCandidates(): PoolCandidate[] {
    return this.pools.list().map((p) => ({
      name: p.metadata.name, creationTimestamp: p.metadata.creationTimestamp, selector: p.spec.nodeSelector, deleting: !!p.metadata.deletionTimestamp,
    }));
  }

  /** Level-triggered: read node, pool and record; make one step towards what should be. */
  async reconcileNode(name: string): Promise<Result> {
    const node = this.nodes.get(name);
    const record = this.records.get(name);
    const live = node && !node.metadata.deletionTimestamp ? node : undefined;
    const winner = live ? choosePool(this.poolCandidates(), live.metadata.labels).winner : undefined;

    if (record) {
      const pool = this.pools.get(record.spec.poolName);
      const keep = live && pool && !pool.metadata.deletionTimestamp && winner === record.spec.poolName && !record.metadata.deletionTimestamp;
      if (!keep) return this.teardown(record, live);
      return this.sync(live!, pool!, record);
    }
    if (!live || !winner) {
      this.nicHints.delete(name);
      return {};
    }
    const pool = this.pools.get(winner)!;
    const created = await this.createRecord(live, pool);
    return created ? this.sync(live, pool, created) : {};
  }

  private async createRecord(node: NodeObject, pool: Pool): Promise<Record_ | undefined> {
    // Only what the controller decides: nothing of the pool's labels or annotations.
    const annotations: Record<string, string> = { [ARGOCD_IGNORE_UPDATES_ANNOTATION]: 'true' };
    if (node.spec?.providerID) annotations[PROVIDER_ID_ANNOTATION] = node.spec.providerID;
    const ownerReferences = [
      { apiVersion: API_GROUP_VERSION, kind: 'NodeIPPool', name: pool.metadata.name, uid: pool.metadata.uid!, controller: true, blockOwnerDeletion: true },
    ];
    if (node.metadata.uid) ownerReferences.push({ apiVersion: 'v1', kind: 'Node', name: node.metadata.name, uid: node.metadata.uid, controller: false, blockOwnerDeletion: false });
    const body = {
      apiVersion: API_GROUP_VERSION,
      kind: 'NodeIPAllocation',
      metadata: { name: node.metadata.name, labels: { [POOL_LABEL]: pool.metadata.name }, annotations, finalizers: [RELEASE_FINALIZER], ownerReferences },
      spec: { poolName: pool.metadata.name, releasedIPs: [] },
    };
    // The watch may deliver the new record before the POST returns: mark it as served beforehand, so its
    // add event does not cost the node a second round (and a second NIC read).
    this.seenMarks.set(`record/${node.metadata.name}`, `1//${RELEASE_FINALIZER}`);
    try {
      const created = await this.kube.create<KubernetesObject>(PATHS.records, body);
      const m = created.metadata;
      this.seenMarks.set(`record/${node.metadata.name}`, `${m?.generation}/${m?.deletionTimestamp ?? ''}/${(m?.finalizers ?? []).join(',')}`);
      this.log.info({ node: node.metadata.name, pool: pool.metadata.name }, 'created node record');
      return NodeIPAllocation.parse(created) as Record_;
    } catch (e) {
      this.seenMarks.delete(`record/${node.metadata.name}`);
      if (e instanceof KubeError && e.status === 409) return undefined; // exists already: the informer will bring it
      throw e;
    }
  }

  private machineOf(record: Record_, node: NodeObject | undefined): MachineRef | undefined {
    const candidates = [node?.spec?.providerID, record.metadata.annotations?.[PROVIDER_ID_ANNOTATION], record.status?.nic?.vmID ? `azure://${record.status.nic.vmID}` : undefined];
    for (const c of candidates) {
      if (!c) continue;
      try { return parseProviderID(c); } catch { /* try the next source */ }
    }
    return undefined;
  }

  /** The node left the pool (or the pool or node is going): give our ip-configs back, then let the record go. */
  private async teardown(record: Record_, node: NodeObject | undefined): Promise<Result> {
    const name = record.metadata.name;
    const path = `${PATHS.records}/${name}`;
    if (!record.metadata.deletionTimestamp) {
      this.log.info({ node: name, pool: record.spec.poolName, nodeExists: !!node }, 'node left its pool; deleting record');
      try { await this.kube.delete(path); } catch (e) { if (!isNotFound(e)) throw e; }
      return {};
    }
    if (!(record.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) return {};
    const machine = this.machineOf(record, node);
    if (machine) {
      try {
        const nic = await this.azure.getNodeNic(machine, this.nicHints.get(name) ?? record.status?.nic?.id);
        const remove = planRelease(nic.ipConfigs);
        if (remove.length) {
          const started = Date.now();
          const after = await this.azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: [], remove }, record.status?.subnet?.id ?? ''));
          this.nicChanged(record, this.pools.get(record.spec.poolName), nic, after, 0, remove.length, started);
          this.metrics.ipConfigChanges.inc({ change: 'removed' }, remove.length);
          const blocksGone = nic.ipConfigs.filter((c) => remove.includes(c.name) && isBlock(c)).length;
          this.roomMade(this.pools.get(record.spec.poolName)?.spec.subnetID ?? record.status?.subnet?.id ?? '', remove.length + blocksGone * (BLOCK_SIZE - 1), blocksGone);
          this.log.info({ node: name, removed: remove.length }, 'gave ip-configs back');
        }
      } catch (e) {
        if (!(e instanceof AzureCallError)) throw e;
        if (e.failure.kind === 'NotFound') {
          this.log.info({ node: name }, 'NIC or VM is gone: nothing to give back');
        } else {
          return this.azureRetry(e, name);
        }
      }
    }
    const finalizers = (record.metadata.finalizers ?? []).filter((f) => f !== RELEASE_FINALIZER);
    try {
      await this.kube.mergePatch(path, { metadata: { resourceVersion: record.metadata.resourceVersion, finalizers } });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.nicHints.delete(name);
    this.shortSince.delete(name);
    this.refused.delete(name);
    this.poolSoon(record.spec.poolName);
    return {};
  }

  /** Addresses went back to a subnet: nodes waiting for room there try again now, not at their backoff. */
  private roomMade(subnetId: string, count: number, blocks = 0): void {
    if (count <= 0) return;
    const entry = this.subnets.get(subnetId.toLowerCase());
    if (entry?.freeBlocks !== undefined) entry.freeBlocks += blocks;
    if (entry && blocks > 0) entry.fragmented = undefined;
    const h = this.health.get(subnetId.toLowerCase());
    const noRoom = entry?.free !== undefined && entry.free <= 0;
    if (entry?.free !== undefined) {
      entry.free += count;
      entry.noRoomSince = undefined;
    }
    const wasShort = noRoom || h?.exhausted !== undefined || h?.maxAdds !== undefined;
    h?.onReleased(count);
    if (!wasShort) return;
    // `count` addresses serve at most `count` waiting nodes: wake no more (each round costs a NIC read).
    let wake = count;
    for (const r of this.records.list()) {
      if (wake <= 0) break;
      const reason = conditionOf(r.status?.conditions, 'Ready')?.reason;
      if ((reason === 'SubnetFull' || reason === 'Growing' || reason === 'NoAlignedBlock') && this.pools.get(r.spec.poolName)?.spec.subnetID.toLowerCase() === subnetId.toLowerCase()) {
        this.queue.add(`node/${r.metadata.name}`);
        wake--;
      }
    }
  }

  private healthOf(subnetId: string): SubnetHealth {
    const k = subnetId.toLowerCase();
    let h = this.health.get(k);
    if (!h) { h = new SubnetHealth(this.opts.subnetFullBackoffMs); this.health.set(k, h); }
    return h;
  }

  /**
   * The pool subnet, read once per subnetCacheMs however many nodes ask at the same time (a subnet GET
   * lists every ip-config in it: in a big subnet, megabytes). SubnetIsFull drops the entry sooner.
   */
  private subnet(id: string, blocks = false): SubnetEntry {
    const k = id.toLowerCase();
    const hit = this.subnets.get(k);
    if (hit && Date.now() - hit.at < (this.opts.subnetCacheMs ?? this.opts.resyncMs)) return hit;
    const details = this.azure.getSubnet(id, blocks ? { blocks: true } : undefined);
    const entry: SubnetEntry = { at: Date.now(), details };
    this.subnets.set(k, entry);
    details.catch(() => { if (this.subnets.get(k) === entry) this.subnets.delete(k); });
    return entry;
  }

  /** Azure said SubnetIsFull to a plan made from `entry`: read the subnet again next time. */
  private forgetSubnet(id: string, entry: SubnetEntry): void {
    if (this.subnets.get(id.toLowerCase()) === entry) this.subnets.delete(id.toLowerCase());
  }

  /** The steady-state round for one node: read the NIC, plan, write once, report. */
  private async sync(node: NodeObject, pool: Pool, record: Record_): Promise<Result> {
    const name = node.metadata.name;
    const generation = record.metadata.generation;
    let machine: MachineRef;
    try {
      machine = parseProviderID(node.spec?.providerID);
    } catch (e) {
      const message = (e as Error).message;
      this.event(record, 'Warning', 'InvalidProviderID', 'Resolve', message);
      await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidProviderID', message }] });
      return {};
    }

    const conflict = modeConflicts(this.poolModes()).get(pool.metadata.name);
    if (conflict) {
      // One mode per subnet: the later pool is not served (its singles would leave no aligned /28, or its
      // blocks would take what the earlier pool's nodes grow into). The pool round says so with an event.
      const c = modeConflictCondition(conflict, pool.spec.allocation);
      await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'AllocationModeConflict', message: c.message }] }, generation);
      return { requeueAfterMs: this.opts.resyncMs };
    }

    const refusal = this.refused.get(name);
    if (refusal && refusal.subnetId.toLowerCase() !== pool.spec.subnetID.toLowerCase()) this.refused.delete(name);
    else if (refusal && Date.now() < refusal.until) {
      // Retrying sooner would only be refused again (and spend the write budget): say why and wait.
      await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'SubnetNotAllowedOnNIC', message: refusal.message }] }, generation);
      return { requeueAfterMs: refusal.until - Date.now() };
    }

    let subnet: SubnetDetails;
    let nic: NodeNic;
    const subnetEntry = this.subnet(pool.spec.subnetID, pool.spec.allocation === 'Block');
    try {
      subnet = await subnetEntry.details;
      nic = await this.azure.getNodeNic(machine, this.nicHints.get(name) ?? record.status?.nic?.id);
    } catch (e) {
      if (e instanceof AzureCallError && e.failure.kind === 'NotFound') {
        const message = `${machine.id}: ${e.failure.message}`;
        this.event(record, 'Warning', 'NICNotFound', 'Resolve', `cannot find the node's VM, NIC or the pool subnet: ${message}`);
        await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'NICNotFound', message }] });
        return { requeueAfterMs: 60_000 };
      }
      if (e instanceof AzureCallError) return this.azureFailed(record, e);
      throw e;
    }
    this.nicHints.set(name, nic.nicId);
    if (record.metadata.annotations?.[ARGOCD_IGNORE_UPDATES_ANNOTATION] === undefined) {
      // A record from before the annotation existed: Argo CD would otherwise show our writes as changes.
      await this.kube.mergePatch(`${PATHS.records}/${name}`, { metadata: { annotations: { [ARGOCD_IGNORE_UPDATES_ANNOTATION]: 'true' } } });
    }

    const health = this.healthOf(pool.spec.subnetID);
    subnetEntry.free ??= subnet.freeIPs;
    if (subnet.headroomUnknown && !subnetEntry.warned) {
      subnetEntry.warned = true;
      this.log.warn({ pool: pool.metadata.name, problem: subnet.headroomUnknown }, 'subnet headroom unknown; Azure\'s SubnetIsFull is the only limit');
      this.event(pool, 'Warning', 'SubnetReadFailed', 'ReadSubnet', subnet.headroomUnknown);
    }
    subnetEntry.freeBlocks ??= subnet.freeBlocks;
    if (pool.spec.allocation === 'Block') return this.syncBlocks(record, pool, machine, nic, subnet, subnetEntry, generation);
    const plan = planNode({
      spec: pool.spec,
      nic: nic.ipConfigs,
      released: record.spec.releasedIPs,
      demand: record.spec.demand,
      subnetFree: subnetEntry.free,
      maxAdds: health.maxAdds,
    });
    // Reserve the adds before any await, so nodes planning meanwhile do not count the same addresses.
    if (subnetEntry.free !== undefined) subnetEntry.free -= plan.add.length;
    const noRoom = plan.deferred > 0 && subnetEntry.free !== undefined && subnetEntry.free <= 0;
    if (noRoom) subnetEntry.noRoomSince ??= Date.now();
    if ((plan.add.length > 0 || plan.deferred > 0) && !this.shortSince.has(name)) this.shortSince.set(name, Date.now());

    let after = nic;
    let requeueAfterMs: number | undefined = this.opts.resyncMs;
    let ready: ConditionInput = noRoom
      ? { type: 'Ready', status: 'False', reason: 'SubnetFull', message: `${this.noRoomMessage(pool.spec.subnetID)}; adding ${plan.add.length} now, ${plan.deferred} more once addresses come back` }
      : plan.deferred > 0
      ? { type: 'Ready', status: 'False', reason: 'Growing', message: `adding ${plan.add.length} now, ${plan.deferred} more once the subnet allows` }
      : plan.capped
        ? { type: 'Ready', status: 'True', reason: 'AtLimit', message: `demand exceeds the ${plan.target} IPs that ipsPerNode.max and the NIC allow` }
        : { type: 'Ready', status: 'True', reason: 'Synced', message: `${plan.usableAfter} usable IPs, target ${plan.target}` };
    if (noRoom) {
      // Our count says the subnet is spent: no Azure call for the rest until addresses come back
      // (a release here wakes this node) or the next subnet read.
      this.event(record, 'Warning', 'SubnetFull', 'AddIPs', `${this.noRoomMessage(pool.spec.subnetID)}: ${plan.deferred} IPs wanted`);
      this.poolSoon(pool.metadata.name);
      // Room comes back through our own removes (roomMade wakes this node) or shows in the next subnet read,
      // one resync away: polling the NIC meanwhile would only spend the read budget (1,000 short nodes every
      // 30 s is more than ARM's 25 reads/s).
      requeueAfterMs = this.opts.resyncMs;
    }

    if (hasChanges(plan)) {
      try {
        const started = Date.now();
        after = await this.azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, plan, pool.spec.subnetID));
        this.afterWrite(name, pool, plan);
        this.nicChanged(record, pool, nic, after, plan.add.length, plan.remove.length, started);
        if (plan.add.length) this.refused.delete(name);
        if (plan.deferred > 0 && !noRoom) requeueAfterMs = 1000;
      } catch (e) {
        // The adds did not happen: give the reservation back (SubnetIsFull drops the whole entry below).
        if (subnetEntry.free !== undefined) subnetEntry.free += plan.add.length;
        if (subnetEntry.free !== undefined && subnetEntry.free > 0) subnetEntry.noRoomSince = undefined;
        if (!(e instanceof AzureCallError)) throw e;
        const f = e.failure;
        if (f.kind === 'SubnetFull') {
          this.forgetSubnet(pool.spec.subnetID, subnetEntry);
          const wait = health.onFull(plan.add.length, f.message);
          this.log.warn({ node: name, tried: plan.add.length, next: health.maxAdds, retryInMs: wait }, 'subnet is full');
          this.event(record, 'Warning', 'SubnetIsFull', 'AddIPs', `Azure has no room for ${plan.add.length} more IPs in ${pool.spec.subnetID}: ${f.message}; trying ${health.maxAdds} at a time`);
          this.event(pool, 'Warning', 'SubnetIsFull', 'AddIPs', `subnet ${pool.spec.subnetID} is full: ${f.message}`);
          this.poolSoon(pool.metadata.name);
          ready = { type: 'Ready', status: 'False', reason: 'SubnetFull', message: f.message };
          requeueAfterMs = wait;
          if (plan.remove.length) {
            // The removals must not wait for room in the subnet: send them on their own.
            const started = Date.now();
            after = await this.azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: [], remove: plan.remove }, pool.spec.subnetID))
              .then((n) => { this.afterWrite(name, pool, { ...plan, add: [] }); this.nicChanged(record, pool, nic, n, 0, plan.remove.length, started); return n; })
              .catch((e2) => { if (e2 instanceof AzureCallError) return nic; throw e2; });
          }
        } else if (f.kind === 'SubnetNotAllowedOnNIC') {
          const r = this.refuse(name, nic, pool, f.message);
          this.log.warn({ node: name, nic: nic.nicId, subnet: pool.spec.subnetID, retryInMs: r.until - Date.now() }, 'the NIC cannot take ip-configs of the pool subnet');
          this.event(record, 'Warning', 'SubnetNotAllowedOnNIC', 'AddIPs', r.message);
          this.poolSoon(pool.metadata.name);
          ready = { type: 'Ready', status: 'False', reason: 'SubnetNotAllowedOnNIC', message: r.message };
          requeueAfterMs = r.until - Date.now();
        } else if (f.kind === 'NotFound') {
          this.event(record, 'Warning', 'NICNotFound', 'AddIPs', f.message);
          ready = { type: 'Ready', status: 'False', reason: 'NICNotFound', message: f.message };
          this.nicHints.delete(name);
          requeueAfterMs = 60_000;
        } else {
          return this.azureFailed(record, e);
        }
      }
    }

    await this.writeStatus(record, {
      nic: { id: after.nicId, macAddress: after.macAddress, primaryIP: after.primaryIP, vmID: machine.id },
      subnet: { id: subnet.id, addressPrefix: subnet.addressPrefix, gatewayIP: subnet.gatewayIP },
      vnetAddressPrefixes: subnet.vnetAddressPrefixes,
      ips: poolIpConfigs(after.ipConfigs, pool.spec.subnetID)
        .filter((c) => c.privateIPAddress)
        .map((c) => ({ ip: c.privateIPAddress!, ipConfigName: c.name }))
        .sort(sortIPs),
      targetIPs: plan.target,
      conditions: [ready],
    }, generation);
    return { requeueAfterMs };
  }

  /** Remember that the node's NIC refused the pool subnet; the message says what to change. */
  private refuse(name: string, nic: NodeNic, pool: Pool, azureMessage: string): Refusal {
    const prev = this.refused.get(name);
    const count = prev && prev.subnetId.toLowerCase() === pool.spec.subnetID.toLowerCase() ? prev.count + 1 : 1;
    const base = this.opts.subnetNotAllowedBackoffMs;
    const wait = Math.min(base * 2 ** (count - 1), Math.max(base, this.opts.resyncMs));
    const primary = nic.ipConfigs.find((c) => c.primary)?.subnetId ?? 'unknown';
    const message = `NIC ${nic.nicId} has its primary ip-config in subnet ${primary}, and Azure refuses ip-configs of pool ${pool.metadata.name}'s subnet ${pool.spec.subnetID} next to it `
      + `(${azureMessage}). Either give these nodes a pool whose subnetID is the node's subnet ${primary} (subnetID is immutable: create that pool, `
      + `then delete this one), or run them in a subscription whose NICs may hold `
      + `ip-configs from several subnets. Next try at ${new Date(Date.now() + wait).toISOString()}.`;
    const r: Refusal = { subnetId: pool.spec.subnetID, until: Date.now() + wait, count, message };
    this.refused.set(name, r);
    return r;
  }

  private poolModes(): PoolModeView[] {
    return this.pools.list().filter((p) => !p.metadata.deletionTimestamp).map((p) => ({
      name: p.metadata.name, subnetID: p.spec.subnetID, allocation: p.spec.allocation ?? 'Individual', creationTimestamp: p.metadata.creationTimestamp,
    }));
  }

  /**
   * The steady-state round for a node of a Block pool: block-plan.ts decides in whole /28s, one NIC write
   * carries every add and remove, only blocks the agent listed in releasedBlocks leave the NIC, and the
   * subnet's headroom is counted in blocks. A subnet with free addresses but no aligned /28 is reported
   * (SubnetExhausted/NoAlignedBlock and a Warning), not papered over unless the pool opted into fallback.
   */
  private async syncBlocks(record: Record_, pool: Pool, machine: MachineRef, nic: NodeNic, subnet: SubnetDetails, subnetEntry: SubnetEntry, generation: number | undefined): Promise<Result> {
    const name = record.metadata.name;
    const subnetId = pool.spec.subnetID;
    const health = this.healthOf(subnetId);
    const plan = planBlocks({
      spec: pool.spec,
      nic: nic.ipConfigs,
      releasedBlocks: record.spec.releasedBlocks ?? [],
      releasedIPs: record.spec.releasedIPs,
      demand: record.spec.demand,
      subnetFreeBlocks: subnetEntry.freeBlocks,
      subnetFree: subnetEntry.free,
      maxAdds: health.maxAdds,
    });
    const removedBlocks = plan.remove.filter((n) => nic.ipConfigs.some((c) => c.name === n && isBlock(c))).length;
    const removedAddresses = removedBlocks * BLOCK_SIZE + (plan.remove.length - removedBlocks);
    const addedAddresses = plan.addBlocks.length * BLOCK_SIZE + plan.addSingles.length;
    // Reserve before any await, so nodes planning meanwhile do not count the same blocks.
    if (subnetEntry.free !== undefined) subnetEntry.free = Math.max(0, subnetEntry.free - addedAddresses);
    if (subnetEntry.freeBlocks !== undefined) subnetEntry.freeBlocks = Math.max(0, subnetEntry.freeBlocks - plan.addBlocks.length);
    if ((plan.addBlocks.length > 0 || plan.deferredBlocks > 0) && !this.shortSince.has(name)) this.shortSince.set(name, Date.now());

    let fragmented = plan.fragmented ? subnetEntry.free ?? 0 : undefined;
    /** Blocks Azure refused for want of an aligned /28 (with free addresses left): still wanted. */
    let refusedBlocks = 0;
    const fallback = pool.spec.fallbackToIndividual === true;
    let after = nic;
    let requeueAfterMs: number | undefined = this.opts.resyncMs;
    let ready: ConditionInput | undefined;
    const changes = plan.addBlocks.length + plan.addSingles.length + plan.remove.length;
    if (changes > 0) {
      try {
        const started = Date.now();
        after = await this.azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, plan, subnetId));
        const added = plan.addBlocks.length + plan.addSingles.length;
        if (added) {
          this.metrics.ipConfigChanges.inc({ change: 'added' }, added);
          health.onAdded(plan.addBlocks.length, Math.max(1, pool.spec.scaling.batchSize / BLOCK_SIZE));
          if (plan.deferredBlocks === 0 && this.shortSince.has(name)) {
            this.metrics.allocationSeconds.observe((Date.now() - this.shortSince.get(name)!) / 1000);
            this.shortSince.delete(name);
          }
          this.refused.delete(name);
        }
        if (plan.remove.length) {
          this.metrics.ipConfigChanges.inc({ change: 'removed' }, plan.remove.length);
          this.roomMade(subnetId, removedAddresses, removedBlocks);
        }
        this.nicChanged(record, pool, nic, after, added, plan.remove.length, started);
        this.log.info({ node: name, pool: pool.metadata.name, addedBlocks: plan.addBlocks.length, addedSingles: plan.addSingles.length, removed: plan.remove.length, targetBlocks: plan.targetBlocks, reason: plan.reason }, 'updated NIC');
        if (plan.deferredBlocks > 0 && !plan.fragmented) requeueAfterMs = 1000;
      } catch (e) {
        if (subnetEntry.free !== undefined) subnetEntry.free += addedAddresses;
        if (subnetEntry.freeBlocks !== undefined) subnetEntry.freeBlocks += plan.addBlocks.length;
        if (!(e instanceof AzureCallError)) throw e;
        const f = e.failure;
        if (f.kind === 'SubnetFull') {
          // Azure found no free aligned /28. With addresses left by our count, that is fragmentation.
          const freeLeft = subnetEntry.free ?? 0;
          this.forgetSubnet(subnetId, subnetEntry);
          const wait = health.onFull(Math.max(1, plan.addBlocks.length), f.message);
          if (freeLeft > 0) {
            fragmented = freeLeft;
            refusedBlocks = plan.addBlocks.length;
          } else {
            this.event(record, 'Warning', 'SubnetIsFull', 'AddBlocks', `Azure has no room for ${plan.addBlocks.length} more /28 blocks in ${subnetId}: ${f.message}`);
            ready = { type: 'Ready', status: 'False', reason: 'SubnetFull', message: f.message };
          }
          this.poolSoon(pool.metadata.name);
          requeueAfterMs = wait;
          if (plan.remove.length) {
            // Released blocks must not wait for room in the subnet: send the removals on their own.
            const started = Date.now();
            after = await this.azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, { addBlocks: [], addSingles: [], remove: plan.remove }, subnetId))
              .then((n) => { this.roomMade(subnetId, removedAddresses, removedBlocks); this.nicChanged(record, pool, nic, n, 0, plan.remove.length, started); return n; })
              .catch((e2) => { if (e2 instanceof AzureCallError) return nic; throw e2; });
          }
        } else if (f.kind === 'SubnetNotAllowedOnNIC') {
          const r = this.refuse(name, nic, pool, f.message);
          this.event(record, 'Warning', 'SubnetNotAllowedOnNIC', 'AddBlocks', r.message);
          this.poolSoon(pool.metadata.name);
          ready = { type: 'Ready', status: 'False', reason: 'SubnetNotAllowedOnNIC', message: r.message };
          requeueAfterMs = r.until - Date.now();
        } else if (f.kind === 'NotFound') {
          this.event(record, 'Warning', 'NICNotFound', 'AddBlocks', f.message);
          ready = { type: 'Ready', status: 'False', reason: 'NICNotFound', message: f.message };
          this.nicHints.delete(name);
          requeueAfterMs = 60_000;
        } else {
          return this.azureFailed(record, e);
        }
      }
    }

    const conditions: ConditionInput[] = [];
    if (fragmented !== undefined) {
      const c = fragmentedCondition(subnetId, fragmented, fallback);
      conditions.push(c);
      if (!subnetEntry.fragmented) {
        this.event(pool, 'Warning', 'NoAlignedBlock', 'AddBlocks', c.message);
      }
      const current = this.subnets.get(subnetId.toLowerCase()) ?? subnetEntry;
      current.fragmented ??= { since: Date.now(), message: c.message };
      this.event(record, 'Warning', 'NoAlignedBlock', 'AddBlocks', c.message);
      this.poolSoon(pool.metadata.name);
      requeueAfterMs = Math.min(requeueAfterMs ?? this.opts.resyncMs, this.opts.subnetFullBackoffMs);
    } else {
      conditions.push({ type: 'SubnetExhausted', status: 'False', reason: 'BlocksFit', message: `the blocks this node wants fit in subnet ${subnetId}` });
    }
    const blocksNow = poolBlocks(after.ipConfigs, subnetId).length;
    ready ??= fragmented !== undefined && !fallback && plan.deferredBlocks + refusedBlocks > 0
      ? { type: 'Ready', status: 'False', reason: 'NoAlignedBlock', message: `${blocksNow} blocks held, ${plan.deferredBlocks + refusedBlocks} more wanted: ${conditions[0]!.message}` }
      : plan.deferredBlocks > 0
        ? { type: 'Ready', status: 'False', reason: 'Growing', message: `adding ${plan.addBlocks.length} blocks now, ${plan.deferredBlocks} more once the subnet allows` }
        : plan.capped
          ? { type: 'Ready', status: 'True', reason: 'AtLimit', message: `demand exceeds the ${plan.targetBlocks} blocks that ipsPerNode.max and the NIC allow` }
          : { type: 'Ready', status: 'True', reason: 'Synced', message: `${blocksNow} blocks (${plan.usableAfter} usable addresses), target ${plan.targetBlocks} blocks` };
    conditions.unshift(ready);

    await this.writeStatus(record, {
      nic: { id: after.nicId, macAddress: after.macAddress, primaryIP: after.primaryIP, vmID: machine.id },
      subnet: { id: subnet.id, addressPrefix: subnet.addressPrefix, gatewayIP: subnet.gatewayIP },
      vnetAddressPrefixes: subnet.vnetAddressPrefixes,
      // Fallback single ip-configs (only with fallbackToIndividual): addresses outside any block.
      ips: poolIpConfigs(after.ipConfigs, subnetId).filter((c) => !isBlock(c) && c.privateIPAddress)
        .map((c) => ({ ip: c.privateIPAddress!, ipConfigName: c.name })).sort(sortIPs),
      blocks: poolBlocks(after.ipConfigs, subnetId).filter((c) => c.privateIPAddress)
        .map((c) => ({ prefix: c.privateIPAddress!, ipConfigName: c.name }))
        .sort((a, b) => ipToInt(a.prefix.split('/')[0]!) - ipToInt(b.prefix.split('/')[0]!)),
      targetIPs: plan.targetBlocks * BLOCK_SIZE,
      conditions,
    }, generation);
    return { requeueAfterMs };
  }

  private noRoomMessage(subnetId: string): string {
    return `no free addresses left in ${subnetId} (by the last subnet read and this controller's changes since)`;
  }

  /** The pool subnet has no room by our count: since when, for the pool's SubnetExhausted condition. */
  private noRoom(subnetId: string): { since: number; message: string; reason: string } | undefined {
    const entry = this.subnets.get(subnetId.toLowerCase());
    if (entry?.free === undefined || entry.free > 0 || entry.noRoomSince === undefined) return undefined;
    return { since: entry.noRoomSince, message: this.noRoomMessage(subnetId), reason: 'NoFreeAddresses' };
  }

  private afterWrite(name: string, pool: Pool, plan: Plan): void {
    if (plan.add.length) {
      this.metrics.ipConfigChanges.inc({ change: 'added' }, plan.add.length);
      this.healthOf(pool.spec.subnetID).onAdded(plan.add.length, pool.spec.scaling.batchSize);
      const since = this.shortSince.get(name);
      if (since !== undefined && plan.deferred === 0) {
        this.metrics.allocationSeconds.observe((Date.now() - since) / 1000);
        this.shortSince.delete(name);
      }
    }
    if (plan.remove.length) {
      this.metrics.ipConfigChanges.inc({ change: 'removed' }, plan.remove.length);
      this.roomMade(pool.spec.subnetID, plan.remove.length);
    }
    this.log.info({ node: name, pool: pool.metadata.name, added: plan.add.length, removed: plan.remove.length, target: plan.target, reason: plan.reason }, 'updated NIC');
  }

  /**
   * A failure that is not one of the expected races (an authorization error, a bad request, Azure down):
   * say so on the record, where the pool's Ready condition picks it up, then retry with backoff.
   */
  private async azureFailed(record: Record_, e: AzureCallError): Promise<Result> {
    if (e.failure.kind === 'Other') {
      const message = `${e.operation}: ${e.failure.code}: ${e.failure.message}`;
      this.event(record, 'Warning', 'AzureError', 'Reconcile', message);
      await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'AzureError', message }] }).catch(() => {});
    }
    return this.azureRetry(e, record.metadata.name);
  }

  /** Transient Azure trouble: come back when it says, or soon for a lost If-Match race. */
  private azureRetry(e: AzureCallError, name: string): Result {
    const f = e.failure;
    this.log.info({ node: name, kind: f.kind, code: f.code }, 'Azure call did not go through; will retry');
    switch (f.kind) {
      case 'PreconditionFailed': return { requeueAfterMs: 50 + Math.floor(Math.random() * 100) };
      case 'Throttled': return { requeueAfterMs: f.retryAfterMs };
      case 'Conflict': return { requeueAfterMs: f.retryAfterMs };
      default: throw e;
    }
  }

  private async writeStatus(record: Record_, fields: Omit<Partial<NodeIPAllocationStatus>, 'conditions'> & { conditions: ConditionInput[] }, generation?: number): Promise<void> {
    const old = record.status ?? { ips: [] };
    const next: NodeIPAllocationStatus = {
      ...old,
      ...fields,
      ips: fields.ips ?? old.ips ?? [],
      conditions: setConditions(old.conditions, fields.conditions, now(), generation),
    };
    next.allocatedIPs = next.ips.length + (next.blocks?.length ?? 0) * BLOCK_SIZE;
    if (next.blocks !== undefined) next.allocatedBlocks = next.blocks.length;
    if (generation !== undefined) next.observedGeneration = generation;
    if (sameStatus(old, next)) return;
    // No resourceVersion precondition: status is the controller's alone and says what Azure has; the agent's
    // spec writes in between must not turn every status write into a conflict and another Azure read.
    await this.kube.mergePatch(`${PATHS.records}/${record.metadata.name}/status`, { status: next });
  }

  // ---- pools ----

  async reconcilePool(name: string): Promise<Result> {
    const pool = this.pools.get(name);
    if (!pool) {
      this.metrics.poolNodes.remove({ pool: name });
      for (const state of ['allocated', 'used', 'released']) this.metrics.poolIPs.remove({ pool: name, state });
      this.gauges.forget(name);
      return {};
    }
    const path = `${PATHS.pools}/${name}`;
    const mine = this.records.list().filter((r) => r.spec.poolName === name);

    if (pool.metadata.deletionTimestamp) {
      for (const r of mine) {
        if (!r.metadata.deletionTimestamp) {
          try { await this.kube.delete(`${PATHS.records}/${r.metadata.name}`); } catch (e) { if (!isNotFound(e)) throw e; }
        }
        this.queue.add(`node/${r.metadata.name}`);
      }
      if (mine.length > 0) return { requeueAfterMs: 2000 };
      if ((pool.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) {
        await this.kube.mergePatch(path, { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers: (pool.metadata.finalizers ?? []).filter((f) => f !== RELEASE_FINALIZER) } });
        this.log.info({ pool: name }, 'pool gave every ip-config back; finalizer removed');
      }
      return {};
    }

    if (!(pool.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) {
      await this.kube.mergePatch(path, { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers: [...(pool.metadata.finalizers ?? []), RELEASE_FINALIZER] } });
      return {}; // the update event brings us back with the new resourceVersion
    }

    const candidates = this.poolCandidates();
    const lostNodes: { node: string; winner: string }[] = [];
    for (const n of this.nodes.list()) {
      if (n.metadata.deletionTimestamp || !selectorMatches(pool.spec.nodeSelector, n.metadata.labels)) continue;
      const w = choosePool(candidates, n.metadata.labels).winner;
      if (w && w !== name) lostNodes.push({ node: n.metadata.name, winner: w });
    }
    const summaries: RecordSummary[] = mine.filter((r) => !r.metadata.deletionTimestamp).map((r) => {
      const onNic = new Set((r.status?.ips ?? []).map((i) => i.ip));
      const ready = conditionOf(r.status?.conditions, 'Ready');
      return {
        name: r.metadata.name,
        allocated: r.status?.allocatedIPs ?? r.status?.ips.length ?? 0,
        used: r.spec.demand?.usedIPs ?? 0,
        released: r.spec.releasedIPs.filter((ip) => onNic.has(ip)).length
          + (r.spec.releasedBlocks ?? []).filter((b) => (r.status?.blocks ?? []).some((x) => x.prefix === b)).length * BLOCK_SIZE,
        ready: ready?.status === 'True',
        reason: ready?.status === 'True' ? undefined : ready?.reason ?? 'Pending',
      };
    });
    // Out of room by our count matters only while a node of this pool is kept short by it.
    const block = pool.spec.allocation === 'Block';
    const fragmented = block ? mine.map((r) => conditionOf(r.status?.conditions, 'SubnetExhausted')).find((c) => c?.status === 'True' && c.reason === 'NoAlignedBlock') : undefined;
    const exhausted = (fragmented ? { message: fragmented.message, reason: fragmented.reason } : undefined)
      ?? this.health.get(pool.spec.subnetID.toLowerCase())?.exhausted
      ?? (summaries.some((r) => r.reason === 'SubnetFull') ? this.noRoom(pool.spec.subnetID) : undefined);
    const summary = summarizePool({ records: summaries, lostNodes, subnetExhausted: exhausted });
    if (lostNodes.length) {
      this.event(pool, 'Warning', 'OverlappingPools', 'Select', `${lostNodes.length} node(s) this pool selects belong to an older pool, e.g. ${lostNodes[0]!.node} (${lostNodes[0]!.winner})`);
    }

    this.metrics.poolNodes.set({ pool: name }, summary.nodes);
    this.metrics.poolIPs.set({ pool: name, state: 'allocated' }, summary.allocatedIPs);
    this.metrics.poolIPs.set({ pool: name, state: 'used' }, summary.usedIPs);
    this.metrics.poolIPs.set({ pool: name, state: 'released' }, summary.releasedIPs);
    const subnetSeen = this.subnets.get(pool.spec.subnetID.toLowerCase());
    const addressPrefix = mine.find((r) => r.status?.subnet?.addressPrefix)?.status?.subnet?.addressPrefix;
    this.gauges.set(name, pool.spec.ipsPerNode.max, mine.filter((r) => !r.metadata.deletionTimestamp).map(nodeFigures),
      { name: subnetDisplayName(pool.spec.subnetID), addressPrefix, free: subnetSeen?.free });

    const conflict = modeConflicts(this.poolModes()).get(name);
    if (conflict) {
      this.event(pool, 'Warning', 'AllocationModeConflict', 'Select', modeConflictCondition(conflict, pool.spec.allocation ?? 'Individual').message);
    }
    const generation = pool.metadata.generation;
    const old = pool.status ?? {};
    // Said on Block pools, on pools in conflict, and until a conflict a pool had is said to be over.
    const modeCondition = block || conflict || conditionOf(old.conditions, 'AllocationModeConflict')
      ? [modeConflictCondition(conflict, pool.spec.allocation ?? 'Individual')] : [];
    const next = {
      observedGeneration: generation,
      nodes: summary.nodes,
      allocatedIPs: summary.allocatedIPs,
      usedIPs: summary.usedIPs,
      releasedIPs: summary.releasedIPs,
      subnet: subnetDisplayName(pool.spec.subnetID),
      allocatedBlocks: block ? mine.filter((r) => !r.metadata.deletionTimestamp).reduce((a, r) => a + (r.status?.allocatedBlocks ?? 0), 0) : undefined,
      conditions: setConditions(old.conditions, [...summary.conditions, ...modeCondition], now(), generation),
    };
    if (!sameStatus(old, next)) {
      await this.kube.mergePatch(`${path}/status`, { status: next });
    }
    // While a subnet is exhausted, look again so the condition clears when Azure has room.
    return exhausted ? { requeueAfterMs: this.opts.subnetFullBackoffMs } : {};
  }

  // ---- events ----

  /** A Warning (or Normal) event about a pool or record; repeats are counted in one event's series (events.ts). */
  private event(obj: { metadata: { name: string; uid?: string | undefined }; kind?: string }, type: 'Normal' | 'Warning', reason: string, action: string, note: string): void {
    this.events.record(regardingOf(obj), { type, reason, action, note });
  }

  /** A NIC write Azure accepted: a Normal event on the record and the pool, folded with the writes around it. */
  private nicChanged(record: Record_, pool: Pool | undefined, before: NodeNic, after: NodeNic, added: number, removed: number, started: number): void {
    const subnetId = pool?.spec.subnetID ?? record.status?.subnet?.id ?? '';
    const count = (n: NodeNic) => poolIpConfigs(n.ipConfigs, subnetId).length;
    this.events.nicChanged(regardingOf(record), pool && regardingOf(pool), {
      node: record.metadata.name, before: count(before), after: count(after), added, removed, azureMs: Date.now() - started,
      ...(pool?.spec.allocation === 'Block' ? { unit: 'block' as const } : {}),
    });
  }
}

function regardingOf(obj: { metadata: { name: string; uid?: string | undefined }; kind?: string }): Regarding {
  return { apiVersion: API_GROUP_VERSION, kind: obj.kind ?? 'NodeIPAllocation', name: obj.metadata.name, uid: obj.metadata.uid };
}

function sameStatus(a: unknown, b: unknown): boolean {
  return stableJson(a) === stableJson(b);
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).filter(([, y]) => y !== undefined).sort(([p], [q]) => (p < q ? -1 : 1))) : x));
}
