import type { AzureFailure } from './azure-errors.js';
import type { BlockPlan } from './block-plan.js';
import type { IpConfigView, Plan } from './plan.js';
import { parseProviderID, type MachineRef } from './providerid.js';
import type { ConditionInput } from './status.js';

/**
 * How a node round ends, as pure functions beside planNode and planBlocks: which machine the node is, whether
 * a refusal of the pool subnet still holds it back, the Ready condition a plan earns, and what a failed NIC
 * write means (Ready, requeue, the Warning to tell). The reconciler (node-reconciler.ts and the two rounds)
 * calls these and does what they say; round-outcome.test.ts holds them to it, property by property.
 */

/** How long a node waits after Azure cannot find its VM or NIC: they may come back (a reimage), or the Node go. */
export const NIC_NOT_FOUND_REQUEUE_MS = 60_000;

/** The node's VM or scale-set instance from its providerID, or why there is none (the Ready message). */
export function resolveMachine(providerID: string | undefined): { machine: MachineRef } | { problem: string } {
  try {
    return { machine: parseProviderID(providerID) };
  } catch (e) {
    return { problem: (e as Error).message };
  }
}

/** Azure refused the pool subnet on a node's NIC: what to say meanwhile, and when to try again. */
export interface Refusal {
  subnetId: string;
  until: number;
  count: number;
  message: string;
}

export interface RefusalBackoff {
  /** The first wait after a refusal (subnetNotAllowedBackoffMs). */
  baseMs: number;
  /** The waits double up to max(baseMs, resyncMs). */
  resyncMs: number;
}

const sameSubnet = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * A refusal remembered for this node, at the start of a round: `none` (go ahead), `stale` (it was of
 * another subnet: forget it and go ahead) or `wait` (retrying sooner would only be refused again).
 */
export function refusalGate(refusal: Refusal | undefined, poolSubnetId: string, now: number): 'none' | 'stale' | 'wait' {
  if (!refusal) return 'none';
  if (!sameSubnet(refusal.subnetId, poolSubnetId)) return 'stale';
  return now < refusal.until ? 'wait' : 'none';
}

export interface RefusalInput {
  previous: Refusal | undefined;
  nic: { nicId: string; ipConfigs: readonly IpConfigView[] };
  pool: { name: string; subnetId: string };
  azureMessage: string;
  now: number;
  backoff: RefusalBackoff;
}

/** The next refusal of the pool subnet on this NIC: a doubling wait, and a message that says what to change. */
export function nextRefusal(i: RefusalInput): Refusal {
  const count = i.previous && sameSubnet(i.previous.subnetId, i.pool.subnetId) ? i.previous.count + 1 : 1;
  const { baseMs, resyncMs } = i.backoff;
  const wait = Math.min(baseMs * 2 ** (count - 1), Math.max(baseMs, resyncMs));
  const primary = i.nic.ipConfigs.find((c) => c.primary)?.subnetId ?? 'unknown';
  const message = `NIC ${i.nic.nicId} has its primary ip-config in subnet ${primary}, and Azure refuses ip-configs of pool ${i.pool.name}'s subnet ${i.pool.subnetId} next to it `
    + `(${i.azureMessage}). Either give these nodes a pool whose subnetID is the node's subnet ${primary} (subnetID is immutable: create that pool, `
    + `then delete this one), or run them in a subscription whose NICs may hold `
    + `ip-configs from several subnets. Next try at ${new Date(i.now + wait).toISOString()}.`;
  return { subnetId: i.pool.subnetId, until: i.now + wait, count, message };
}

/** The event action a round's NIC writes are told under. */
export type NicWriteAction = 'AddIPs' | 'AddBlocks';

/** What a failed NIC write of one of the kinds both rounds treat alike means for the node. */
export interface NicWriteVerdict {
  ready: ConditionInput;
  requeueAfterMs: number;
  warning: { reason: string; action: NicWriteAction; note: string };
  /** Set for a refusal of the pool subnet: remember it (the wait before the next try). */
  refusal?: Refusal;
  /** The NIC id we keep for this node is no good any more. */
  forgetNicHint: boolean;
  /** The pool's status should say so soon (its Degraded condition). */
  poolSoon: boolean;
}

