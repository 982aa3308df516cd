import { BLOCK_SIZE } from '../../../crds/api/group.js';
import { intToIp, ipToInt } from '../../../crds/ipv4.js';
import { targetIPs } from '../../../crds/scaling.js';
import type { PoolView, ReleaseInput } from './policy.js';

/**
 * Block-mode allocation policy, as pure functions of plain data (policy.ts's twin for
 * `allocation: Block`). The NIC holds /28 blocks; the agent hands out their addresses and gives back
 * whole blocks.
 *
 * Packing: a new pod goes into the fullest block that has a free address (ties: the lowest block), so an
 * empty block is opened only when every open block is full. Under any churn the number of blocks with a
 * pod in them then stays at most ceil(peak pods / 16), and blocks left empty can be given back whole
 * (block-policy.test.ts holds it to that). Release works per block: a block is listed only when no pod
 * holds any of its addresses, and from then on none of them is handed out.
 */

export interface BlockView extends Omit<PoolView, 'poolIPs' | 'released'> {
  /** The node's blocks ("a.b.c.d/28", NodeIPAllocation status.blocks). */
  blocks: readonly string[];
  /** Blocks the agent has promised never to hand out from again (spec.releasedBlocks). */
  releasedBlocks: ReadonlySet<string>;
  /** The node's own primary IP: never handed out, even if a block were to cover it. */
  primaryIP?: string | undefined;
}

/** The first address and size of "a.b.c.d/28". */
export function blockRange(prefix: string): { first: number; size: number } {
  const [addr, len] = prefix.split('/');
  const size = 2 ** (32 - Number(len));
  return { first: ipToInt(addr!), size };
}

/** Every address of the blocks, in block order. */
export function blockAddresses(blocks: readonly string[]): string[] {
  const out: string[] = [];
  for (const b of blocks) {
    const { first, size } = blockRange(b);
    for (let i = 0; i < size; i++) out.push(intToIp(first + i));
  }
  return out;
}

/** The block holding `ip`, if any. */
export function blockOf(ip: string, blocks: readonly string[]): string | undefined {
  const n = ipToInt(ip);
  return blocks.find((b) => { const { first, size } = blockRange(b); return n >= first && n < first + size; });
}

function usableBlocks(view: Pick<BlockView, 'blocks' | 'releasedBlocks'>): string[] {
  return [...view.blocks].filter((b) => !view.releasedBlocks.has(b)).sort((a, b) => blockRange(a).first - blockRange(b).first);
}

/** Pods in each usable block. */
export function heldPerBlock(view: Pick<BlockView, 'blocks' | 'releasedBlocks' | 'allocated'>): Map<string, number> {
  const counts = new Map(usableBlocks(view).map((b) => [b, 0]));
  for (const ip of view.allocated) {
    const b = blockOf(ip, view.blocks);
    if (b !== undefined && counts.has(b)) counts.set(b, counts.get(b)! + 1);
  }
  return counts;
}

/** The next address to hand out: the lowest free one in the fullest block that has one. */
export function pickBlockAddress(view: BlockView): string | undefined {
  const counts = heldPerBlock(view);
  let best: { ip: string; held: number } | undefined;
  for (const [block, held] of counts) {
    if (best !== undefined && held <= best.held) continue; // blocks are in address order: ties keep the lowest
    const { first, size } = blockRange(block);
    for (let i = 0; i < size; i++) {
      const ip = intToIp(first + i);
      if (ip === view.primaryIP || view.allocated.has(ip) || (view.cooldown.get(ip) ?? 0) > view.now) continue;
      best = { ip, held };
      break;
    }
  }
  return best?.ip;
}

export interface BlockReleaseInput extends Omit<ReleaseInput, 'poolIPs' | 'released'>, BlockView {}

/**
 * Blocks to give back now, with the controller's own scaling math: when the target (rounded up to whole
 * blocks) is below the usable blocks, release the difference, among blocks no pod holds an address of,
 * highest first.
 */
export function chooseBlockReleases(input: BlockReleaseInput): string[] {
  const counts = heldPerBlock(input);
  const used = [...counts.values()].reduce((a, b) => a + b, 0);
  const decision = targetIPs({
    usable: counts.size * BLOCK_SIZE,
    used,
    pending: input.pending,
    min: input.min,
    max: input.max,
    policy: input.policy,
  });
  const keep = Math.ceil(decision.target / BLOCK_SIZE);
  const excess = counts.size - keep;
  if (excess <= 0) return [];
  const empty = [...counts].filter(([, held]) => held === 0).map(([b]) => b).reverse();
  return empty.slice(0, excess);
}

/** Released blocks stay listed until the controller has removed them from the NIC (handshake). */
export function pruneReleasedBlocks(released: ReadonlySet<string>, blocks: readonly string[]): Set<string> {
  const on = new Set(blocks);
  return new Set([...released].filter((b) => on.has(b)));
}
