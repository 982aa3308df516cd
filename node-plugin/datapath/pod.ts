/**
 * Per-pod datapath: attach (CNI ADD / CNM Join), detach (DEL / Leave / GC), check (CHECK), list (GC and
 * restart reconciliation). No per-pod iptables or ebtables rules and no locks: an ADD is two processes
 * (`ip -batch` in the node namespace, `ip -batch` in the pod's), a DEL one (two without the IP).
 * Everything is found again from the kernel: the host veth's name is a hash of (containerId, ifName) and
 * its alias records bridge, containerId, ifName and IP.
 */
import { existsSync } from 'node:fs';
import { attachedVeths, type LinkInfo } from './links.js';
import { ensureNode, nodeDatapath } from './node-datapath.js';
import { ipBatch, ipJSON, ipRemove, netnsPath, type Netns } from './exec.js';
import { linkDelStep, linkDownStep, linkRenameStep } from './kernel-errors.js';
import { decodeAlias, retiredPodIfName } from './names.js';
import { attachHostLines, attachHostOnlyLines, attachPodLines, detachRemoval, podResources } from './plan.js';
import {
  type Attachment, DatapathCheckError, DatapathError, type NodeNetwork, type PodInterface, type PodInterfaceResult, type PodRef,
} from './types.js';
import { IfName, parseNodeNetwork, parsePodInterface, parsePodRef } from './validate.js';

function resultFor(net: NodeNetwork, pod: PodInterface): PodInterfaceResult {
  const r = podResources(net, pod);
  return {
    hostVeth: { name: r.hostVeth, mac: r.macs.host },
    container: { name: pod.ifName, mac: r.macs.container, sandbox: pod.netnsPath },
    ip: pod.ip,
    prefixLength: pod.prefixLength,
    gateway: net.gatewayIP,
  };
}

const exists = (e: unknown): boolean => e instanceof DatapathError && /File exists/.test(e.message);
const bridgeMissing = (e: unknown, net: NodeNetwork): boolean =>
  e instanceof DatapathError && new RegExp(`Device "?${net.bridgeName}"? does not exist|Cannot find device "?${net.bridgeName}"?|argument "${net.bridgeName}" is wrong: Device does not exist`).test(e.message);

/**
 * Idempotent on retry: if the pod's interface is already fully set up as asked, the same result is
 * returned; a half-made attachment (an earlier attempt died) is removed and made again.
 */
export async function attachPod(input: NodeNetwork, podInput: PodInterface): Promise<PodInterfaceResult> {
  const net = parseNodeNetwork(input);
  const pod = parsePodInterface(net, podInput);
  return nodeDatapath(net).whileChanging(podResources(net, pod).hostVeth, 'attach', () => attach(net, pod));
}

async function attach(net: NodeNetwork, pod: PodInterface): Promise<PodInterfaceResult> {
  await ensureNode(net);
  // The same container and interface again (a restart) while its old veth waits retired: delete that first.
  await nodeDatapath(net).retired.settle(podResources(net, pod).hostVeth);
  try {
    await create(net, pod);
  } catch (e) {
    if (bridgeMissing(e, net)) {
      // Someone removed the bridge after ensureNode ran: make the node again, then the pod.
      nodeDatapath(net).forget();
      await ensureNode(net);
      await create(net, pod);
    } else if (exists(e)) {
      const ok = await checkPod(net, pod).then(() => true, () => false);
      if (ok) return resultFor(net, pod);
      await removeVeth(net, pod, pod.ip);
      try {
        await create(net, pod);
      } catch (again) {
        if (exists(again)) {
          throw new DatapathError(`interface ${pod.ifName} already exists in ${pod.netnsPath} and is not one PodVNet made for container ${pod.containerId}`);
        }
        throw again;
      }
    } else {
      throw e;
    }
  }
  return resultFor(net, pod);
}

