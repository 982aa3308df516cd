import { randomBytes } from 'node:crypto';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Installing files into directories a container runtime reads while we write. A file appears in one
 * step (written under a temporary name in the same directory, flushed, then renamed), so the runtime
 * never execs a half-copied binary or parses half a conflist. Unchanged files are left alone.
 */

export type InstallResult = 'installed' | 'unchanged';

export async function installFile(content: Buffer, dir: string, name: string, mode: number): Promise<InstallResult> {
  const dest = join(dir, name);
  const current = await readFile(dest).catch(() => undefined);
  if (current && current.equals(content)) {
    const st = await stat(dest);
    if ((st.mode & 0o7777) === mode) return 'unchanged';
    await chmod(dest, mode);
    return 'installed';
  }
  const tmp = join(dir, `.${name}.podvnet-${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return 'installed';
}

/** Removes dir/name; true if it was there. */
export async function removeFile(dir: string, name: string): Promise<boolean> {
  const dest = join(dir, name);
  const existed = await stat(dest).then(() => true, () => false);
  await rm(dest, { force: true });
  return existed;
}
