/**
 * ADDs held while an IP is on its way: each waits (at most a given time) for a wake-up, first come first
 * woken. The owner wakes as many as there are free IPs when its pool grows, so a batch of 16 new IPs wakes
 * the 16 longest-waiting pods, not all 234 of a burst to race for them (the rest would only fail again).
 */
export class FreeIPWaiters {
  private readonly queue: Array<() => void> = [];
  private isClosed = false;

  /** After close(): nobody waits any more. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** How many are waiting now. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * Resolves when woken or after `ms`, whichever comes first; at once once closed. The caller tries
   * again either way (a wake-up promises nothing: another caller may have taken the IP meanwhile).
   */
  wait(ms: number): Promise<void> {
    if (this.isClosed || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.queue.indexOf(done);
        if (i >= 0) this.queue.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.queue.push(done);
    });
  }

  /** Wakes the `n` longest-waiting callers. */
  wake(n: number): void {
    for (const done of this.queue.slice(0, Math.max(0, n))) done();
  }

  /** Wakes everyone and makes every later wait return at once (the agent is shutting down). */
  close(): void {
    this.isClosed = true;
    this.wake(this.queue.length);
  }
}
