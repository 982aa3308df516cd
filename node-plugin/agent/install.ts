import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Installs the CNI executable and the network configuration on the node (the DaemonSet mounts the
 * host's /opt/cni/bin and /etc/cni/net.d). Both are replaced atomically (write a temporary file, then
 * rename), so a runtime exec'ing the plugin or reading the directory never sees half a file.
 */

export interface ConflistOptions {
  networkName: string;
  agentSocket: string;
  /** Where the executable queues a DEL the agent cannot take (the path as the host sees it). */
  delQueueDir?: string | undefined;
  mtu?: number | undefined;
  /** Chain portmap after us (hostPort support). */
  portmap: boolean;
}

/** The conflist the runtime reads: our plugin first, then portmap for host ports. */
export function conflist(o: ConflistOptions): Record<string, unknown> {
  const plugin: Record<string, unknown> = { type: 'podvnet-cni', agentSocket: o.agentSocket };
  if (o.delQueueDir) plugin.delQueueDir = o.delQueueDir;
  if (o.mtu) plugin.mtu = o.mtu;
  const plugins: Array<Record<string, unknown>> = [plugin];
  if (o.portmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  return { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: o.networkName, plugins };
}

async function replaceFile(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}`);
  try {
    await write(tmp);
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export interface InstallOptions extends ConflistOptions {
  /** The built executable (node-plugin/cni/bin/podvnet-cni or its copy in the image). */
  binarySource: string;
  binDir?: string | undefined;
  confDir?: string | undefined;
  /** File name in confDir; runtimes take the first in lexical order. */
  confName?: string;
}

/** Returns the paths written. */
export async function installCni(o: InstallOptions): Promise<string[]> {
  const written: string[] = [];
  if (o.binDir) {
    const target = path.join(o.binDir, 'podvnet-cni');
    await replaceFile(target, async (tmp) => {
      await fs.copyFile(o.binarySource, tmp);
      await fs.chmod(tmp, 0o755);
    });
    written.push(target);
  }
  if (o.confDir) {
    const target = path.join(o.confDir, o.confName ?? '10-podvnet.conflist');
    await replaceFile(target, (tmp) => fs.writeFile(tmp, JSON.stringify(conflist(o), null, 2) + '\n', { mode: 0o644 }));
    written.push(target);
  }
  return written;
}
