/**
 * What the datapath writes into the kernel, as plain text: `ip -batch` lines and `iptables-restore`
 * input. Pure functions of the NodeNetwork / PodInterface, so they are tested without a kernel and the
 * effectful modules (node.ts, pod.ts) stay thin.
 */
import { bridgeMAC, chainNames, encodeAlias, hostVethName, podMACs, routeMetric } from './names.js';
import { linkDelStep, type RemovalStep, routeDelStep } from './kernel-errors.js';
import type { NodeNetwork, PodInterface } from './types.js';

/** Comments on our jump rules: how `iptables -C/-D` find exactly our rule. */
export const SNAT_JUMP_COMMENT = 'podvnet: SNAT pod traffic leaving the VNet';
export const FORWARD_JUMP_COMMENT = 'podvnet: forward pod traffic';
export const ANTISPOOF_JUMP_COMMENT = 'podvnet: drop pod packets with a source IP not their own';

export type Table = 'nat' | 'filter' | 'raw';

export function jumpRules(net: NodeNetwork): Array<{ table: Table; chain: string; spec: string[] }> {
  const c = chainNames(net.bridgeName);
  return [
    { table: 'nat', chain: 'POSTROUTING', spec: ['-m', 'comment', '--comment', SNAT_JUMP_COMMENT, '-j', c.snat] },
    { table: 'filter', chain: 'FORWARD', spec: ['-m', 'comment', '--comment', FORWARD_JUMP_COMMENT, '-j', c.forward] },
    // Only packets that came in through a port of our bridge (br_netfilter's physdev information).
    { table: 'raw', chain: 'PREROUTING', spec: ['-i', net.bridgeName, '-m', 'physdev', '--physdev-is-in', '-m', 'comment', '--comment', ANTISPOOF_JUMP_COMMENT, '-j', c.antispoof] },
  ];
}

/**
 * A pod's anti-spoofing rule in raw/PODVNET-SRC: a packet that entered the bridge from the pod's host
 * veth with any source but the pod's IP is dropped. raw/PREROUTING sees it before routing, so this holds
 * for forwarded packets (to the fabric, to pods on other nodes), bridged ones (to a pod on this node, via
 * br_netfilter) and the node's own (INPUT). The rule names the veth (per pod), so removing it by its
 * exact text can never remove a newer pod's rule for the same IP.
 */
export function antispoofRule(pod: Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>): string[] {
  return ['-m', 'physdev', '--physdev-in', hostVethName(pod.containerId, pod.ifName), '!', '-s', `${pod.ip}/32`, '-j', 'DROP'];
}

/** Unique prefixes not to SNAT: the VNet's address space plus the pool's excludeCIDRs, in a stable order. */
export function noSnatPrefixes(net: NodeNetwork): string[] {
  return [...new Set([...net.vnetPrefixes, ...net.snat.excludeCIDRs])];
}

/**
 * `iptables-restore --noflush` input for our two chains. Declaring a chain (`:NAME - [0:0]`) in
 * --noflush mode creates it or empties it, and the whole file is one transaction: the chains are
 * rebuilt atomically, other chains are untouched.
 *
 * nat PODVNET-SNAT (jumped to from POSTROUTING): only packets from the pod subnet, not going back
 * to the bridge, and not to a VNet/excluded prefix, are SNATed to the node's primary IP. Azure gives
 * outbound Internet access to the primary ip-config; a packet leaving the VNet with a secondary IP
 * as source would not come back.
 *
 * filter PODVNET-FWD (jumped to from FORWARD): accept traffic from and to the bridge, so that a FORWARD
 * policy of DROP (dockerd sets one) does not cut pods off. It is appended, so policy engines that insert
 * their rules at the top still see pod traffic first.
 */
export function chainRestore(net: NodeNetwork, pods: Array<Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>> = []): string {
  const c = chainNames(net.bridgeName);
  const nat = [
    '*nat',
    `:${c.snat} - [0:0]`,
    `-A ${c.snat} ! -s ${net.podSubnet} -j RETURN`,
    `-A ${c.snat} -o ${net.bridgeName} -j RETURN`,
    ...noSnatPrefixes(net).map((p) => `-A ${c.snat} -d ${p} -j RETURN`),
    ...(net.snat.enabled ? [`-A ${c.snat} -j SNAT --to-source ${net.primaryIP} --random-fully`] : []),
    'COMMIT',
  ];
  const filter = [
    '*filter',
    `:${c.forward} - [0:0]`,
    `-A ${c.forward} -i ${net.bridgeName} -j ACCEPT`,
    `-A ${c.forward} -o ${net.bridgeName} -j ACCEPT`,
    'COMMIT',
  ];
  // raw PODVNET-SRC: one rule per pod (see antispoofRule), rebuilt from the pods attached right now.
  const raw = [
    '*raw',
    `:${c.antispoof} - [0:0]`,
    ...pods.map((p) => `-A ${c.antispoof} ${antispoofRule(p).join(' ')}`),
    'COMMIT',
  ];
  return [...nat, ...filter, ...raw].join('\n') + '\n';
}

