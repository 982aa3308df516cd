import type { AzureAdapter, SubnetDetails } from './azure.js';
import { SubnetHealth } from './subnet-health.js';

/** A pool subnet as last read, and the free addresses left after our own adds and removes since. */
export interface SubnetEntry {
  at: number;
  details: Promise<SubnetDetails>;
  /** Set from the read when it lands; then lowered by each add we plan, raised by each remove. */
  free?: number;
  /** Free aligned /28s by the same count (Block pools). */
  freeBlocks?: number;
  /** The subnet had free addresses but no aligned /28 for a Block pool: since when, and what to say. */
  fragmented?: { since: number; message: string };
  /** When our count first reached zero (for the pool's SubnetExhausted condition). */
  noRoomSince?: number;
  /** The read could not tell the headroom, and that was said once. */
  warned?: boolean;
}

export interface SubnetBudgetOptions {
  /** Re-read a subnet this often. */
  cacheMs: number;
  /** SubnetHealth's backoff after Azure's SubnetIsFull. */
  subnetFullBackoffMs: number;
}

/**
 * What the controller knows of each pool subnet's room: the cached read (one per cacheMs however many
 * nodes ask: a subnet GET lists every ip-config in it), the free addresses and /28s left by our own count
 * since (each planned add reserves before the write, each remove gives back), and what Azure's SubnetIsFull
 * taught (SubnetHealth). Keyed by subnet id, case-insensitively, as ARM ids are.
 */
export class SubnetBudget {
  private readonly subnets = new Map<string, SubnetEntry>();
  private readonly health = new Map<string, SubnetHealth>();

  constructor(private readonly azure: Pick<AzureAdapter, 'getSubnet'>, private readonly opts: SubnetBudgetOptions) {}

  /** The subnet's entry, read again once the last read is older than cacheMs; a failed read is not kept. */
  entry(id: string, blocks = false): SubnetEntry {
    const k = id.toLowerCase();
    const hit = this.subnets.get(k);
    if (hit && Date.now() - hit.at < this.opts.cacheMs) return hit;
    const details = this.azure.getSubnet(id, blocks ? { blocks: true } : undefined);
    const entry: SubnetEntry = { at: Date.now(), details };
    this.subnets.set(k, entry);
    details.catch(() => { if (this.subnets.get(k) === entry) this.subnets.delete(k); });
    return entry;
  }

  /** The entry as it stands, without reading. */
  seen(id: string): SubnetEntry | undefined {
    return this.subnets.get(id.toLowerCase());
  }

  /** Azure said SubnetIsFull to a plan made from `entry`: read the subnet again next time. */
  forget(id: string, entry: SubnetEntry): void {
    if (this.subnets.get(id.toLowerCase()) === entry) this.subnets.delete(id.toLowerCase());
  }

  healthOf(id: string): SubnetHealth {
    const k = id.toLowerCase();
    let h = this.health.get(k);
    if (!h) { h = new SubnetHealth(this.opts.subnetFullBackoffMs); this.health.set(k, h); }
    return h;
  }

  /** What Azure's SubnetIsFull said of the subnet, while it holds (the pool's SubnetExhausted). */
  exhausted(id: string): SubnetHealth['exhausted'] {
    return this.health.get(id.toLowerCase())?.exhausted;
  }

  noRoomMessage(id: string): string {
    return `no free addresses left in ${id} (by the last subnet read and this controller's changes since)`;
  }

  /** The subnet has no room by our count: since when, for the pool's SubnetExhausted condition. */
  noRoom(id: string): { since: number; message: string; reason: string } | undefined {
    const entry = this.seen(id);
    if (entry?.free === undefined || entry.free > 0 || entry.noRoomSince === undefined) return undefined;
    return { since: entry.noRoomSince, message: this.noRoomMessage(id), reason: 'NoFreeAddresses' };
  }

  /**
   * `count` addresses (`blocks` of them whole /28s) went back to the subnet. True when nodes may be waiting
   * for that room (our count was at zero, or Azure had said SubnetIsFull): the caller wakes them.
   */
  roomMade(id: string, count: number, blocks = 0): boolean {
    if (count <= 0) return false;
    const entry = this.seen(id);
    if (entry?.freeBlocks !== undefined) entry.freeBlocks += blocks;
    if (entry && blocks > 0) entry.fragmented = undefined;
    const h = this.health.get(id.toLowerCase());
    const noRoom = entry?.free !== undefined && entry.free <= 0;
    if (entry?.free !== undefined) {
      entry.free += count;
      entry.noRoomSince = undefined;
    }
    const wasShort = noRoom || h?.exhausted !== undefined || h?.maxAdds !== undefined;
    h?.onReleased(count);
    return wasShort;
  }
}
