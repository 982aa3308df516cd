import type { KubernetesObject } from '@kubernetes/client-node';
import { API_GROUP_VERSION, BLOCK_SIZE, NodeIPAllocation, POOL_LABEL, RELEASE_FINALIZER } from '../crds/api/index.js';
import type { NodeNic, SubnetDetails } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import { modeConflictCondition, modeConflicts } from './block-conditions.js';
import { isBlock } from './block-plan.js';
import { blockRound } from './block-round.js';
import { poolCandidates, poolModes, type NodeObject, type Pool, type Record_ } from './caches.js';
import { markKey, recordMark, type SeenMarks } from './event-marks.js';
import { individualRound } from './individual-round.js';
import { isNotFound, KubeError, PATHS } from './kube.js';
import { NodeEffects, type NodeDeps } from './node-effects.js';
import { ARGOCD_IGNORE_UPDATES_ANNOTATION, PROVIDER_ID_ANNOTATION } from './options.js';
import { nextIpConfigs, planRelease } from './plan.js';
import { parseProviderID, type MachineRef } from './providerid.js';
import { NIC_NOT_FOUND_REQUEUE_MS, refusalGate, resolveMachine } from './round-outcome.js';
import { choosePool } from './select.js';
import type { SubnetEntry } from './subnet-budget.js';
import type { Result } from './workqueue.js';

/**
 * The node reconciler, level-triggered: read the node, its pool and its record from the caches; create the
 * record, tear it down, or run one round towards what should be. A round (sync) resolves the machine, checks
 * what holds it back (a mode conflict, a refusal of the pool subnet), reads the NIC and the subnet, then hands
 * over to the Individual or the Block round (individual-round.ts, block-round.ts), which make at most one NIC
 * write and say in the record's status what Azure has.
 */
export class NodeReconciler {
  private readonly fx: NodeEffects;

  constructor(private readonly deps: NodeDeps, private readonly marks: SeenMarks) {
    this.fx = new NodeEffects(deps);
  }

  async reconcile(name: string): Promise<Result> {
    const { nodes, pools, records } = this.deps.caches;
    const node = nodes.get(name);
    const record = records.get(name);
    const live = node && !node.metadata.deletionTimestamp ? node : undefined;
    const winner = live ? choosePool(poolCandidates(pools), live.metadata.labels).winner : undefined;

    if (record) {
      const pool = pools.get(record.spec.poolName);
      const keep = live && pool && !pool.metadata.deletionTimestamp && winner === record.spec.poolName && !record.metadata.deletionTimestamp;
      if (!keep) return this.teardown(record, live);
      return this.sync(live!, pool!, record);
    }
    if (!live || !winner) {
      this.fx.nicHints.delete(name);
      return {};
    }
    const pool = pools.get(winner)!;
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
    const metadata = { name: node.metadata.name, labels: { [POOL_LABEL]: pool.metadata.name }, annotations, finalizers: [RELEASE_FINALIZER], ownerReferences };
    const body = { apiVersion: API_GROUP_VERSION, kind: 'NodeIPAllocation', metadata, spec: { poolName: pool.metadata.name, releasedIPs: [] } };
    // The watch may deliver the new record before the POST returns: mark it as served beforehand (as the API
    // server will create it: generation 1), so its add event does not cost the node a second round.
    const key = markKey.record(node.metadata.name);
    this.marks.set(key, recordMark({ generation: 1, finalizers: metadata.finalizers }));
    try {
      const created = await this.deps.kube.create<KubernetesObject>(PATHS.records, body);
      this.marks.set(key, recordMark(created.metadata));
      this.deps.log.info({ node: node.metadata.name, pool: pool.metadata.name }, 'created node record');
      return NodeIPAllocation.parse(created) as Record_;
    } catch (e) {
      this.marks.delete(key);
      if (e instanceof KubeError && e.status === 409) return undefined; // exists already: the informer will bring it
      throw e;
    }
  }

