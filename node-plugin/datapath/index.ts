/**
 * PodVNet datapath: everything that touches the kernel for pods on this node. Other modules (agent,
 * CNI, CNM) call only what this file exports. See README.md in this directory for the design.
 *
 * Shared interface (node-plugin interfaces doc): ensureNode, attachPod, detachPod, checkPod,
 * listAttachments, teardownNode, NodeNetwork, PodInterface, PodInterfaceResult.
 * Additions beyond it:
 * - NodeNetwork.hostNetns?: the namespace that plays "the node" (tests, local sandbox); default: ours.
 * - ensureNode(net, { force: true }): re-apply even if already done for this NodeNetwork.
 * - detachPod: pass `ip` whenever the agent still holds it for that pod, so the node's /32 route to the
 *   pod is removed even when the runtime already deleted the pod's namespace (and with it the veth).
 * - attachHostVeth(net, { containerId, ifName, ip, peerName }): for Docker/libnetwork, which moves the
 *   container end itself: the host side of attachPod, with the container end left in the node's
 *   namespace (down) as `peerName`. detachPod removes it like a pod.
 * - detachPod retires the host veth (route gone, veth down, out of every listing) and deletes it shortly
 *   after with others (retired-veths.ts); retiredVethsDeleted(net) waits for that, deleteRetiredVeths()
 *   does it now (a graceful stop).
 * - The bridge's MTU is not NodeNetwork.mtu: Linux keeps it at the smallest port MTU, so attachPod may be
 *   called with a per-pod mtu without re-applying the node (ensureNode ignores mtu when memoizing).
 * - pruneOrphanRoutes(net): GC of /32 pod routes on the bridge that no veth claims any more, and of the
 *   anti-spoofing rules and permanent neighbour entries of pods whose veth is gone.
 * - nodeDiagnostics(net): read-only report (bridge, br_netfilter, ip_forward, proxy ARP, chains, their rules, jumps) with
 *   human-readable problems, for /readyz and logs.
 * - hostInterfaceMTU(ifName, hostNetns?): the NIC's MTU, the default for NodeNetwork.mtu.
 * - hostVethName(containerId, ifName): the deterministic host veth name.
 * - DatapathCheckError (checkPod's failure), DatapathError (a kernel tool failed; message has its stderr),
 *   SysctlError (a DatapathError naming each sysctl key, its file and the errno).
 * - configureDatapath({ procSysRoot, retiredVeths }): process-wide options; procSysRoot (default /proc/sys) is where
 *   the node's sysctls are written as files (…/net/...), e.g. /host/proc/sys in an unprivileged container;
 *   retiredVeths: when retired veths are deleted.
 * Inputs are validated with zod: an invalid NodeNetwork / PodInterface throws TypeError naming the field.
 */
import { ipJSON, ipRemove } from './exec.js';
import { routeDelStep } from './kernel-errors.js';
import type { LinkInfo } from './links.js';
import { listAttachments } from './pod.js';
import { routeMetric } from './names.js';
import { nodeDatapath } from './node-datapath.js';
import { DatapathError, type NodeNetwork } from './types.js';
import { IfName, parseNodeNetwork } from './validate.js';

export * from './types.js';
export { deleteRetiredVeths, ensureNode, retiredVethsDeleted, teardownNode } from './node-datapath.js';
export { nodeDiagnostics, type NodeDiagnostics } from './diagnostics.js';
export { attachPod, attachHostVeth, detachPod, checkPod, listAttachments, type HostVethResult } from './pod.js';
export { hostVethName } from './names.js';
export { configureDatapath, datapathOptions, type DatapathOptions } from './options.js';
export { DEFAULT_PROC_SYS_ROOT, SysctlError, type SysctlFailure } from './sysctl.js';

export const DEFAULT_BRIDGE_NAME = 'podvnet0';

export async function hostInterfaceMTU(ifName: string, hostNetns?: string): Promise<number> {
  const name = IfName.parse(ifName);
  const [l] = await ipJSON<LinkInfo>(hostNetns, ['link', 'show', 'dev', name]);
  if (!l) throw new DatapathError(`interface ${name} does not exist${hostNetns ? ` in netns ${hostNetns}` : ''}`);
  return l.mtu;
}

/**
 * GC for routes: removes /32 routes on the bridge that belong to no pod veth (matched by IP and the
 * pod's route metric), e.g. left by a pod whose namespace the runtime deleted without a DEL that
 * named its IP. Returns the IPs whose routes it removed.
 */
export async function pruneOrphanRoutes(input: NodeNetwork): Promise<string[]> {
  const net = parseNodeNetwork(input);
  const node = nodeDatapath(net);
  await node.pruneOrphanAntispoofRules(net);
  // Permanent neighbour entries (attachPod pins each pod's IP to its MAC) that no veth claims any more;
  // live pods' entries that something flushed are pinned again.
  await node.pruneStaleNeighbours(net);
  // Routes first, veths second: attachPod sets a veth's alias before it adds the pod's route, and
  // detachPod removes the route before the veth, so a route read here whose veth is missing from the
  // later listing is a true orphan even while ADDs and DELs run (read in parallel, a pod attached in
  // between would have its fresh route taken for an orphan).
  const routes = await ipJSON<{ dst: string; gateway?: string; metric?: number }>(net.hostNetns, ['-4', 'route', 'show', 'dev', net.bridgeName]);
  const attached = await listAttachments(net);
  const live = new Set(attached.map((a) => `${a.ip}/${routeMetric(a.containerId, a.ifName)}`));
  const orphans = routes.filter((r) => !r.gateway && /^\d+\.\d+\.\d+\.\d+$/.test(r.dst) && !live.has(`${r.dst}/${r.metric ?? 0}`));
  if (!orphans.length) return [];
  const errors = await ipRemove(net.hostNetns, orphans.map((r) => routeDelStep(r.dst, net.bridgeName, r.metric ?? 0)));
  if (errors.length) throw new DatapathError(`pruning routes on ${net.bridgeName}: ${errors.join('; ')}`);
  return orphans.map((r) => r.dst);
}
