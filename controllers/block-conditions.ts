import type { AllocationMode } from '../crds/api/nodeippool.js';
import type { ConditionInput } from './status.js';

/**
 * Block mode's cross-object rule and its fragmentation report, as pure functions. CEL sees one object, so
 * "one allocation mode per subnet across pools" is the controller's to enforce: the pool created later (by
 * creationTimestamp, then name) that names the same subnet with the other mode is in conflict, gets the
 * AllocationModeConflict condition and a Warning event, and is not served. Mixing would let single
 * ip-configs scatter through the subnet and leave no aligned /28 for the Block pool.
 */

export interface PoolModeView {
  name: string;
  subnetID: string;
  allocation: AllocationMode;
  creationTimestamp?: string | undefined;
}

export interface ModeConflict {
  pool: string;
  /** The earlier pool whose mode wins on that subnet. */
  winner: string;
  winnerMode: AllocationMode;
  subnetID: string;
}

const older = (a: PoolModeView, b: PoolModeView): number =>
  (a.creationTimestamp ?? '').localeCompare(b.creationTimestamp ?? '') || a.name.localeCompare(b.name);

/** Each pool that must not be served because an earlier pool uses the same subnet in the other mode. */
export function modeConflicts(pools: readonly PoolModeView[]): Map<string, ModeConflict> {
  const bySubnet = new Map<string, PoolModeView[]>();
  for (const p of pools) {
    const k = p.subnetID.toLowerCase();
    bySubnet.set(k, [...(bySubnet.get(k) ?? []), p]);
  }
  const out = new Map<string, ModeConflict>();
  for (const group of bySubnet.values()) {
    const sorted = [...group].sort(older);
    const first = sorted[0]!;
    for (const p of sorted.slice(1)) {
      if (p.allocation !== first.allocation) out.set(p.name, { pool: p.name, winner: first.name, winnerMode: first.allocation, subnetID: p.subnetID });
    }
  }
  return out;
}

export function modeConflictCondition(c: ModeConflict | undefined, mode: AllocationMode): ConditionInput {
  if (!c) return { type: 'AllocationModeConflict', status: 'False', reason: 'OneModePerSubnet', message: `no other pool uses this subnet with another allocation mode` };
  return {
    type: 'AllocationModeConflict',
    status: 'True',
    reason: 'SubnetUsedByOtherMode',
    message: `subnet ${c.subnetID} is already used by NodeIPPool ${c.winner} with allocation ${c.winnerMode}; ` +
      `this pool (allocation ${mode}) is not served. One allocation mode per subnet: use another subnet, or the same mode.`,
  };
}

/** The record's and pool's words when the subnet has free addresses but no free aligned /28. */
export function fragmentedCondition(subnetID: string, freeAddresses: number, fallback: boolean): ConditionInput {
  return {
    type: 'SubnetExhausted',
    status: 'True',
    reason: 'NoAlignedBlock',
    message: `subnet ${subnetID} has ${freeAddresses} free addresses but no free aligned /28 block fits` +
      (fallback ? '; adding single ip-configs instead (fallbackToIndividual), which keeps the subnet fragmented'
        : '; free whole /28s (move or remove single ip-configs) or set fallbackToIndividual on the pool'),
  };
}