export interface NicWriteFailureInput extends Omit<RefusalInput, 'azureMessage'> {
  failure: AzureFailure;
  action: NicWriteAction;
}

/**
 * A NIC write Azure did not take. `subnetFull` is each round's own business (Individual halves its batches;
 * Block tells fragmentation from a full subnet); `azureFailed` is no race we expect (the record says so and
 * the work queue retries with backoff, or after Azure's Retry-After); the rest is decided here.
 */
export function nicWriteFailed(i: NicWriteFailureInput): NicWriteVerdict | 'subnetFull' | 'azureFailed' {
  const f = i.failure;
  switch (f.kind) {
    case 'SubnetFull': return 'subnetFull';
    case 'SubnetNotAllowedOnNIC': {
      const refusal = nextRefusal({ ...i, azureMessage: f.message });
      return {
        ready: { type: 'Ready', status: 'False', reason: 'SubnetNotAllowedOnNIC', message: refusal.message },
        requeueAfterMs: refusal.until - i.now,
        warning: { reason: 'SubnetNotAllowedOnNIC', action: i.action, note: refusal.message },
        refusal, forgetNicHint: false, poolSoon: true,
      };
    }
    case 'NotFound':
      return {
        ready: { type: 'Ready', status: 'False', reason: 'NICNotFound', message: f.message },
        requeueAfterMs: NIC_NOT_FOUND_REQUEUE_MS,
        warning: { reason: 'NICNotFound', action: i.action, note: f.message },
        forgetNicHint: true, poolSoon: false,
      };
    default: return 'azureFailed';
  }
}

/** The Ready condition of an Individual pool's node after planning (before Azure answers the write). */
export function individualReady(plan: Pick<Plan, 'add' | 'deferred' | 'capped' | 'target' | 'usableAfter'>, noRoom: { message: string } | undefined): ConditionInput {
  if (noRoom) return { type: 'Ready', status: 'False', reason: 'SubnetFull', message: `${noRoom.message}; adding ${plan.add.length} now, ${plan.deferred} more once addresses come back` };
  if (plan.deferred > 0) return { type: 'Ready', status: 'False', reason: 'Growing', message: `adding ${plan.add.length} now, ${plan.deferred} more once the subnet allows` };
  if (plan.capped) return { type: 'Ready', status: 'True', reason: 'AtLimit', message: `demand exceeds the ${plan.target} IPs that ipsPerNode.max and the NIC allow` };
  return { type: 'Ready', status: 'True', reason: 'Synced', message: `${plan.usableAfter} usable IPs, target ${plan.target}` };
}

export interface BlockReadyInput {
  plan: Pick<BlockPlan, 'addBlocks' | 'deferredBlocks' | 'capped' | 'targetBlocks' | 'usableAfter'>;
  /** Our blocks on the NIC after the write. */
  blocksNow: number;
  /** The SubnetExhausted/NoAlignedBlock message when the subnet is fragmented, else undefined. */
  fragmented: string | undefined;
  fallbackToIndividual: boolean;
  /** Blocks Azure refused for want of an aligned /28: still wanted. */
  refusedBlocks: number;
}

/** The Ready condition of a Block pool's node, when the write left none of its own (SubnetFull, a refusal...). */
export function blockReady(i: BlockReadyInput): ConditionInput {
  const { plan } = i;
  const wanted = plan.deferredBlocks + i.refusedBlocks;
  if (i.fragmented !== undefined && !i.fallbackToIndividual && wanted > 0) {
    return { type: 'Ready', status: 'False', reason: 'NoAlignedBlock', message: `${i.blocksNow} blocks held, ${wanted} more wanted: ${i.fragmented}` };
  }
  if (plan.deferredBlocks > 0) return { type: 'Ready', status: 'False', reason: 'Growing', message: `adding ${plan.addBlocks.length} blocks now, ${plan.deferredBlocks} more once the subnet allows` };
  if (plan.capped) return { type: 'Ready', status: 'True', reason: 'AtLimit', message: `demand exceeds the ${plan.targetBlocks} blocks that ipsPerNode.max and the NIC allow` };
  return { type: 'Ready', status: 'True', reason: 'Synced', message: `${i.blocksNow} blocks (${plan.usableAfter} usable addresses), target ${plan.targetBlocks} blocks` };
}
