import type { NodeNic, SubnetDetails } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import type { Pool, Record_ } from './caches.js';
import { ipToInt } from '../crds/ipv4.js';
import type { NodeEffects } from './node-effects.js';
import { hasChanges, nextIpConfigs, planNode, poolIpConfigs, type Plan } from './plan.js';
import type { MachineRef } from './providerid.js';
import { individualReady, nicWriteFailed } from './round-outcome.js';
import type { ConditionInput } from './status.js';
import type { SubnetEntry } from './subnet-budget.js';
import type { Result } from './workqueue.js';

/** What a node round works from, once node-reconciler.ts has read it: the record, its pool, the NIC and the subnet. */
export interface NodeRound {
  record: Record_;
  pool: Pool;
  machine: MachineRef;
  nic: NodeNic;
  subnet: SubnetDetails;
  entry: SubnetEntry;
}

export const sortIPs = (a: { ip: string }, b: { ip: string }) => ipToInt(a.ip) - ipToInt(b.ip);

/**
 * The round for a node of an Individual pool: plan (plan.ts) within the subnet's room by our count,
 * reserve the adds, make at most one NIC write, and say in the record's status what Azure has.
 */
export async function individualRound(fx: NodeEffects, round: NodeRound): Promise<Result> {
  const { record, pool, machine, nic, subnet, entry } = round;
  const { events, budget } = fx.deps;
  const name = record.metadata.name;
  const subnetId = pool.spec.subnetID;
  const plan = planNode({
    spec: pool.spec,
    nic: nic.ipConfigs,
    released: record.spec.releasedIPs,
    demand: record.spec.demand,
    subnetFree: entry.free,
    maxAdds: budget.healthOf(subnetId).maxAdds,
  });
  // Reserve the adds before any await, so nodes planning meanwhile do not count the same addresses.
  if (entry.free !== undefined) entry.free -= plan.add.length;
  const noRoom = plan.deferred > 0 && entry.free !== undefined && entry.free <= 0;
  if (noRoom) entry.noRoomSince ??= Date.now();
  if (plan.add.length > 0 || plan.deferred > 0) fx.short(name);
  if (noRoom) {
    // Our count says the subnet is spent: no Azure call for the rest until addresses come back
    // (a release here wakes this node) or the next subnet read.
    events.warning(record, 'SubnetFull', 'AddIPs', `${budget.noRoomMessage(subnetId)}: ${plan.deferred} IPs wanted`);
    fx.deps.poolSoon(pool.metadata.name);
  }

  const written = await writeIndividual(fx, round, plan, noRoom);
  if ('result' in written) return written.result;
  const { after, ready, requeueAfterMs } = written;
  await fx.writeStatus(record, {
    nic: { id: after.nicId, macAddress: after.macAddress, primaryIP: after.primaryIP, vmID: machine.id },
    subnet: { id: subnet.id, addressPrefix: subnet.addressPrefix, gatewayIP: subnet.gatewayIP },
    vnetAddressPrefixes: subnet.vnetAddressPrefixes,
    ips: poolIpConfigs(after.ipConfigs, subnetId)
      .filter((c) => c.privateIPAddress)
      .map((c) => ({ ip: c.privateIPAddress!, ipConfigName: c.name }))
      .sort(sortIPs),
    targetIPs: plan.target,
    conditions: [ready],
  });
  return { requeueAfterMs };
}

/** What a round's NIC write left: the NIC as it is now, the Ready condition, when to come back. */
export interface Written {
  after: NodeNic;
  ready: ConditionInput;
  requeueAfterMs: number | undefined;
}

/** The plan's one NIC write (if it changes anything), and what Azure's answer means for Ready and the requeue. */
async function writeIndividual(fx: NodeEffects, round: NodeRound, plan: Plan, noRoom: boolean): Promise<Written | { result: Result }> {
  const { record, pool, nic, entry } = round;
  const { azure, opts, events, budget } = fx.deps;
  const name = record.metadata.name;
  const subnetId = pool.spec.subnetID;
  // Room comes back through our own removes (roomMade wakes this node) or shows in the next subnet read,
  // one resync away: polling the NIC meanwhile would only spend the read budget (1,000 short nodes every
  // 30 s is more than ARM's 25 reads/s).
  const ready = individualReady(plan, noRoom ? { message: budget.noRoomMessage(subnetId) } : undefined);
  if (!hasChanges(plan)) return { after: nic, ready, requeueAfterMs: opts.resyncMs };
  try {
    const started = Date.now();
    const after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, plan, subnetId));
    fx.afterWrite(name, pool, plan);
    events.nicChanged(record, pool, nic, after, plan.add.length, plan.remove.length, started);
    if (plan.add.length) fx.refused.delete(name);
    return { after, ready, requeueAfterMs: plan.deferred > 0 && !noRoom ? 1000 : opts.resyncMs };
  } catch (e) {
    // The adds did not happen: give the reservation back (SubnetIsFull drops the whole entry below).
    if (entry.free !== undefined) entry.free += plan.add.length;
    if (entry.free !== undefined && entry.free > 0) entry.noRoomSince = undefined;
    if (!(e instanceof AzureCallError)) throw e;
    const verdict = nicWriteFailed({
      failure: e.failure, action: 'AddIPs', previous: fx.refused.get(name), nic, pool: { name: pool.metadata.name, subnetId },
      now: Date.now(), backoff: { baseMs: opts.subnetNotAllowedBackoffMs, resyncMs: opts.resyncMs },
    });
    if (verdict === 'azureFailed') return { result: await fx.azureFailed(record, e) };
    if (verdict === 'subnetFull') return subnetIsFull(fx, round, plan, e.failure.message);
    return { after: nic, ...fx.applyVerdict(record, pool, nic, verdict) };
  }
}

/** Azure said SubnetIsFull (someone else took the room): halve the batches, say so, and still send the removals. */
async function subnetIsFull(fx: NodeEffects, { record, pool, nic, entry }: NodeRound, plan: Plan, message: string): Promise<Written> {
  const { azure, events, budget, log } = fx.deps;
  const name = record.metadata.name;
  const subnetId = pool.spec.subnetID;
  const health = budget.healthOf(subnetId);
  budget.forget(subnetId, entry);
  const wait = health.onFull(plan.add.length, message);
  log.warn({ node: name, tried: plan.add.length, next: health.maxAdds, retryInMs: wait }, 'subnet is full');
  events.warning(record, 'SubnetIsFull', 'AddIPs', `Azure has no room for ${plan.add.length} more IPs in ${subnetId}: ${message}; trying ${health.maxAdds} at a time`);
  events.warning(pool, 'SubnetIsFull', 'AddIPs', `subnet ${subnetId} is full: ${message}`);
  fx.deps.poolSoon(pool.metadata.name);
  let after = nic;
  if (plan.remove.length) {
    // The removals must not wait for room in the subnet: send them on their own.
    const started = Date.now();
    after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: [], remove: plan.remove }, subnetId))
      .then((n) => { fx.afterWrite(name, pool, { ...plan, add: [] }); events.nicChanged(record, pool, nic, n, 0, plan.remove.length, started); return n; })
      .catch((e2) => { if (e2 instanceof AzureCallError) return nic; throw e2; });
  }
  return { after, ready: { type: 'Ready', status: 'False', reason: 'SubnetFull', message }, requeueAfterMs: wait };
}
