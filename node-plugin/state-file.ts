import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { z } from 'zod';
import { describeIssues } from '../crds/api/validation.js';

/**
 * Crash-safe JSON state files, shared by the agent's IPAM store and the CNM driver's state: a write goes to
 * a temporary file that is fsynced, renamed over the old one, and the directory fsynced, so a crash leaves
 * either the old state or the new one, never a torn file; a temporary file left by a crash is garbage.
 */

const tempPrefix = (path: string): string => `${basename(path)}.tmp-`;

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Removes temporary files of writes to `path` that a crash interrupted (the rename never happened). */
export function removeStaleTemps(path: string): void {
  for (const name of readdirSync(dirname(path))) {
    if (name.startsWith(tempPrefix(path))) unlinkSync(join(dirname(path), name));
  }
}

/**
 * Reads and validates a state file; a missing file is `empty()`. A file that is not JSON or not valid is
 * an error that names the file and says what an operator may safely do about it: state is never
 * guessed at, since a wrong guess hands one address out twice.
 */
export function readStateFile<S extends z.ZodType>(
  path: string,
  schema: S,
  empty: () => z.output<S>,
  explain: { what: string; advice: string },
): z.output<S> {
  const name = `${explain.what} ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty();
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name} is not JSON (${(err as Error).message}); ${explain.advice}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`${name} is invalid: ${describeIssues(parsed.error)}; ${explain.advice}`);
  return parsed.data;
}

/** A process's start time (field 22 of /proc/PID/stat): with the PID, it names that very process, so a
 * lock file's holder is not confused with a later process that reused the PID. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
