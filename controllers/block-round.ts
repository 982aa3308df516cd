import { BLOCK_SIZE } from '../crds/api/index.js';
import { ipToInt } from '../crds/ipv4.js';
import { AzureCallError } from './azure-errors.js';
import { fragmentedCondition } from './block-conditions.js';
import { isBlock, nextBlockIpConfigs, planBlocks, poolBlocks, type BlockPlan } from './block-plan.js';
import { sortIPs, type NodeRound, type Written } from './individual-round.js';
import type { NodeEffects } from './node-effects.js';
import { poolIpConfigs } from './plan.js';
import { blockReady, nicWriteFailed } from './round-outcome.js';
import type { ConditionInput } from './status.js';
import type { Result } from './workqueue.js';

/**
 * The round for a node of a Block pool: block-plan.ts decides in whole /28s, one NIC write carries every add
 * and remove, only blocks the agent listed in releasedBlocks leave the NIC, and the subnet's headroom is
 * counted in blocks. A subnet with free addresses but no aligned /28 is reported (SubnetExhausted/NoAlignedBlock
 * and a Warning), not papered over unless the pool opted into fallback.
 */
export async function blockRound(fx: NodeEffects, round: NodeRound): Promise<Result> {
  const { record, pool, machine, nic, subnet, entry } = round;
  const { opts, events, budget } = fx.deps;
  const subnetId = pool.spec.subnetID;
  const plan = planBlocks({
    spec: pool.spec,
    nic: nic.ipConfigs,
    releasedBlocks: record.spec.releasedBlocks ?? [],
    releasedIPs: record.spec.releasedIPs,
    demand: record.spec.demand,
    subnetFreeBlocks: entry.freeBlocks,
    subnetFree: entry.free,
    maxAdds: budget.healthOf(subnetId).maxAdds,
  });
  const removedBlocks = plan.remove.filter((n) => nic.ipConfigs.some((c) => c.name === n && isBlock(c))).length;
  const sizes: Sizes = {
    removedBlocks,
    removedAddresses: removedBlocks * BLOCK_SIZE + (plan.remove.length - removedBlocks),
    addedAddresses: plan.addBlocks.length * BLOCK_SIZE + plan.addSingles.length,
  };
  // Reserve before any await, so nodes planning meanwhile do not count the same blocks.
  if (entry.free !== undefined) entry.free = Math.max(0, entry.free - sizes.addedAddresses);
  if (entry.freeBlocks !== undefined) entry.freeBlocks = Math.max(0, entry.freeBlocks - plan.addBlocks.length);
  if (plan.addBlocks.length > 0 || plan.deferredBlocks > 0) fx.short(record.metadata.name);

  const written = await writeBlocks(fx, round, plan, sizes);
  if ('result' in written) return written.result;
  const { after } = written;
  let { requeueAfterMs } = written;
  const fallback = pool.spec.fallbackToIndividual === true;
  const conditions: ConditionInput[] = [];
  let fragmentedMessage: string | undefined;
  if (written.fragmented !== undefined) {
    const c = fragmentedCondition(subnetId, written.fragmented, fallback);
    fragmentedMessage = c.message;
    conditions.push(c);
    if (!entry.fragmented) events.warning(pool, 'NoAlignedBlock', 'AddBlocks', c.message);
    const current = budget.seen(subnetId) ?? entry;
    current.fragmented ??= { since: Date.now(), message: c.message };
    events.warning(record, 'NoAlignedBlock', 'AddBlocks', c.message);
    fx.deps.poolSoon(pool.metadata.name);
    requeueAfterMs = Math.min(requeueAfterMs ?? opts.resyncMs, opts.subnetFullBackoffMs);
  } else {
    conditions.push({ type: 'SubnetExhausted', status: 'False', reason: 'BlocksFit', message: `the blocks this node wants fit in subnet ${subnetId}` });
  }
  const blocksNow = poolBlocks(after.ipConfigs, subnetId).length;
  conditions.unshift(written.ready ?? blockReady({ plan, blocksNow, fragmented: fragmentedMessage, fallbackToIndividual: fallback, refusedBlocks: written.refusedBlocks }));

  await fx.writeStatus(record, {
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
  });
  return { requeueAfterMs };
}

/** Addresses and blocks a plan adds and removes. */
interface Sizes { removedBlocks: number; removedAddresses: number; addedAddresses: number }

/** A Block round's write: as an Individual one's, plus what it found of fragmentation. */
interface BlocksWritten extends Omit<Written, 'ready'> {
  /** Set when the write decided Ready itself (SubnetFull, a refusal, NIC not found); else blockReady decides. */
  ready?: ConditionInput;
  /** Free addresses left in a subnet with no aligned /28 for us (undefined: not fragmented). */
  fragmented?: number;
  /** Blocks Azure refused for want of an aligned /28 (with free addresses left): still wanted. */
  refusedBlocks: number;
}

