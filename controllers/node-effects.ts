import { BLOCK_SIZE, type NodeIPAllocationStatus } from '../crds/api/index.js';
import type { AzureAdapter, NodeNic } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import type { Pool, Record_ } from './caches.js';
import { PATHS } from './kube.js';
import type { Plan } from './plan.js';
import type { ReconcilerDeps } from './pool-reconciler.js';
import type { NicWriteVerdict, Refusal } from './round-outcome.js';
import { conditionOf, sameStatus, setConditions, type ConditionInput } from './status.js';
import type { Result } from './workqueue.js';

/** What the controller hands the node reconciler: the pool reconciler's share, Azure, and the pool status door. */
export interface NodeDeps extends ReconcilerDeps {
  azure: AzureAdapter;
  /** Write this pool's status soon (many record changes fold into one write). */
  poolSoon: (name: string) => void;
}

/**
 * The effects a node round may have beyond its NIC write, and the little per-node state they keep: the
 * record's status, Azure failures that are no expected race, a refusal of the pool subnet, addresses going
 * back to a subnet (which wakes nodes waiting for them), and the allocation-latency clock.
 */
export class NodeEffects {
  /** The NIC id last seen per node: the next round reads it directly instead of listing. */
  readonly nicHints = new Map<string, string>();
  /** Nodes whose NIC refused ip-configs of their pool's subnet, by node name. */
  readonly refused = new Map<string, Refusal>();
  /** Since when each node has been short of IPs (podvnet_ip_allocation_duration_seconds). */
  private readonly shortSince = new Map<string, number>();

  constructor(readonly deps: NodeDeps) {}

  /** Writes the record's status if it changed; always says which generation of the record it answers. */
  async writeStatus(record: Record_, fields: Omit<Partial<NodeIPAllocationStatus>, 'conditions'> & { conditions: ConditionInput[] }): Promise<void> {
    const generation = record.metadata.generation;
    const old = record.status ?? { ips: [] };
    const next: NodeIPAllocationStatus = {
      ...old,
      ...fields,
      ips: fields.ips ?? old.ips ?? [],
      conditions: setConditions(old.conditions, fields.conditions, new Date().toISOString(), generation),
    };
    next.allocatedIPs = next.ips.length + (next.blocks?.length ?? 0) * BLOCK_SIZE;
    if (next.blocks !== undefined) next.allocatedBlocks = next.blocks.length;
    if (generation !== undefined) next.observedGeneration = generation;
    if (sameStatus(old, next)) return;
    // No resourceVersion precondition: status is the controller's alone and says what Azure has; the agent's
    // spec writes in between must not turn every status write into a conflict and another Azure read.
    await this.deps.kube.mergePatch(`${PATHS.records}/${record.metadata.name}/status`, { status: next });
  }

  /**
   * A failure that is not one of the expected races (an authorization error, a bad request, Azure down):
   * say so on the record, where the pool's Ready condition picks it up, then retry with backoff.
   */
  async azureFailed(record: Record_, e: AzureCallError): Promise<Result> {
    if (e.failure.kind === 'Other') {
      const message = `${e.operation}: ${e.failure.code}: ${e.failure.message}`;
      this.deps.events.warning(record, 'AzureError', 'Reconcile', message);
      await this.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'AzureError', message }] }).catch(() => {});
    }
    return this.azureRetry(e, record.metadata.name);
  }

  /** Transient Azure trouble: come back when it says, or soon for a lost If-Match race. */
  azureRetry(e: AzureCallError, name: string): Result {
    const f = e.failure;
    this.deps.log.info({ node: name, kind: f.kind, code: f.code }, 'Azure call did not go through; will retry');
    switch (f.kind) {
      case 'PreconditionFailed': return { requeueAfterMs: 50 + Math.floor(Math.random() * 100) };
      case 'Throttled': return { requeueAfterMs: f.retryAfterMs };
      case 'Conflict': return { requeueAfterMs: f.retryAfterMs };
      default: throw e;
    }
  }

  /** Does what round-outcome.ts decided about a failed NIC write; returns the Ready and requeue it chose. */
  applyVerdict(record: Record_, pool: Pool, nic: NodeNic, v: NicWriteVerdict): { ready: ConditionInput; requeueAfterMs: number } {
    const name = record.metadata.name;
    if (v.refusal) {
      this.refused.set(name, v.refusal);
      this.deps.log.warn({ node: name, nic: nic.nicId, subnet: pool.spec.subnetID, retryInMs: v.requeueAfterMs }, 'the NIC cannot take ip-configs of the pool subnet');
    }
    this.deps.events.warning(record, v.warning.reason, v.warning.action, v.warning.note);
    if (v.poolSoon) this.deps.poolSoon(pool.metadata.name);
    if (v.forgetNicHint) this.nicHints.delete(name);
    return { ready: v.ready, requeueAfterMs: v.requeueAfterMs };
  }

  /** Addresses went back to a subnet: nodes waiting for room there try again now, not at their backoff. */
  roomMade(subnetId: string, count: number, blocks = 0): void {
    if (!this.deps.budget.roomMade(subnetId, count, blocks)) return;
    const { records, pools } = this.deps.caches;
    // `count` addresses serve at most `count` waiting nodes: wake no more (each round costs a NIC read).
    let wake = count;
    for (const r of records.list()) {
      if (wake <= 0) break;
      const reason = conditionOf(r.status?.conditions, 'Ready')?.reason;
      if ((reason === 'SubnetFull' || reason === 'Growing' || reason === 'NoAlignedBlock') && pools.get(r.spec.poolName)?.spec.subnetID.toLowerCase() === subnetId.toLowerCase()) {
        this.deps.wakeNode(r.metadata.name);
        wake--;
      }
    }
  }

  /** The node wants more than it holds: start its allocation clock (if not running). */
  short(name: string): void {
    if (!this.shortSince.has(name)) this.shortSince.set(name, Date.now());
  }

  /** Azure confirmed the node's adds and nothing more is held back: stop its clock. */
  served(name: string): void {
    const since = this.shortSince.get(name);
    if (since === undefined) return;
    this.deps.metrics.allocationSeconds.observe((Date.now() - since) / 1000);
    this.shortSince.delete(name);
  }

  /** An Individual pool's write went through: metrics, SubnetHealth, the released room, the log. */
  afterWrite(name: string, pool: Pool, plan: Plan): void {
    const { metrics, budget, log } = this.deps;
    if (plan.add.length) {
      metrics.ipConfigChanges.inc({ change: 'added' }, plan.add.length);
      budget.healthOf(pool.spec.subnetID).onAdded(plan.add.length, pool.spec.scaling.batchSize);
      if (plan.deferred === 0) this.served(name);
    }
    if (plan.remove.length) {
      metrics.ipConfigChanges.inc({ change: 'removed' }, plan.remove.length);
      this.roomMade(pool.spec.subnetID, plan.remove.length);
    }
    log.info({ node: name, pool: pool.metadata.name, added: plan.add.length, removed: plan.remove.length, target: plan.target, reason: plan.reason }, 'updated NIC');
  }

  /** The node's record is gone: forget what was kept for it. */
  forget(name: string): void {
    this.nicHints.delete(name);
    this.shortSince.delete(name);
    this.refused.delete(name);
  }
}
