/**
 * What the controller has learned about a subnet's room from Azure's answers (the subnet itself does
 * not say how many addresses are free). After SubnetIsFull it halves the adds it tries per write and
 * backs off; each successful add doubles the allowance back until the limit goes away.
 */
export class SubnetHealth {
  maxAdds: number | undefined;
  exhausted: { since: number; message: string } | undefined;
  private fullStreak = 0;

  constructor(private readonly baseBackoffMs = 30_000, private readonly maxBackoffMs = 300_000) {}

  /** Azure refused `attempted` adds with SubnetIsFull. Returns how long to wait before trying again. */
  onFull(attempted: number, message: string, now = Date.now()): number {
    this.maxAdds = Math.max(1, Math.floor(Math.min(attempted, this.maxAdds ?? attempted) / 2));
    if (!this.exhausted) this.exhausted = { since: now, message };
    else this.exhausted.message = message;
    this.fullStreak++;
    return Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (this.fullStreak - 1));
  }

  /** Azure accepted `added` new IPs in this subnet. */
  onAdded(added: number, batchSize: number): void {
    if (added <= 0) return;
    this.exhausted = undefined;
    this.fullStreak = 0;
    if (this.maxAdds !== undefined) {
      const next = this.maxAdds * 2;
      this.maxAdds = next >= batchSize ? undefined : next;
    }
  }

  /** IPs went back to the subnet: room may be there again, so stop reporting exhaustion. */
  onReleased(removed: number): void {
    if (removed > 0) {
      this.exhausted = undefined;
      this.fullStreak = 0;
    }
  }
}
