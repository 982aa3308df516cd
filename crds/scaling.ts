import { AZURE_MAX_IP_CONFIGS_PER_NIC, MAX_PODS_PER_NODE } from './api/group.js';

/**
 * What a NodeIPPool's `ipsPerNode` and `scaling` fields mean, as a pure function of numbers. The
 * controller uses it to decide how many IPs a node should hold; the node agent uses the same function to
 * decide how many free IPs to give back, so the two never pull in opposite directions.
 *
 * Sizes move in whole batches (targets are multiples of batchSize, then clamped to min/max), and there
 * is a dead band between growing and shrinking so a steady load never flaps.
 */

export interface ScalingPolicy {
  batchSize: number;
  requestThresholdPercent: number;
  releaseThresholdPercent: number;
  warmIPs?: number | undefined;
}

export interface ScalingInput {
  /** IPs on the NIC that can still be handed out or are in use (released ones excluded). */
  usable: number;
  /** IPs pods hold now. */
  used: number;
  /** Pod set-ups waiting for an IP. */
  pending: number;
  min: number;
  max: number;
  /** How many pool IPs the NIC can still carry: 256 ip-configs less the primary and foreign ones. */
  nicCapacity?: number;
  policy: ScalingPolicy;
}

export type ScalingReason = 'Grow' | 'Shrink' | 'Steady' | 'RaiseToMin' | 'LowerToMax';

export interface ScalingDecision {
  target: number;
  reason: ScalingReason;
  /** True when demand exceeds what min/max and the NIC allow: some pods cannot get an IP here. */
  capped: boolean;
}

function roundUpToBatch(n: number, batch: number): number {
  return Math.ceil(n / batch) * batch;
}

/** The number of usable IPs the node should hold. */
export function targetIPs(input: ScalingInput): ScalingDecision {
  const { usable, used, pending, policy } = input;
  const batch = Math.max(1, policy.batchSize);
  const need = used + pending;
  const free = usable - need;

  let lowWater: number; // grow when free falls below this
  let highWater: number; // shrink when free rises above this
  if (policy.warmIPs !== undefined) {
    lowWater = policy.warmIPs;
    highWater = policy.warmIPs + batch;
  } else {
    lowWater = Math.ceil((batch * policy.requestThresholdPercent) / 100);
    highWater = Math.floor((batch * policy.releaseThresholdPercent) / 100);
  }
  // Growing and shrinking both aim here, so the point is stable: once reached, neither fires again.
  const settled = roundUpToBatch(need + lowWater, batch);

  let target = usable;
  let reason: ScalingReason = 'Steady';
  if (free < lowWater) {
    target = settled;
    reason = 'Grow';
  } else if (free > highWater && settled < usable) {
    target = settled;
    reason = 'Shrink';
  }

  const ceiling = Math.max(0, Math.min(input.max, MAX_PODS_PER_NODE, input.nicCapacity ?? AZURE_MAX_IP_CONFIGS_PER_NIC - 1));
  const floor = Math.min(input.min, ceiling);
  if (target < floor) {
    target = floor;
    reason = 'RaiseToMin';
  }
  if (target > ceiling) {
    target = ceiling;
    reason = 'LowerToMax';
  }
  return { target, reason, capped: need > ceiling };
}
