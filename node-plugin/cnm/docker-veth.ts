import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import type { NodeNetwork } from '../datapath/index.js';
import type { Datapath } from './types.js';

/**
 * The Docker-specific part of the datapath. CNI hands the plugin a network namespace to put the pod's
 * interface in; libnetwork does not: at Join time the container's namespace often does not exist yet
 * (runc makes it later), and libnetwork wants the name of an interface *in the node's namespace* that it
 * will move into the container itself, renaming it and setting the address, MAC and gateway route.
 *
 * So the host side must be exactly what the datapath makes for a CNI pod (bridge port, hairpin, /32 route,
 * proxy-ARP gateway, the alias that lets listAttachments and GC find it), while the container end waits in
 * the node's namespace. Until the datapath offers that directly (asked for: a `createVethForDocker`), this
 * module gets it from `attachPod` unchanged: it attaches into a staging namespace kept for the node and
 * moves the container end out into the node's namespace (moving strips its addresses and routes, which
 * libnetwork sets again in the container; MAC and MTU stay). Removal is `detachPod`, as for CNI pods.
 *
 * Each endpoint's interface name is derived from its address owner and is also the ifName the agent and
 * the datapath know it by, so names never collide in the shared staging namespace, and the agent's
 * (containerId, ifName) for the allocation matches the datapath's attachment after a restart.
 */

const run = promisify(execFile);

/** The endpoint's interface name (and ifName of its allocation): 'pvd' + 11 hex digits, 14 characters. */
export function dockerIfName(owner: string): string {
  return `pvd${createHash('sha256').update(owner).digest('hex').slice(0, 11)}`;
}

/** The staging namespace of a node: one per node namespace and bridge, under /run/netns. */
export function stagingNetnsName(net: Pick<NodeNetwork, 'hostNetns' | 'bridgeName'>): string {
  return `pvcnm-${createHash('sha256').update(`${net.hostNetns ?? ''}\0${net.bridgeName}`).digest('hex').slice(0, 10)}`;
}

/** The node's namespace as a path for `ip link set ... netns`. */
function nodeNetnsPath(net: NodeNetwork): string {
  if (!net.hostNetns) return `/proc/${process.pid}/ns/net`;
  return net.hostNetns.includes('/') ? net.hostNetns : `/run/netns/${net.hostNetns}`;
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

const staging = new Map<string, Promise<void>>();

/** Creates the staging namespace once per process (or again, if someone removed it). */
function ensureStaging(name: string, again = false): Promise<void> {
  let made = staging.get(name);
  if (!made || again) {
    made = ip(['netns', 'add', name]).then(
      () => undefined,
      (err: Error) => {
        if (!/File exists/.test(err.message)) {
          staging.delete(name);
          throw err;
        }
      },
    );
    staging.set(name, made);
  }
  return made;
}

/** Removes the node's staging namespace (driver shutdown); whatever waits in it goes with it. */
export async function removeStaging(net: Pick<NodeNetwork, 'hostNetns' | 'bridgeName'>): Promise<void> {
  const name = stagingNetnsName(net);
  staging.delete(name);
  await ip(['netns', 'del', name]).catch((err: Error) => {
    if (!/No such file|does not exist/.test(err.message)) throw err;
  });
}

export interface DockerVeth {
  /** The container end, in the node's namespace until libnetwork moves it. */
  srcName: string;
  hostVeth: string;
  /** The container end's MAC as the datapath set it (libnetwork keeps it unless the user gave one). */
  mac: string;
}

/** The operations, as a seam for the driver's protocol tests (the real ones need the kernel). */
export interface DockerVeths {
  create: typeof createDockerVeth;
  remove: typeof removeDockerVeth;
  close(net: NodeNetwork): Promise<void>;
}

export const kernelDockerVeths: DockerVeths = { create: createDockerVeth, remove: removeDockerVeth, close: removeStaging };

/**
 * Idempotent on retry: a previous attempt's veth (wherever its container end is) is replaced, which the
 * datapath's attachPod does when it finds the host end without a matching pod end.
 */
export async function createDockerVeth(
  datapath: Datapath,
  net: NodeNetwork,
  ep: { owner: string; ip: string; prefixLength: number },
): Promise<DockerVeth> {
  const ifName = dockerIfName(ep.owner);
  const ns = stagingNetnsName(net);
  await ensureStaging(ns);
  const pod = { containerId: ep.owner, netnsPath: `/run/netns/${ns}`, ifName, ip: ep.ip, prefixLength: ep.prefixLength };
  let result;
  try {
    result = await datapath.attachPod(net, pod);
  } catch (err) {
    if (!/netns|namespace|No such file/i.test((err as Error).message)) throw err;
    await ensureStaging(ns, true); // the staging namespace was removed under us
    result = await datapath.attachPod(net, pod);
  }
  try {
    await ip(['-n', ns, 'link', 'set', 'dev', ifName, 'netns', nodeNetnsPath(net)]);
  } catch (err) {
    await datapath.detachPod(net, { containerId: ep.owner, ifName, ip: ep.ip }).catch(() => undefined);
    throw err;
  }
  return { srcName: ifName, hostVeth: result.hostVeth.name, mac: result.container.mac };
}

/** Idempotent: deleting the host end deletes the container end wherever it is; gone counts as removed. */
export async function removeDockerVeth(datapath: Datapath, net: NodeNetwork, ep: { owner: string; ip: string }): Promise<void> {
  await datapath.detachPod(net, { containerId: ep.owner, ifName: dockerIfName(ep.owner), ip: ep.ip });
}
