/**
 * Throwaway network namespaces for root tests: names unique to this process and this run (other test
 * runs use the same machine at the same time), each removed when its test ends, and every one left at
 * process exit too (a test that failed before its teardown ran, or an uncaught error, leaves nothing).
 */
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** What tells this run's names apart from every other run's: the pid and a random part. */
export const RUN = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

const live = new Set<string>();
const removeNetns = (name: string) => {
  try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); } catch { /* gone */ }
  live.delete(name);
};
process.on('exit', () => { for (const n of live) removeNetns(n); });

/** A maker of namespaces named `<prefix><RUN>-<n>`: each call creates one and returns its name. */
export function scratchNetns(prefix: string): (t: ExecutionContext) => string {
  let count = 0;
  return (t) => {
    const name = `${prefix}${RUN}-${count++}`;
    execFileSync('ip', ['netns', 'add', name]);
    live.add(name);
    t.teardown(() => removeNetns(name));
    return name;
  };
}
