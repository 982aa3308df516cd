import { AZURE_MAX_IP_CONFIGS_PER_NIC, BLOCK_PREFIX_LENGTH, BLOCK_SIZE, MAX_PODS_PER_NODE } from '../crds/api/group.js';
import type { NodeIPPoolSpec } from '../crds/api/nodeippool.js';
import { targetIPs, type ScalingReason } from '../crds/scaling.js';
import { freshNames, isOurs, IP_CONFIG_PREFIX, type Demand, type IpConfigView } from './plan.js';

/**
 * What to do to one Block-mode node's NIC, as a pure function of plain data: planNode's twin for pools
 * with `allocation: Block`. The scaling math is the same (crds/scaling.ts) in addresses; the answer is
 * rounded up to whole /28 blocks, so min, max and batch (validated multiples of 16) move whole blocks.
 *
 * Invariants the property tests hold it to (block-plan.test.ts):
 * - never above the limits: the NIC keeps at most 256 ip-configs, the node at most ceil(max/16) blocks
 *   (and 16 for 250 pods);
 * - only a block the agent listed in releasedBlocks is removed, so a block with an address a pod holds is
 *   never removed (the agent lists a block only when every address in it is free);
 * - as in Individual mode, a round that removes adds nothing, and nothing is added while the agent still
 *   lists a block the NIC no longer holds: Azure hands a freed block straight back to the next ip-config.
 * - when the subnet has free addresses but no free aligned /28, the plan says so (`fragmented`); only a
 *   pool that opted in falls back to single ip-configs.
 */

export const BLOCK_NAME_PREFIX = `${IP_CONFIG_PREFIX}b`;

export interface BlockPlanInput {
  spec: Pick<NodeIPPoolSpec, 'ipsPerNode' | 'scaling' | 'subnetID'> & { fallbackToIndividual?: boolean | undefined };
  nic: readonly IpConfigView[];
  /** The agent's spec.releasedBlocks ("a.b.c.d/28"). */
  releasedBlocks: readonly string[];
  /** The agent's spec.releasedIPs: single fallback ip-configs it gave back. */
  releasedIPs?: readonly string[];
  demand?: Demand | undefined;
  /** Free aligned /28 blocks left in the subnet, when known. */
  subnetFreeBlocks?: number | undefined;
  /** Free addresses left in the subnet, when known. */
  subnetFree?: number | undefined;
  /** Largest number of ip-configs to add in this round. */
  maxAdds?: number | undefined;
  maxIpConfigs?: number;
}

export interface BlockPlan {
  /** Names of the block ip-configs to create (privateIPAddressPrefixLength 28, Dynamic, pool subnet). */
  addBlocks: string[];
  /** Names of single ip-configs to create: only on fallback, in a fragmented subnet. */
  addSingles: string[];
  /** Names of our ip-configs to delete: each a block (or fallback address) the agent released. */
  remove: string[];
  /** Blocks the node should hold. */
  targetBlocks: number;
  reason: ScalingReason;
  capped: boolean;
  /** Blocks wanted but held back (subnet, batch limit, release in progress). */
  deferredBlocks: number;
  waitingForAgent: boolean;
  /** The subnet has free addresses but fewer free aligned /28s than wanted. */
  fragmented: boolean;
  blocksBefore: number;
  blocksAfter: number;
  /** Usable addresses (block addresses plus fallback singles) after this plan. */
  usableAfter: number;
}

const sameId = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();
export const isBlock = (c: Pick<IpConfigView, 'prefixLength'>): boolean => c.prefixLength !== undefined;

/** Our block ip-configs in the pool subnet. */
export function poolBlocks(nic: readonly IpConfigView[], subnetId: string): IpConfigView[] {
  return nic.filter((c) => isOurs(c) && isBlock(c) && sameId(c.subnetId, subnetId));
}

/** The most blocks a node may hold: ceil(max / 16), and never more than 250 pods need. */
export function maxBlocks(max: number): number {
  return Math.ceil(Math.min(max, MAX_PODS_PER_NODE) / BLOCK_SIZE);
}

