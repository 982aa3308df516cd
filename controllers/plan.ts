import { AZURE_MAX_IP_CONFIGS_PER_NIC } from '../crds/api/group.js';
import type { NodeIPPoolSpec } from '../crds/api/nodeippool.js';
import { targetIPs, type ScalingReason } from '../crds/scaling.js';

/**
 * What to do to one node's NIC, as pure functions of plain data. The reconciler reads the world (pool,
 * record, NIC, subnet), calls these, and turns the answer into at most one NIC write.
 *
 * Invariants the property tests hold these functions to:
 * - a foreign ip-config (name without our prefix) and the primary ip-config are never removed;
 * - an ip-config of ours is removed only if the agent released its IP (except on teardown);
 * - the NIC never ends up with more than 256 ip-configs, nor the node with more usable IPs than max;
 * - the release handshake settles even though Azure hands freed addresses straight back
 *   (release-handshake.test.ts).
 */

export const IP_CONFIG_PREFIX = 'podvnet-';

/** One ip-config as the NIC reports it. */
export interface IpConfigView {
  name: string;
  privateIPAddress?: string | undefined;
  primary: boolean;
  subnetId?: string | undefined;
  /** Set for a block ip-config (privateIPAddressPrefixLength): privateIPAddress is then "a.b.c.d/28". */
  prefixLength?: number | undefined;
}

export interface Demand {
  usedIPs: number;
  pendingIPs: number;
}

export interface PlanInput {
  spec: Pick<NodeIPPoolSpec, 'ipsPerNode' | 'scaling' | 'subnetID'>;
  nic: readonly IpConfigView[];
  /** The agent's spec.releasedIPs. */
  released: readonly string[];
  /** The agent's spec.demand; absent until the agent first reports. */
  demand?: Demand | undefined;
  /** Free addresses left in the subnet, when known. */
  subnetFree?: number | undefined;
  /** Largest number of adds allowed in this round (lowered after SubnetIsFull). */
  maxAdds?: number | undefined;
  /** NIC ip-config limit (Azure: 256). */
  maxIpConfigs?: number;
}

export interface Plan {
  /** Names of the ip-configs to create: Dynamic allocation in the pool subnet. */
  add: string[];
  /** Names of our ip-configs to delete: each holds an IP the agent released. */
  remove: string[];
  /** Usable IPs the node should hold (the scaling policy's answer, within min/max/NIC capacity). */
  target: number;
  reason: ScalingReason;
  /** Demand exceeds what min/max and the NIC allow. */
  capped: boolean;
  /** Adds wanted but held back by subnet headroom, the batch limit or a release in progress. */
  deferred: number;
  /** Adds are held until the agent has seen its released IPs leave the NIC (see planNode). */
  waitingForAgent: boolean;
  /** Our usable IPs before and after this plan. */
  usableBefore: number;
  usableAfter: number;
}

export const isOurs = (c: Pick<IpConfigView, 'name' | 'primary'>): boolean =>
  !c.primary && c.name.toLowerCase().startsWith(IP_CONFIG_PREFIX);

const sameId = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();

/** Our ip-configs that hold a pool-subnet IP: the ones the agent can hand out (or has released). */
export function poolIpConfigs(nic: readonly IpConfigView[], subnetId: string): IpConfigView[] {
  return nic.filter((c) => isOurs(c) && sameId(c.subnetId, subnetId));
}

/** `count` fresh names with our prefix, lowest indices first, none equal to a name on the NIC. */
export function freshNames(nic: readonly IpConfigView[], count: number): string[] {
  const taken = new Set(nic.map((c) => c.name.toLowerCase()));
  const names: string[] = [];
  for (let i = 1; names.length < count; i++) {
    const name = `${IP_CONFIG_PREFIX}${i}`;
    if (!taken.has(name)) names.push(name);
  }
  return names;
}

export function planNode(input: PlanInput): Plan {
  const { spec, nic } = input;
  const limit = input.maxIpConfigs ?? AZURE_MAX_IP_CONFIGS_PER_NIC;
  const released = new Set(input.released);

  const ours = nic.filter(isOurs);
  const remove = ours.filter((c) => c.privateIPAddress !== undefined && released.has(c.privateIPAddress)).map((c) => c.name);
  const removing = new Set(remove);
  const usable = poolIpConfigs(nic, spec.subnetID).filter((c) => !removing.has(c.name)).length;
  // Everything that stays and is not a usable pool IP: primary, foreign, ours in another subnet.
  const fixed = nic.length - remove.length - usable;

  const used = input.demand?.usedIPs ?? 0;
  const pending = input.demand?.pendingIPs ?? 0;
  const decision = targetIPs({
    usable,
    used,
    pending,
    min: spec.ipsPerNode.min,
    max: spec.ipsPerNode.max,
    nicCapacity: Math.max(0, limit - fixed),
    policy: spec.scaling,
  });

  const wanted = Math.max(0, decision.target - usable);
  // Azure gives a new Dynamic ip-config the lowest free address, often one freed a moment before. An
  // address that came back under a new name while the agent still lists it as released would be taken
  // for released again and removed again, round after round. So a round that removes released
  // ip-configs adds none, and nothing is added while the agent still lists an IP the NIC no longer holds
  // (it has not seen the removal yet); its next sync, a spec change, starts the round that grows.
  const onNic = new Set(nic.map((c) => c.privateIPAddress));
  const waitingForAgent = remove.length > 0 || input.released.some((ip) => !onNic.has(ip));
  let allowed = waitingForAgent ? 0 : wanted;
  if (input.subnetFree !== undefined) allowed = Math.min(allowed, Math.max(0, input.subnetFree));
  if (input.maxAdds !== undefined) allowed = Math.min(allowed, Math.max(0, input.maxAdds));
  const add = freshNames(nic, allowed);

  return {
    add,
    remove,
    target: decision.target,
    reason: decision.reason,
    capped: decision.capped,
    deferred: wanted - allowed,
    waitingForAgent,
    usableBefore: usable,
    usableAfter: usable + add.length,
  };
}

/** Teardown (node, pool or selection gone): every ip-config of ours goes, nothing else does. */
export function planRelease(nic: readonly IpConfigView[]): string[] {
  return nic.filter(isOurs).map((c) => c.name);
}

/** The ip-config list to write: the NIC's as it is, less `remove`, plus `add` in the pool subnet. */
export function nextIpConfigs(nic: readonly IpConfigView[], change: { add: readonly string[]; remove: readonly string[] }, subnetId: string): IpConfigView[] {
  const removing = new Set(change.remove);
  const kept = nic.filter((c) => !removing.has(c.name) || !isOurs(c));
  return [...kept, ...change.add.map((name) => ({ name, primary: false, subnetId }))];
}

export const hasChanges = (p: { add: readonly string[]; remove: readonly string[] }): boolean => p.add.length > 0 || p.remove.length > 0;
