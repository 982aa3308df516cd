import { BLOCK_SIZE } from '../crds/api/group.js';
import { BLOCK_NAME_PREFIX } from './block-plan.js';

/**
 * A subnet's headroom counted in /28 blocks, from what a subnet GET gives: its size and the ids of the
 * ip-configs in it (ARM lists a block ip-config once, with no address). Our block ip-configs are known by
 * name (`podvnet-b<n>`), each takes 16 addresses; every other entry is one address.
 *
 * Free aligned blocks are an estimate: the subnet's first /28 holds the four reserved low addresses and its
 * last the broadcast, so neither is ever free; single addresses go lowest first (Azure's Dynamic), so
 * after the first block's 12 spare addresses each 16 singles spoil at most one more block. Singles placed
 * anywhere else spoil more, which only Azure knows: its SubnetIsFull answer is the last word, and the
 * controller reads a SubnetIsFull with free addresses left as fragmentation.
 */

export const RESERVED_PER_SUBNET = 5;
const SPARE_IN_FIRST_BLOCK = BLOCK_SIZE - 4;
const BLOCK_ID = new RegExp(`/ipConfigurations/${BLOCK_NAME_PREFIX}\\d+$`, 'i');

export interface BlockHeadroom {
  /** Addresses nobody holds. */
  freeIPs: number;
  /** Aligned /28s nobody holds any address of (estimate, see above). */
  freeBlocks: number;
}

export function blockHeadroom(subnetSize: number, ipConfigIds: readonly string[]): BlockHeadroom {
  const blocks = ipConfigIds.filter((id) => BLOCK_ID.test(id)).length;
  const singles = ipConfigIds.length - blocks;
  const freeIPs = Math.max(0, subnetSize - RESERVED_PER_SUBNET - singles - blocks * BLOCK_SIZE);
  const aligned = Math.floor(subnetSize / BLOCK_SIZE);
  const spoiledBySingles = Math.ceil(Math.max(0, singles - SPARE_IN_FIRST_BLOCK) / BLOCK_SIZE);
  const freeBlocks = Math.max(0, Math.min(Math.floor(freeIPs / BLOCK_SIZE), aligned - 2 - blocks - spoiledBySingles));
  return { freeIPs, freeBlocks };
}
