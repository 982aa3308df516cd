/**
 * Work that is cheaper together: one batch runs at a time; items that arrive while it runs form the next
 * batch. A lone item runs at once, so nothing waits when there is no crowd. `runBatch` settles each item
 * itself (it must not throw) and may hand items back to run again, first in the next batch.
 */
export class Coalescer<T> {
  private queued: T[] = [];
  private running = false;

  constructor(private readonly runBatch: (batch: T[]) => Promise<T[] | void>) {}

  push(item: T): void {
    this.queued.push(item);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queued.length) {
        const again = await this.runBatch(this.queued.splice(0));
        if (again?.length) this.queued.unshift(...again);
      }
    } finally {
      this.running = false;
    }
  }
}
