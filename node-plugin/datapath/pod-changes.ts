/**
 * Which pods of one node are being attached or detached in this process, and when each last changed. A
 * resync must not re-pin the neighbour entry of a pod being detached (it would outlive the pod), and
 * diagnostics do not count a pod half made or half removed as drift (its rule and entry come a moment
 * after its veth, and go with it).
 */
export type Change = 'attach' | 'detach';

export class PodChanges {
  /** host veth -> how many attaches and detaches of it are under way. */
  private readonly inFlight = new Map<string, { attach: number; detach: number }>();
  /** host veth -> when its attach or detach last began or ended, as a sequence number. */
  private readonly lastChange = new Map<string, number>();
  private changeSeq = 0;
  /** When (Date.now()) an attach or detach last began or ended; 0 if none has. */
  lastChangeAt = 0;

  /** The sequence number now: pass it to changedSince after a reading. */
  get seq(): number {
    return this.changeSeq;
  }

  /** Marks the pod as being attached or detached for the duration of `fn`. */
  async during<T>(hostVeth: string, change: Change, fn: () => Promise<T>): Promise<T> {
    const c = this.inFlight.get(hostVeth) ?? { attach: 0, detach: 0 };
    c[change]++;
    this.inFlight.set(hostVeth, c);
    this.note(hostVeth);
    try {
      return await fn();
    } finally {
      c[change]--;
      if (c.attach === 0 && c.detach === 0) this.inFlight.delete(hostVeth);
      this.note(hostVeth);
    }
  }

  /** Whether a detach of this pod is under way. */
  detaching(hostVeth: string): boolean {
    return (this.inFlight.get(hostVeth)?.detach ?? 0) > 0;
  }

  /** Whether a pod was attached or detached (or began to be) since `since`, or is being so now. */
  changedSince(hostVeth: string, since: number): boolean {
    return this.inFlight.has(hostVeth) || (this.lastChange.get(hostVeth) ?? 0) > since;
  }

  private note(hostVeth: string): void {
    this.lastChangeAt = Date.now();
    this.lastChange.set(hostVeth, ++this.changeSeq);
    if (this.lastChange.size > 8192) for (const [k, seq] of this.lastChange) if (seq < this.changeSeq - 4096) this.lastChange.delete(k);
  }
}
