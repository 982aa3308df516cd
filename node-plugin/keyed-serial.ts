/**
 * Runs tasks one at a time per key and concurrently across keys: the CNI handler serializes the calls
 * for one pod, the datapath serializes the kernel work of one node. A task starts after the previous task
 * of its key has settled, whether that one succeeded or failed; its own result (or error) goes only to its
 * caller. A key is forgotten as soon as its last task settles, so the map holds only keys with work.
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** True while a task of this key runs or waits. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** True when no key has a task running or waiting. */
  idle(): boolean {
    return this.tails.size === 0;
  }
}