async function create(net: NodeNetwork, pod: PodInterface): Promise<void> {
  const node = nodeDatapath(net);
  const hostLines = attachHostLines(net, pod);
  // The anti-spoofing rule is independent of the veth's making: it goes in alongside the node side and
  // then the pod side. It may name the veth before the veth exists; GC and the chain rebuild leave the
  // rules of pods being attached alone (NodeDatapath.pruneOrphanAntispoofRules, ensure).
  const rule = node.addAntispoofRule(net, pod);
  rule.catch(() => undefined); // settled below; this only keeps an early failure from going unhandled
  try {
    await node.hostBatches.run(hostLines);
    node.notePins(hostLines);
  } catch (e) {
    // A later line failed after the veth was made: take it away again (the rule too). ("File exists" on
    // the first line is an earlier attempt's veth, which attachPod inspects, with the rule in place.)
    if (!exists(e)) await removeVeth(net, pod, pod.ip).catch(() => undefined);
    else await rule.catch(() => undefined);
    throw e;
  }
  const [podSide, ruleAdded] = await Promise.allSettled([ipBatch(pod.netnsPath, attachPodLines(net, pod)), rule]);
  const failed = podSide.status === 'rejected' ? podSide.reason as unknown : ruleAdded.status === 'rejected' ? ruleAdded.reason as unknown : undefined;
  if (failed !== undefined) {
    // Deleting the host end removes the pod end too.
    await removeVeth(net, pod, pod.ip).catch(() => undefined);
    throw failed;
  }
}

export interface HostVethResult {
  hostVeth: { name: string; mac: string };
  /** The container end, still in the node's namespace (down), for the runtime to move. */
  peer: { name: string; mac: string };
}

/**
 * For runtimes that move the container's interface themselves (Docker's libnetwork Join): makes the
 * same host side as attachPod (bridge port, hairpin, alias, /32 route) and leaves the container end
 * in the node's namespace, down, named `peerName`, with the MAC and MTU a pod would get. The runtime
 * moves it and sets address and gateway. detachPod / listAttachments / GC treat it like any pod
 * (key: containerId + ifName). Idempotent: a leftover pair from an earlier attempt is replaced.
 */
export async function attachHostVeth(
  input: NodeNetwork,
  spec: { containerId: string; ifName: string; ip: string; peerName: string },
): Promise<HostVethResult> {
  const net = parseNodeNetwork(input);
  const pod = parsePodInterface(net, { containerId: spec.containerId, ifName: spec.ifName, ip: spec.ip, prefixLength: 32, netnsPath: '-' });
  const peerName = IfName.parse(spec.peerName);
  const r = podResources(net, pod);
  if (peerName === r.hostVeth) throw new TypeError(`datapath: peerName ${peerName} collides with the host veth name`);
  const node = nodeDatapath(net);
  return node.whileChanging(r.hostVeth, 'attach', async () => {
    await ensureNode(net);
    await node.retired.settle(r.hostVeth);
    const make = async () => {
      const hostLines = attachHostOnlyLines(net, pod, peerName);
      await ipBatch(net.hostNetns, hostLines);
      node.notePins(hostLines);
      await node.addAntispoofRule(net, pod);
    };
    try {
      await make();
    } catch (e) {
      if (!exists(e) && !bridgeMissing(e, net)) throw e;
      if (bridgeMissing(e, net)) { node.forget(); await ensureNode(net); }
      const errors = await ipRemove(net.hostNetns, [linkDelStep(r.hostVeth), linkDelStep(peerName)]);
      if (errors.length) throw new DatapathError(`replacing ${r.hostVeth}/${peerName}: ${errors.join('; ')}`);
      await make();
    }
    return { hostVeth: { name: r.hostVeth, mac: r.macs.host }, peer: { name: peerName, mac: r.macs.container } };
  });
}

/**
 * Removes the pod's route, veth, anti-spoofing rule and (if it is still this pod's) the node's neighbour
 * entry for its IP. Whatever is already gone counts as removed, matched per step (kernel-errors.ts): a
 * concurrent DEL, a runtime that destroyed the namespace, a carrier loss flushing the bridge's table when
 * its last port goes, someone removing things by hand. The rule and the entry go in the node's serialized
 * queue (so a resync never re-pins an entry after its pod left), alongside the route and veth: should GC
 * see the rule without its veth in between, it removes the same rule, which is fine.
 *
 * `retire` (DEL): the route and the neighbour entry go now and the veth is taken off the network (down,
 * retired group); the veth's deletion, then its rule, follow later with others' (retired-veths.ts). The pod's
 * end, when the agent knows the pod had it (`ip` given) and its namespace is still there, is renamed
 * out of the way at the same time, so the interface name is free for the runtime at once.
 */