/** Removes our chains (their jumps must be gone first). Works whether or not they exist. */
export function chainRemoveRestore(net: NodeNetwork): string {
  const c = chainNames(net.bridgeName);
  return ['*nat', `:${c.snat} - [0:0]`, `-X ${c.snat}`, 'COMMIT', '*filter', `:${c.forward} - [0:0]`, `-X ${c.forward}`, 'COMMIT',
    '*raw', `:${c.antispoof} - [0:0]`, `-X ${c.antispoof}`, 'COMMIT']
    .join('\n') + '\n';
}

/**
 * Sysctls of the node namespace. proxy_arp on the bridge makes the node answer pods' ARP for anything
 * it routes elsewhere (their gateway, pods on other nodes, VNet hosts) with the bridge's MAC; pods on
 * this bridge answer for themselves. proxy_delay 0: otherwise Linux delays proxied replies to broadcast
 * requests by up to 0.8 s. br_netfilter makes bridged pod-to-pod traffic visible to iptables, which
 * kube-proxy needs for Services whose endpoint is on the same node.
 */
export function nodeSysctls(net: NodeNetwork): Record<string, string> {
  // '/' as separator: an interface name may contain '.', which sysctl(8) would read as one.
  return {
    'net/ipv4/ip_forward': '1',
    [`net/ipv4/conf/${net.bridgeName}/forwarding`]: '1',
    [`net/ipv4/conf/${net.bridgeName}/proxy_arp`]: '1',
    [`net/ipv4/neigh/${net.bridgeName}/proxy_delay`]: '0',
    'net/bridge/bridge-nf-call-iptables': '1',
  };
}

/**
 * Creates the bridge (no IP address: the node routes, and pods' gateway is answered by proxy ARP).
 * Its MTU is deliberately not set: Linux then keeps it at the smallest MTU of its ports, which is the
 * right MTU for routing into the bridge even when pods were given different MTUs.
 */
export function bridgeCreateLines(net: NodeNetwork): string[] {
  return [
    `link add name ${net.bridgeName} address ${bridgeMAC(net.bridgeName)} type bridge stp_state 0 forward_delay 0`,
    `link set dev ${net.bridgeName} up`,
  ];
}

/**
 * Brings an existing bridge back to what we want (MAC, up) without touching its ports, changing only
 * what differs: the kernel answers any MAC set, even to the MAC the bridge already has, by flushing the
 * bridge's neighbour table, permanent entries included, which would drop every pod's pinned entry
 * (anti-ARP-spoofing) at each agent start and resync.
 */
export function bridgeFixLines(net: NodeNetwork, current: { address: string; flags?: string[] }): string[] {
  const want = bridgeMAC(net.bridgeName);
  return [
    ...(current.address.toLowerCase() !== want ? [`link set dev ${net.bridgeName} address ${want}`] : []),
    ...(current.flags?.includes('UP') ? [] : [`link set dev ${net.bridgeName} up`]),
  ];
}

export function podResources(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName'>) {
  return {
    hostVeth: hostVethName(pod.containerId, pod.ifName),
    macs: podMACs(pod.containerId, pod.ifName),
    metric: routeMetric(pod.containerId, pod.ifName),
    bridge: net.bridgeName,
  };
}

/**
 * Node side of an ADD, one `ip -batch`: the veth pair is created with its pod end directly in the pod's
 * namespace (named ifName, final MAC and MTU), the host end enslaved to the bridge with hairpin on (a
 * pod reaching itself through a Service IP gets its DNATed packet back on the port it came from), and a
 * /32 route for the pod IP via the bridge so traffic arriving from the NIC is routed to the pod (its
 * metric names the pod: see routeMetric).
 */
export function attachHostLines(net: NodeNetwork, pod: PodInterface): string[] {
  const r = podResources(net, pod);
  const alias = encodeAlias({ bridge: net.bridgeName, containerId: pod.containerId, ifName: pod.ifName, ip: pod.ip });
  return [
    `link add ${r.hostVeth} mtu ${net.mtu} address ${r.macs.host} master ${r.bridge} up` +
      ` type veth peer name ${pod.ifName} mtu ${net.mtu} address ${r.macs.container} netns ${pod.netnsPath}`,
    // The kernel ignores an alias given at creation, so it is set on its own line.
    `link set dev ${r.hostVeth} alias '${alias}'`,
    `link set dev ${r.hostVeth} type bridge_slave hairpin on`,
    `route replace ${pod.ip}/32 dev ${r.bridge} metric ${r.metric}`,
    neighLine(net, pod),
  ];
}

/**
 * The node's neighbour entry for the pod's IP, permanent with the pod's (known) MAC: an ARP reply or
 * gratuitous ARP from another pod claiming this IP cannot redirect the node's traffic for it.
 */
export function neighLine(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>): string {
  return `neigh replace ${pod.ip} lladdr ${podMACs(pod.containerId, pod.ifName).container} dev ${net.bridgeName} nud permanent`;
}

/**
 * Node side for a runtime that moves the container end itself (Docker's libnetwork): as for a pod, but
 * the container end stays in the node's namespace, down, under `peerName`.
 */