export function planBlocks(input: BlockPlanInput): BlockPlan {
  const { spec, nic } = input;
  const limit = input.maxIpConfigs ?? AZURE_MAX_IP_CONFIGS_PER_NIC;
  const releasedBlocks = new Set(input.releasedBlocks);
  const releasedIPs = new Set(input.releasedIPs ?? []);

  const ours = nic.filter(isOurs);
  const remove = ours
    .filter((c) => c.privateIPAddress !== undefined && (isBlock(c) ? releasedBlocks.has(c.privateIPAddress) : releasedIPs.has(c.privateIPAddress)))
    .map((c) => c.name);
  const removing = new Set(remove);
  const blocks = poolBlocks(nic, spec.subnetID).filter((c) => !removing.has(c.name)).length;
  const singles = ours.filter((c) => !isBlock(c) && sameId(c.subnetId, spec.subnetID) && !removing.has(c.name)).length;
  const fixed = nic.length - remove.length - blocks - singles;
  const configRoom = Math.max(0, limit - fixed);

  const usable = blocks * BLOCK_SIZE + singles;
  const decision = targetIPs({
    usable,
    used: input.demand?.usedIPs ?? 0,
    pending: input.demand?.pendingIPs ?? 0,
    min: spec.ipsPerNode.min,
    max: spec.ipsPerNode.max,
    // Addresses the NIC can carry: its free ip-config slots, a block each.
    nicCapacity: configRoom * BLOCK_SIZE,
    policy: spec.scaling,
  });
  const ceilingBlocks = Math.min(maxBlocks(spec.ipsPerNode.max), configRoom);
  // Fallback singles already on the NIC count towards the target, so blocks cover only the rest.
  const targetBlocks = Math.min(ceilingBlocks, Math.ceil(Math.max(0, decision.target - singles) / BLOCK_SIZE));
  const wanted = Math.max(0, targetBlocks - blocks);

  const onNic = new Set(nic.map((c) => c.privateIPAddress));
  const waitingForAgent = remove.length > 0 ||
    input.releasedBlocks.some((b) => !onNic.has(b)) || (input.releasedIPs ?? []).some((ip) => !onNic.has(ip));
  let allowed = waitingForAgent ? 0 : wanted;
  if (input.maxAdds !== undefined) allowed = Math.min(allowed, Math.max(0, input.maxAdds));
  let fragmented = false;
  if (input.subnetFreeBlocks !== undefined && allowed > input.subnetFreeBlocks) {
    fragmented = (input.subnetFree ?? 0) > 0;
    allowed = Math.max(0, input.subnetFreeBlocks);
  }
  const taken = new Set(nic.map((c) => c.name.toLowerCase()));
  const addBlocks: string[] = [];
  for (let i = 1; addBlocks.length < allowed; i++) {
    const name = `${BLOCK_NAME_PREFIX}${i}`;
    if (!taken.has(name)) addBlocks.push(name);
  }

  // Fallback: the missing blocks' addresses as single ip-configs, within the subnet and the NIC.
  let addSingles: string[] = [];
  if (fragmented && spec.fallbackToIndividual === true && !waitingForAgent) {
    const missingAddresses = Math.max(0, decision.target - usable - addBlocks.length * BLOCK_SIZE);
    const roomAfterBlocks = configRoom - blocks - singles - addBlocks.length;
    const subnetLeft = Math.max(0, (input.subnetFree ?? 0) - addBlocks.length * BLOCK_SIZE);
    let n = Math.min(missingAddresses, roomAfterBlocks, subnetLeft);
    if (input.maxAdds !== undefined) n = Math.min(n, Math.max(0, input.maxAdds - addBlocks.length));
    addSingles = freshNames([...nic, ...addBlocks.map((name) => ({ name, primary: false }))], Math.max(0, n));
  }

  return {
    addBlocks,
    addSingles,
    remove,
    targetBlocks,
    reason: decision.reason,
    capped: decision.capped,
    deferredBlocks: wanted - addBlocks.length,
    waitingForAgent,
    fragmented,
    blocksBefore: blocks,
    blocksAfter: blocks + addBlocks.length,
    usableAfter: usable + addBlocks.length * BLOCK_SIZE + addSingles.length,
  };
}

/** The ip-config list to write: the NIC's less `remove`, plus new blocks and singles in the pool subnet. */
export function nextBlockIpConfigs(nic: readonly IpConfigView[], plan: Pick<BlockPlan, 'addBlocks' | 'addSingles' | 'remove'>, subnetId: string): IpConfigView[] {
  const removing = new Set(plan.remove);
  const kept = nic.filter((c) => !removing.has(c.name) || !isOurs(c));
  return [
    ...kept,
    ...plan.addBlocks.map((name) => ({ name, primary: false, subnetId, prefixLength: BLOCK_PREFIX_LENGTH })),
    ...plan.addSingles.map((name) => ({ name, primary: false, subnetId })),
  ];
}

/** The "a.b.c.d/28" prefixes of the node's blocks in the pool subnet, lowest first. */
export function blockPrefixes(nic: readonly IpConfigView[], subnetId: string): string[] {
  return poolBlocks(nic, subnetId).map((c) => c.privateIPAddress).filter((p): p is string => p !== undefined);
}