async function removeVeth(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName'>, ip?: string, how: 'now' | 'retire' = 'now', podNetns?: string): Promise<void> {
  const withIP = ip ? { ...pod, ip } : undefined;
  const r = podResources(net, pod);
  const node = nodeDatapath(net);
  if (how === 'retire') {
    return node.whileChanging(r.hostVeth, 'detach', async () => {
      const renamed = withIP && podNetns && existsSync(netnsPath(podNetns))
        ? ipRemove(podNetns, [linkDownStep(pod.ifName), linkRenameStep(pod.ifName, retiredPodIfName(pod.containerId, pod.ifName))])
          // The namespace deleted meanwhile took the interface with it.
          .then((errs) => (existsSync(netnsPath(podNetns)) ? errs : []))
        : Promise.resolve([]);
      // The neighbour entry goes now too (cheap, and it must not outlive the pod should this agent die
      // before the deletion: nothing else would find it); the rule waits for the retired veth's deletion.
      const unpinned = withIP ? node.removePodProtection(net, withIP, 'neighbour') : Promise.resolve();
      const [retired, renamedErrors] = await Promise.all([node.removals.retire(detachRemoval(net, pod, ip)), renamed, unpinned]);
      const errors = [...retired, ...renamedErrors];
      if (errors.length) throw new DatapathError(`retiring ${r.hostVeth}: ${errors.join('; ')}`);
      node.retired.add({ hostVeth: r.hostVeth, ...(withIP ? { release: () => node.removePodProtection(net, withIP, 'rule') } : {}) });
    });
  }
  await node.whileChanging(r.hostVeth, 'detach', async () => {
    const links = async () => {
      const errors = await node.removals.remove(detachRemoval(net, pod, ip));
      if (errors.length) throw new DatapathError(`removing ${r.hostVeth}: ${errors.join('; ')}`);
    };
    const [a, b] = await Promise.allSettled([withIP ? node.removePodProtection(net, withIP) : Promise.resolve(), links()]);
    if (b.status === 'rejected') throw b.reason;
    if (a.status === 'rejected') throw a.reason;
  });
}

interface NeighInfo { dst: string; lladdr?: string; state?: string[] }

/** The node's neighbour entry for ip on the bridge (undefined if none). */
async function bridgeNeigh(net: NodeNetwork, ip: string): Promise<NeighInfo | undefined> {
  return (await ipJSON<NeighInfo>(net.hostNetns, ['-4', 'neigh', 'show', 'to', ip, 'dev', net.bridgeName])).find((n) => n.dst === ip);
}

async function hostLink(ns: Netns, name: string): Promise<LinkInfo | undefined> {
  const [l] = await ipJSON<LinkInfo>(ns, ['-d', 'link', 'show', 'dev', name]);
  return l;
}

/**
 * Idempotent: what is already gone counts as removed. With `ip` given (the agent still holds it for the
 * pod) this is one `ip -batch`: the pod's /32 route is removed by (ip, the pod's own metric), so a late
 * DEL never touches the route of a newer pod that got the same IP, even when the runtime already
 * deleted the namespace and with it the veth. Without `ip`, the veth's alias says which it was.
 * The veth is retired, not deleted: it is off the network when this returns and gone shortly after
 * (retired-veths.ts); the pod's rule goes with it.
 */
export async function detachPod(input: NodeNetwork, refInput: PodRef): Promise<void> {
  const net = parseNodeNetwork(input);
  const ref = parsePodRef(refInput);
  let ip = ref.ip;
  if (!ip) {
    const link = await hostLink(net.hostNetns, podResources(net, ref).hostVeth);
    if (!link) return;
    const alias = decodeAlias(link.ifalias);
    if (alias?.bridge === net.bridgeName) ip = alias.ip;
  }
  await removeVeth(net, ref, ip, 'retire', ref.netnsPath);
}

/** Every veth this bridge's pods have on the node (from the kernel, so it survives agent restarts). */
export async function listAttachments(input: NodeNetwork): Promise<Attachment[]> {
  return attachedVeths(parseNodeNetwork(input));
}

interface AddrInfo { ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }
interface RouteInfo { dst: string; gateway?: string; dev?: string; metric?: number; flags?: string[] }

/**
 * CNI CHECK: the pod's interface is there and as ADD made it. Throws DatapathCheckError naming the
 * first thing that is wrong.
 */
