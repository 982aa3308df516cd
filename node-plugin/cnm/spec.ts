import { mkdir, open, rename, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';

/**
 * How dockerd finds the plugin. A socket named `<name>.sock` in /run/docker/plugins is found as is; a
 * socket anywhere else needs a spec file `<name>.spec` (one line: the socket's URL) in /etc/docker/plugins
 * (or /usr/lib/docker/plugins). The plugin's name is the file's base name, and it is the name users give
 * to --driver and --ipam-driver.
 */

export const PLUGIN_NAME = 'azure-vnet';
export const DEFAULT_SOCKET_PATH = `/run/docker/plugins/${PLUGIN_NAME}.sock`;
export const DOCKER_SOCKET_DIR = '/run/docker/plugins';
export const DOCKER_SPEC_DIR = '/etc/docker/plugins';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Writes `<specDir>/<name>.spec` pointing at `socketPath` (atomically); returns the file's path. */
export async function writePluginSpec(opts: { socketPath: string; name?: string; specDir?: string }): Promise<string> {
  const name = opts.name ?? PLUGIN_NAME;
  if (!NAME.test(name)) throw new Error(`plugin name ${JSON.stringify(name)} must be letters, digits and "_.-"`);
  if (!isAbsolute(opts.socketPath)) throw new Error(`plugin socket path ${JSON.stringify(opts.socketPath)} must be absolute`);
  const dir = opts.specDir ?? DOCKER_SPEC_DIR;
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `${name}.spec`);
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`unix://${opts.socketPath}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return path;
}

export async function removePluginSpec(opts: { name?: string; specDir?: string } = {}): Promise<void> {
  await rm(join(opts.specDir ?? DOCKER_SPEC_DIR, `${opts.name ?? PLUGIN_NAME}.spec`), { force: true });
}
