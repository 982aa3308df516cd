/**
 * The clean-up of a test environment built step by step: each step that made something pushes how to
 * undo it; unwind() undoes in reverse order, once, going on past a step that fails (the rest still
 * needs undoing), so a set-up that fails half-way leaves nothing behind.
 */
export class UndoStack {
  private steps: Array<() => unknown> = [];

  push(step: () => unknown): void { this.steps.push(step); }

  /** Forgets a step (it will not run): to keep what it would remove, for a look. */
  forget(step: () => unknown): void { this.steps = this.steps.filter((s) => s !== step); }

  async unwind(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) await Promise.resolve().then(step).catch(() => undefined);
  }
}