export async function checkPod(input: NodeNetwork, podInput: PodInterface): Promise<void> {
  const net = parseNodeNetwork(input);
  const pod = parsePodInterface(net, podInput);
  const r = podResources(net, pod);
  const fail = (msg: string): never => { throw new DatapathCheckError(msg); };

  if (!existsSync(netnsPath(pod.netnsPath))) fail(`network namespace ${pod.netnsPath} does not exist`);

  const [host, hostRoutes, podLinks, podAddrs, podRoutes] = await Promise.all([
    hostLink(net.hostNetns, r.hostVeth),
    ipJSON<RouteInfo>(net.hostNetns, ['route', 'show', 'exact', `${pod.ip}/32`]),
    ipJSON<LinkInfo>(pod.netnsPath, ['-d', 'link', 'show', 'dev', pod.ifName]),
    ipJSON<AddrInfo>(pod.netnsPath, ['-4', 'addr', 'show', 'dev', pod.ifName]),
    ipJSON<RouteInfo>(pod.netnsPath, ['-4', 'route', 'show', 'default']),
  ]);
  const inPod = podLinks[0];
  if (!host) fail(`host veth ${r.hostVeth} for container ${pod.containerId} interface ${pod.ifName} does not exist`);
  if (!inPod) fail(`interface ${pod.ifName} does not exist in ${pod.netnsPath}`);
  const h = host!;
  const c = inPod!;
  if (h.master !== net.bridgeName) fail(`host veth ${r.hostVeth} is not attached to bridge ${net.bridgeName} (master: ${h.master ?? 'none'})`);
  if (c.linkinfo?.info_kind !== 'veth') fail(`${pod.ifName} in ${pod.netnsPath} is not a veth`);
  if (h.link_index !== c.ifindex || c.link_index !== h.ifindex) fail(`${pod.ifName} in ${pod.netnsPath} is not the peer of host veth ${r.hostVeth}`);
  if (!h.flags?.includes('UP')) fail(`host veth ${r.hostVeth} is down`);
  if (!c.flags?.includes('UP')) fail(`${pod.ifName} in ${pod.netnsPath} is down`);
  if (c.address !== r.macs.container) fail(`${pod.ifName} has MAC ${c.address}, expected ${r.macs.container}`);
  if (h.mtu !== net.mtu) fail(`host veth ${r.hostVeth} has MTU ${h.mtu}, expected ${net.mtu}`);
  if (c.mtu !== net.mtu) fail(`${pod.ifName} has MTU ${c.mtu}, expected ${net.mtu}`);
  if (h.linkinfo?.info_slave_data?.hairpin !== true) fail(`hairpin is off on host veth ${r.hostVeth}`);
  const alias = decodeAlias(h.ifalias);
  if (!alias || alias.containerId !== pod.containerId || alias.ifName !== pod.ifName || alias.ip !== pod.ip || alias.bridge !== net.bridgeName) {
    fail(`host veth ${r.hostVeth} is labelled ${JSON.stringify(h.ifalias ?? '')}, not for ${pod.containerId}/${pod.ifName} with ${pod.ip}`);
  }
  const addrs = (podAddrs[0]?.addr_info ?? []).filter((a) => a.family === 'inet');
  if (!addrs.some((a) => a.local === pod.ip && a.prefixlen === pod.prefixLength)) {
    fail(`${pod.ifName} in ${pod.netnsPath} does not have ${pod.ip}/${pod.prefixLength} (has ${addrs.map((a) => `${a.local}/${a.prefixlen}`).join(', ') || 'no IPv4 address'})`);
  }
  const extra = addrs.filter((a) => a.local !== pod.ip);
  if (extra.length) fail(`${pod.ifName} in ${pod.netnsPath} has unexpected addresses ${extra.map((a) => `${a.local}/${a.prefixlen}`).join(', ')}`);
  if (!podRoutes.some((rt) => rt.gateway === net.gatewayIP && rt.dev === pod.ifName)) {
    fail(`no default route via ${net.gatewayIP} dev ${pod.ifName} in ${pod.netnsPath}`);
  }
  if (!hostRoutes.some((rt) => rt.dev === net.bridgeName && !rt.gateway && rt.metric === r.metric)) {
    fail(`no route to ${pod.ip}/32 via ${net.bridgeName} (metric ${r.metric}) on the node`);
  }
  const [neigh, rule] = await Promise.all([bridgeNeigh(net, pod.ip), nodeDatapath(net).hasAntispoofRule(net, pod)]);
  if (neigh?.lladdr !== r.macs.container || !neigh.state?.includes('PERMANENT')) {
    fail(`the node's neighbour entry for ${pod.ip} on ${net.bridgeName} is not permanent with ${r.macs.container}` +
      ` (${neigh ? `${neigh.lladdr ?? 'no MAC'} ${(neigh.state ?? []).join(',')}` : 'none'})`);
  }
  if (!rule) fail(`no anti-spoofing rule for host veth ${r.hostVeth} (${pod.ip})`);
}