/** The plan's one NIC write (if it changes anything), and what Azure's answer means. */
async function writeBlocks(fx: NodeEffects, round: NodeRound, plan: BlockPlan, sizes: Sizes): Promise<BlocksWritten | { result: Result }> {
  const { record, pool, nic, entry } = round;
  const { azure, opts, events, budget, metrics, log } = fx.deps;
  const name = record.metadata.name;
  const subnetId = pool.spec.subnetID;
  const unchanged: BlocksWritten = { after: nic, requeueAfterMs: opts.resyncMs, fragmented: plan.fragmented ? entry.free ?? 0 : undefined, refusedBlocks: 0 };
  if (plan.addBlocks.length + plan.addSingles.length + plan.remove.length === 0) return unchanged;
  try {
    const started = Date.now();
    const after = await azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, plan, subnetId));
    const added = plan.addBlocks.length + plan.addSingles.length;
    if (added) {
      metrics.ipConfigChanges.inc({ change: 'added' }, added);
      budget.healthOf(subnetId).onAdded(plan.addBlocks.length, Math.max(1, pool.spec.scaling.batchSize / BLOCK_SIZE));
      if (plan.deferredBlocks === 0) fx.served(name);
      fx.refused.delete(name);
    }
    if (plan.remove.length) {
      metrics.ipConfigChanges.inc({ change: 'removed' }, plan.remove.length);
      fx.roomMade(subnetId, sizes.removedAddresses, sizes.removedBlocks);
    }
    events.nicChanged(record, pool, nic, after, added, plan.remove.length, started);
    log.info({ node: name, pool: pool.metadata.name, addedBlocks: plan.addBlocks.length, addedSingles: plan.addSingles.length, removed: plan.remove.length, targetBlocks: plan.targetBlocks, reason: plan.reason }, 'updated NIC');
    return { ...unchanged, after, requeueAfterMs: plan.deferredBlocks > 0 && !plan.fragmented ? 1000 : opts.resyncMs };
  } catch (e) {
    if (entry.free !== undefined) entry.free += sizes.addedAddresses;
    if (entry.freeBlocks !== undefined) entry.freeBlocks += plan.addBlocks.length;
    if (!(e instanceof AzureCallError)) throw e;
    const verdict = nicWriteFailed({
      failure: e.failure, action: 'AddBlocks', previous: fx.refused.get(name), nic, pool: { name: pool.metadata.name, subnetId },
      now: Date.now(), backoff: { baseMs: opts.subnetNotAllowedBackoffMs, resyncMs: opts.resyncMs },
    });
    if (verdict === 'azureFailed') return { result: await fx.azureFailed(record, e) };
    if (verdict === 'subnetFull') return { ...unchanged, ...(await noBlockFits(fx, round, plan, sizes, e.failure.message)) };
    return { ...unchanged, ...fx.applyVerdict(record, pool, nic, verdict) };
  }
}

/** Azure found no free aligned /28. With addresses left by our count, that is fragmentation; else the subnet is full. */
async function noBlockFits(fx: NodeEffects, { record, pool, nic, entry }: NodeRound, plan: BlockPlan, sizes: Sizes, message: string): Promise<Partial<BlocksWritten>> {
  const { azure, events, budget } = fx.deps;
  const subnetId = pool.spec.subnetID;
  const freeLeft = entry.free ?? 0;
  budget.forget(subnetId, entry);
  const wait = budget.healthOf(subnetId).onFull(Math.max(1, plan.addBlocks.length), message);
  const out: Partial<BlocksWritten> = { requeueAfterMs: wait };
  if (freeLeft > 0) {
    out.fragmented = freeLeft;
    out.refusedBlocks = plan.addBlocks.length;
  } else {
    events.warning(record, 'SubnetIsFull', 'AddBlocks', `Azure has no room for ${plan.addBlocks.length} more /28 blocks in ${subnetId}: ${message}`);
    out.ready = { type: 'Ready', status: 'False', reason: 'SubnetFull', message };
  }
  fx.deps.poolSoon(pool.metadata.name);
  if (plan.remove.length) {
    // Released blocks must not wait for room in the subnet: send the removals on their own.
    const started = Date.now();
    out.after = await azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, { addBlocks: [], addSingles: [], remove: plan.remove }, subnetId))
      .then((n) => { fx.roomMade(subnetId, sizes.removedAddresses, sizes.removedBlocks); events.nicChanged(record, pool, nic, n, 0, plan.remove.length, started); return n; })
      .catch((e2) => { if (e2 instanceof AzureCallError) return nic; throw e2; });
  }
  return out;
}