  /** The node's machine for teardown: from the Node, else what the record remembers of it. */
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
    const { kube, azure, log, metrics, events, caches } = this.deps;
    const name = record.metadata.name;
    const path = `${PATHS.records}/${name}`;
    if (!record.metadata.deletionTimestamp) {
      log.info({ node: name, pool: record.spec.poolName, nodeExists: !!node }, 'node left its pool; deleting record');
      try { await kube.delete(path); } catch (e) { if (!isNotFound(e)) throw e; }
      return {};
    }
    if (!(record.metadata.finalizers ?? []).includes(RELEASE_FINALIZER)) return {};
    const machine = this.machineOf(record, node);
    if (machine) {
      try {
        const nic = await azure.getNodeNic(machine, this.fx.nicHints.get(name) ?? record.status?.nic?.id);
        const remove = planRelease(nic.ipConfigs);
        if (remove.length) {
          const started = Date.now();
          const after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: [], remove }, record.status?.subnet?.id ?? ''));
          const pool = caches.pools.get(record.spec.poolName);
          events.nicChanged(record, pool, nic, after, 0, remove.length, started);
          metrics.ipConfigChanges.inc({ change: 'removed' }, remove.length);
          const blocksGone = nic.ipConfigs.filter((c) => remove.includes(c.name) && isBlock(c)).length;
          this.fx.roomMade(pool?.spec.subnetID ?? record.status?.subnet?.id ?? '', remove.length + blocksGone * (BLOCK_SIZE - 1), blocksGone);
          log.info({ node: name, removed: remove.length }, 'gave ip-configs back');
        }
      } catch (e) {
        if (!(e instanceof AzureCallError)) throw e;
        if (e.failure.kind === 'NotFound') {
          log.info({ node: name }, 'NIC or VM is gone: nothing to give back');
        } else {
          return this.fx.azureRetry(e, name);
        }
      }
    }
    const finalizers = (record.metadata.finalizers ?? []).filter((f) => f !== RELEASE_FINALIZER);
    try {
      await kube.mergePatch(path, { metadata: { resourceVersion: record.metadata.resourceVersion, finalizers } });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.fx.forget(name);
    this.deps.poolSoon(record.spec.poolName);
    return {};
  }

  /** The steady-state round for one node: resolve, check what holds it back, read the NIC and subnet, then plan and write. */
  private async sync(node: NodeObject, pool: Pool, record: Record_): Promise<Result> {
    const resolved = resolveMachine(node.spec?.providerID);
    if ('problem' in resolved) return this.invalidProviderID(record, resolved.problem);
    const held = (await this.modeConflict(record, pool)) ?? (await this.refusalHold(record, pool));
    if (held) return held;
    const read = await this.readNicAndSubnet(record, pool, resolved.machine);
    if ('result' in read) return read.result;
    await this.ensureArgoAnnotation(record);
    this.noteHeadroom(pool, read.subnet, read.entry);
    const round = { record, pool, machine: resolved.machine, ...read };
    return pool.spec.allocation === 'Block' ? blockRound(this.fx, round) : individualRound(this.fx, round);
  }

  private async invalidProviderID(record: Record_, message: string): Promise<Result> {
    this.deps.events.warning(record, 'InvalidProviderID', 'Resolve', message);
    await this.fx.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidProviderID', message }] });
    return {};
  }

  /**
   * One mode per subnet: the later pool is not served (its singles would leave no aligned /28, or its
   * blocks would take what the earlier pool's nodes grow into). The pool round says so with an event.
   */
  private async modeConflict(record: Record_, pool: Pool): Promise<Result | undefined> {
    const conflict = modeConflicts(poolModes(this.deps.caches.pools)).get(pool.metadata.name);
    if (!conflict) return undefined;
    const c = modeConflictCondition(conflict, pool.spec.allocation);
    await this.fx.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'AllocationModeConflict', message: c.message }] });
    return { requeueAfterMs: this.deps.opts.resyncMs };
  }

  /** Azure refused the pool subnet on this NIC not long ago: retrying sooner would only be refused again (and spend the write budget). */
  private async refusalHold(record: Record_, pool: Pool): Promise<Result | undefined> {
    const name = record.metadata.name;
    const refusal = this.fx.refused.get(name);
    const now = Date.now();
    switch (refusalGate(refusal, pool.spec.subnetID, now)) {
      case 'none': return undefined;
      case 'stale': this.fx.refused.delete(name); return undefined;
      case 'wait':
        await this.fx.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'SubnetNotAllowedOnNIC', message: refusal!.message }] });
        return { requeueAfterMs: refusal!.until - now };
    }
  }

  /** The pool subnet (cached, shared by all its nodes) and the node's NIC; a VM, NIC or subnet Azure cannot find ends the round. */
  private async readNicAndSubnet(record: Record_, pool: Pool, machine: MachineRef): Promise<{ nic: NodeNic; subnet: SubnetDetails; entry: SubnetEntry } | { result: Result }> {
    const name = record.metadata.name;
    const entry = this.deps.budget.entry(pool.spec.subnetID, pool.spec.allocation === 'Block');
    try {
      const subnet = await entry.details;
      const nic = await this.deps.azure.getNodeNic(machine, this.fx.nicHints.get(name) ?? record.status?.nic?.id);
      this.fx.nicHints.set(name, nic.nicId);
      return { nic, subnet, entry };
    } catch (e) {
      if (e instanceof AzureCallError && e.failure.kind === 'NotFound') {
        const message = `${machine.id}: ${e.failure.message}`;
        this.deps.events.warning(record, 'NICNotFound', 'Resolve', `cannot find the node's VM, NIC or the pool subnet: ${message}`);
        await this.fx.writeStatus(record, { conditions: [{ type: 'Ready', status: 'False', reason: 'NICNotFound', message }] });
        return { result: { requeueAfterMs: NIC_NOT_FOUND_REQUEUE_MS } };
      }
      if (e instanceof AzureCallError) return { result: await this.fx.azureFailed(record, e) };
      throw e;
    }
  }

  /** A record from before the Argo CD annotation existed: Argo CD would otherwise show our writes as changes. */
  private async ensureArgoAnnotation(record: Record_): Promise<void> {
    if (record.metadata.annotations?.[ARGOCD_IGNORE_UPDATES_ANNOTATION] !== undefined) return;
    await this.deps.kube.mergePatch(`${PATHS.records}/${record.metadata.name}`, { metadata: { annotations: { [ARGOCD_IGNORE_UPDATES_ANNOTATION]: 'true' } } });
  }

  /** The subnet read's headroom seeds our running count; a read that could not tell it is said once per subnet. */
  private noteHeadroom(pool: Pool, subnet: SubnetDetails, entry: SubnetEntry): void {
    entry.free ??= subnet.freeIPs;
    if (subnet.headroomUnknown && !entry.warned) {
      entry.warned = true;
      this.deps.log.warn({ pool: pool.metadata.name, problem: subnet.headroomUnknown }, 'subnet headroom unknown; Azure\'s SubnetIsFull is the only limit');
      this.deps.events.warning(pool, 'SubnetReadFailed', 'ReadSubnet', subnet.headroomUnknown);
    }
    entry.freeBlocks ??= subnet.freeBlocks;
  }
}
