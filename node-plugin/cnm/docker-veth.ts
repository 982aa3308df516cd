import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { NodeNetwork } from '../datapath/index.js';
import type { Datapath } from './types.js';

/**
 * The Docker-specific part of the datapath. CNI hands the plugin a network namespace to put the pod's
 * interface in; libnetwork does not: at Join time the container's namespace often does not exist yet
 * (runc makes it later), and libnetwork wants the name of an interface *in the node's namespace* that it
 * will move into the container itself, renaming it and setting the address, MAC and gateway route.
 *
 * So the host side must be exactly what the datapath makes for a CNI pod (bridge port, hairpin, routes,
 * MAC/ARP handling, the alias that lets listAttachments and GC find it), while the container end stays in
 * the node's namespace under a temporary name. Until the datapath offers that directly, this module gets
 * it from `attachPod` unchanged: it attaches into a short-lived staging namespace and moves the container
 * end back out under the temporary name (moving strips its addresses and routes, which libnetwork sets
 * again in the container). Removal is `detachPod` by (containerId, ifName), as for CNI pods.
 */

const run = promisify(execFile);

/** The interface name the datapath's veth naming is derived from for a Docker endpoint. */
export const DOCKER_IFNAME = 'eth0';

/** The temporary name of the container end in the node's namespace: 15 characters at most. */
export function dockerSrcName(owner: string): string {
  return `pvd${createHash('sha256').update(owner).digest('hex').slice(0, 11)}`;
}

/** `ip` argument for the node's namespace: a path for `netns`, and the `-n` prefix for commands in it. */
function nodeNetnsPath(net: NodeNetwork): string {
  if (!net.hostNetns) return `/proc/${process.pid}/ns/net`;
  return net.hostNetns.includes('/') ? net.hostNetns : `/run/netns/${net.hostNetns}`;
}

async function ip(args: string[], net?: NodeNetwork): Promise<string> {
  // `ip -n` takes only names under /run/netns; a path (such as /proc/<pid>/ns/net) goes through nsenter.
  const [cmd, argv] = !net?.hostNetns
    ? ['ip', args]
    : net.hostNetns.includes('/')
      ? ['nsenter', [`--net=${net.hostNetns}`, 'ip', ...args]]
      : ['ip', ['-n', net.hostNetns, ...args]];
  try {
    const { stdout } = await run(cmd as string, argv as string[], { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

export interface DockerVeth {
  /** The container end, in the node's namespace until libnetwork moves it. */
  srcName: string;
  hostVeth: string;
  /** The container end's MAC as the datapath set it (libnetwork keeps it unless the user gave one). */
  mac: string;
}

/** The two operations, as a seam for the driver's protocol tests (the real ones need the kernel). */
export interface DockerVeths {
  create: typeof createDockerVeth;
  remove: typeof removeDockerVeth;
}

export async function createDockerVeth(
  datapath: Datapath,
  net: NodeNetwork,
  ep: { owner: string; ip: string; prefixLength: number },
): Promise<DockerVeth> {
  const srcName = dockerSrcName(ep.owner);
  // A retried Join after a crash: the previous container end may still be waiting in the node's namespace.
  if (await linkExists(net, srcName)) {
    await datapath.detachPod(net, { containerId: ep.owner, ifName: DOCKER_IFNAME, ip: ep.ip });
    await ip(['link', 'del', srcName], net).catch(() => undefined);
  }
  const staging = `pvcnm-${randomBytes(5).toString('hex')}`;
  await ip(['netns', 'add', staging]);
  try {
    const result = await datapath.attachPod(net, {
      containerId: ep.owner,
      netnsPath: `/run/netns/${staging}`,
      ifName: DOCKER_IFNAME,
      ip: ep.ip,
      prefixLength: ep.prefixLength,
    });
    await ip(['-n', staging, 'link', 'set', result.container.name, 'down']);
    await ip(['-n', staging, 'link', 'set', result.container.name, 'netns', nodeNetnsPath(net), 'name', srcName]);
    return { srcName, hostVeth: result.hostVeth.name, mac: result.container.mac };
  } catch (err) {
    await datapath.detachPod(net, { containerId: ep.owner, ifName: DOCKER_IFNAME, ip: ep.ip }).catch(() => undefined);
    throw err;
  } finally {
    await ip(['netns', 'del', staging]).catch(() => undefined);
  }
}

export async function removeDockerVeth(datapath: Datapath, net: NodeNetwork, ep: { owner: string; ip: string }): Promise<void> {
  await datapath.detachPod(net, { containerId: ep.owner, ifName: DOCKER_IFNAME, ip: ep.ip });
  // The container end is normally gone with its peer; if libnetwork left it behind unpaired, remove it.
  const srcName = dockerSrcName(ep.owner);
  if (await linkExists(net, srcName)) await ip(['link', 'del', srcName], net).catch(() => undefined);
}

async function linkExists(net: NodeNetwork, name: string): Promise<boolean> {
  try {
    await ip(['link', 'show', 'dev', name], net);
    return true;
  } catch {
    return false;
  }
}
