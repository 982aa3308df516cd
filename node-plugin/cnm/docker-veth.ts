import { createHash } from 'node:crypto';
import type { NodeNetwork } from '../datapath/index.js';
import type { Datapath } from './types.js';

/**
 * The Docker-specific part of the datapath. CNI hands the plugin a network namespace to put the pod's
 * interface in; libnetwork does not: at Join time the container's namespace often does not exist yet
 * (runc makes it later), and libnetwork wants the name of an interface *in the node's namespace* that it
 * moves into the container itself, renaming it and setting the address and gateway route.
 *
 * The datapath's attachHostVeth makes exactly that: the host side of a pod (bridge port, hairpin, /32
 * route, the alias that lets listAttachments and GC find it) with the container end left in the node's
 * namespace under the name we give. Removal is detachPod, as for CNI pods (deleting the host end takes the
 * container end with it, wherever it is).
 *
 * Each endpoint's interface name is derived from its address owner and is also the ifName the agent and
 * the datapath know it by, so the agent's (containerId, ifName) for the allocation is the datapath's
 * attachment key, and no two endpoints' interfaces share a name in the node's namespace.
 */

/** The endpoint's interface name (and ifName of its allocation): 'pvd' + 11 hex digits, 14 characters. */
export function dockerIfName(owner: string): string {
  return `pvd${createHash('sha256').update(owner).digest('hex').slice(0, 11)}`;
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
}

export const kernelDockerVeths: DockerVeths = { create: createDockerVeth, remove: removeDockerVeth };

/** Idempotent on retry: the datapath replaces a pair left by an earlier attempt. */
export async function createDockerVeth(
  datapath: Datapath,
  net: NodeNetwork,
  ep: { owner: string; ip: string; prefixLength: number },
): Promise<DockerVeth> {
  const ifName = dockerIfName(ep.owner);
  const r = await datapath.attachHostVeth(net, { containerId: ep.owner, ifName, ip: ep.ip, peerName: ifName });
  return { srcName: r.peer.name, hostVeth: r.hostVeth.name, mac: r.peer.mac };
}

/** Idempotent: gone counts as removed. */
export async function removeDockerVeth(datapath: Datapath, net: NodeNetwork, ep: { owner: string; ip: string }): Promise<void> {
  await datapath.detachPod(net, { containerId: ep.owner, ifName: dockerIfName(ep.owner), ip: ep.ip });
}
