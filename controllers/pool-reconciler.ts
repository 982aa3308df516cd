import type { Logger } from 'pino';
import { BLOCK_SIZE, RELEASE_FINALIZER } from '../crds/api/index.js';
import { modeConflictCondition, modeConflicts } from './block-conditions.js';
import { poolCandidates, poolModes, type Caches, type Pool, type Record_ } from './caches.js';
import { isNotFound, PATHS, type KubeClient } from './kube.js';
import type { Metrics } from './metrics.js';
import type { ControllerOptions } from './options.js';
import { PoolGauges, nodeFigures } from './pool-metrics.js';
import type { ReconcileEvents } from './reconcile-events.js';
import { choosePool, selectorMatches } from './select.js';
import { conditionOf, sameStatus, setConditions, subnetDisplayName, summarizePool, type RecordSummary } from './status.js';
import type { SubnetBudget } from './subnet-budget.js';
import type { Result } from './workqueue.js';

/** What the controller hands both reconcilers: clients, caches, the subnet budget, the Events, the work queue's door. */
export interface ReconcilerDeps {
  kube: KubeClient;
  log: Logger;
  metrics: Metrics;
  opts: ControllerOptions;
  caches: Caches;
  budget: SubnetBudget;
  events: ReconcileEvents;
  /** Run this node's round (again) soon. */
  wakeNode: (name: string) => void;
}

/**
 * The pool reconciler: the release finalizer (a deleted pool goes only once every node gave its ip-configs
 * back), and the pool's status and gauges summed from its records (status.ts decides the conditions).
 */
export class PoolReconciler {
  private readonly gauges: PoolGauges;

  constructor(private readonly deps: ReconcilerDeps) {
    this.gauges = new PoolGauges(deps.metrics);
  }

  async reconcile(name: string): Promise<Result> {
    const pool = this.deps.caches.pools.get(name);
    if (!pool) {
      this.forgetMetrics(name);
      return {};
    }
    const mine = this.deps.caches.records.list().filter((r) => r.spec.poolName === name);
    if (pool.metadata.deletionTimestamp) return this.drain(pool, mine);
    if (!(pool.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) {
      await this.deps.kube.mergePatch(`${PATHS.pools}/${name}`, { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers: [...(pool.metadata.finalizers ?? []), RELEASE_FINALIZER] } });
      return {}; // the update event brings us back with the new resourceVersion
    }
    return this.report(pool, mine);
  }

  private forgetMetrics(name: string): void {
    const { metrics } = this.deps;
    metrics.poolNodes.remove({ pool: name });
    for (const state of ['allocated', 'used', 'released']) metrics.poolIPs.remove({ pool: name, state });
    this.gauges.forget(name);
  }

  /** A deleted pool: delete its records (each node's teardown gives its ip-configs back), then drop the finalizer. */
  private async drain(pool: Pool, mine: Record_[]): Promise<Result> {
    const { kube, log } = this.deps;
    const name = pool.metadata.name;
    for (const r of mine) {
      if (!r.metadata.deletionTimestamp) {
        try { await kube.delete(`${PATHS.records}/${r.metadata.name}`); } catch (e) { if (!isNotFound(e)) throw e; }
      }
      this.deps.wakeNode(r.metadata.name);
    }
    if (mine.length > 0) return { requeueAfterMs: 2000 };
    if ((pool.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) {
      await kube.mergePatch(`${PATHS.pools}/${name}`, { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers: (pool.metadata.finalizers ?? []).filter((f) => f !== RELEASE_FINALIZER) } });
      log.info({ pool: name }, 'pool gave every ip-config back; finalizer removed');
    }
    return {};
  }

  /** Nodes this pool selects that an older pool serves (oldest wins). */
  private lostNodes(pool: Pool): { node: string; winner: string }[] {
    const { nodes, pools } = this.deps.caches;
    const candidates = poolCandidates(pools);
    const lost: { node: string; winner: string }[] = [];
    for (const n of nodes.list()) {
      if (n.metadata.deletionTimestamp || !selectorMatches(pool.spec.nodeSelector, n.metadata.labels)) continue;
      const w = choosePool(candidates, n.metadata.labels).winner;
      if (w && w !== pool.metadata.name) lost.push({ node: n.metadata.name, winner: w });
    }
    return lost;
  }

  /** The pool's status, metrics and Warnings from its records and what the subnet budget knows. */
  private async report(pool: Pool, mine: Record_[]): Promise<Result> {
    const { kube, metrics, budget, events, opts } = this.deps;
    const name = pool.metadata.name;
    const lostNodes = this.lostNodes(pool);
    const live = mine.filter((r) => !r.metadata.deletionTimestamp);
    const summaries = live.map(recordSummary);
    // Out of room by our count matters only while a node of this pool is kept short by it.
    const block = pool.spec.allocation === 'Block';
    const fragmented = block ? mine.map((r) => conditionOf(r.status?.conditions, 'SubnetExhausted')).find((c) => c?.status === 'True' && c.reason === 'NoAlignedBlock') : undefined;
    const exhausted = (fragmented ? { message: fragmented.message, reason: fragmented.reason } : undefined)
      ?? budget.exhausted(pool.spec.subnetID)
      ?? (summaries.some((r) => r.reason === 'SubnetFull') ? budget.noRoom(pool.spec.subnetID) : undefined);
    const summary = summarizePool({ records: summaries, lostNodes, subnetExhausted: exhausted });
    if (lostNodes.length) {
      events.warning(pool, 'OverlappingPools', 'Select', `${lostNodes.length} node(s) this pool selects belong to an older pool, e.g. ${lostNodes[0]!.node} (${lostNodes[0]!.winner})`);
    }

    metrics.poolNodes.set({ pool: name }, summary.nodes);
    metrics.poolIPs.set({ pool: name, state: 'allocated' }, summary.allocatedIPs);
    metrics.poolIPs.set({ pool: name, state: 'used' }, summary.usedIPs);
    metrics.poolIPs.set({ pool: name, state: 'released' }, summary.releasedIPs);
    const addressPrefix = mine.find((r) => r.status?.subnet?.addressPrefix)?.status?.subnet?.addressPrefix;
    this.gauges.set(name, pool.spec.ipsPerNode.max, live.map(nodeFigures),
      { name: subnetDisplayName(pool.spec.subnetID), addressPrefix, free: budget.seen(pool.spec.subnetID)?.free });

    const conflict = modeConflicts(poolModes(this.deps.caches.pools)).get(name);
    if (conflict) {
      events.warning(pool, 'AllocationModeConflict', 'Select', modeConflictCondition(conflict, pool.spec.allocation ?? 'Individual').message);
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
      allocatedBlocks: block ? live.reduce((a, r) => a + (r.status?.allocatedBlocks ?? 0), 0) : undefined,
      conditions: setConditions(old.conditions, [...summary.conditions, ...modeCondition], new Date().toISOString(), generation),
    };
    if (!sameStatus(old, next)) {
      await kube.mergePatch(`${PATHS.pools}/${name}/status`, { status: next });
    }
    // While a subnet is exhausted, look again so the condition clears when Azure has room.
    return exhausted ? { requeueAfterMs: opts.subnetFullBackoffMs } : {};
  }
}

/** What the pool's status sums of one live record. */
function recordSummary(r: Record_): RecordSummary {
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
}