export function attachHostOnlyLines(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>, peerName: string): string[] {
  const r = podResources(net, pod);
  const alias = encodeAlias({ bridge: net.bridgeName, containerId: pod.containerId, ifName: pod.ifName, ip: pod.ip });
  return [
    `link add ${r.hostVeth} mtu ${net.mtu} address ${r.macs.host} master ${r.bridge} up` +
      ` type veth peer name ${peerName} mtu ${net.mtu} address ${r.macs.container}`,
    `link set dev ${r.hostVeth} alias '${alias}'`,
    `link set dev ${r.hostVeth} type bridge_slave hairpin on`,
    `route replace ${pod.ip}/32 dev ${r.bridge} metric ${r.metric}`,
    neighLine(net, pod),
  ];
}

/**
 * Removes a pod's route (by ip and its pod-specific metric) and its veth pair, each step saying which
 * errors mean "already gone" (kernel-errors.ts); run with exec.ts ipRemove.
 */
export function detachSteps(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName'>, ip: string | undefined): RemovalStep[] {
  const d = detachRemoval(net, pod, ip);
  return [...d.before, linkDelStep(d.hostVeth)];
}

/** A pod's removal as link-removals.ts takes it: the steps before its veth goes, and the veth. */
export interface LinkRemoval {
  /** Steps that must run before the veth goes (the pod's /32 route). */
  before: RemovalStep[];
  hostVeth: string;
}

/** The pod's detachSteps as a LinkRemoval (several pods' removals can then share one veth deletion). */
export function detachRemoval(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName'>, ip: string | undefined): LinkRemoval {
  const r = podResources(net, pod);
  return { before: ip ? [routeDelStep(ip, r.bridge, r.metric)] : [], hostVeth: r.hostVeth };
}

export function detachLines(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName'>, ip: string | undefined): string[] {
  return detachSteps(net, pod, ip).map((s) => s.line);
}

export interface NeighEntry { dst: string; lladdr?: string; state?: string[] }
export interface PinnedPod { ip: string; mac: string }

/**
 * The `neigh` lines that bring the bridge's neighbour entries to what the pods need (pure; node.ts runs
 * them under the node's serialization):
 * - `pods` (given on a resync or GC: the live pods from the veths' aliases, minus those being detached):
 *   each pod's entry is permanent with its MAC, re-pinned if a flush (a MAC set on the bridge, a carrier
 *   loss, other software) or a spoofed ARP took it. An IP that two live veths claim with different MACs
 *   (a late DEL racing a new pod) is left as it is: the newer pod's ADD pinned it.
 * - `unpin` (DEL): the entry is deleted if it still carries that pod's MAC (a newer pod with the same IP
 *   keeps its own), and only if no live pod claims the IP.
 * - `gcStale`: permanent IPv4 entries that no live pod claims are deleted (needs `pods`).
 */
export function neighbourPlan(net: NodeNetwork, input: { entries: NeighEntry[]; pods?: PinnedPod[]; unpin?: PinnedPod[]; gcStale?: boolean }): string[] {
  const byIP = new Map(input.entries.map((e) => [e.dst, e]));
  const claimed = new Map<string, Set<string>>();
  for (const p of input.pods ?? []) claimed.set(p.ip, (claimed.get(p.ip) ?? new Set()).add(p.mac));
  const lines: string[] = [];
  for (const [ip, macs] of claimed) {
    if (macs.size !== 1) continue;
    const [mac] = [...macs] as [string];
    const e = byIP.get(ip);
    if (e?.lladdr?.toLowerCase() !== mac || !e.state?.includes('PERMANENT')) lines.push(`neigh replace ${ip} lladdr ${mac} dev ${net.bridgeName} nud permanent`);
  }
  const deleted = new Set<string>();
  for (const u of input.unpin ?? []) {
    const e = byIP.get(u.ip);
    if (claimed.has(u.ip) || deleted.has(u.ip) || e?.lladdr?.toLowerCase() !== u.mac) continue;
    lines.push(`neigh del ${u.ip} dev ${net.bridgeName}`);
    deleted.add(u.ip);
  }
  if (input.gcStale && input.pods) {
    for (const e of input.entries) {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(e.dst) || !e.state?.includes('PERMANENT') || claimed.has(e.dst) || deleted.has(e.dst)) continue;
      lines.push(`neigh del ${e.dst} dev ${net.bridgeName}`);
      deleted.add(e.dst);
    }
  }
  return lines;
}

/**
 * Pod side of an ADD, one `ip -batch` inside the pod's namespace. The default route is `onlink` so it
 * also works for a /32 address or a gateway outside the address's prefix.
 */
export function attachPodLines(net: NodeNetwork, pod: PodInterface): string[] {
  return [
    'link set dev lo up',
    `addr add ${pod.ip}/${pod.prefixLength} dev ${pod.ifName}`,
    `link set dev ${pod.ifName} up`,
    `route replace default via ${net.gatewayIP} dev ${pod.ifName} onlink`,
  ];
}
