/**
 * Polls `cond` every `everyMs` until it holds (true) or `ms` have passed (false): a test waits for what
 * it expects instead of sleeping a fixed time. The default deadline is generous: a loaded CI machine.
 */
export async function until(cond: () => Promise<boolean> | boolean, ms = 30_000, everyMs = 25): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}
