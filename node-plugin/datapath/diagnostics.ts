/**
 * nodeDiagnostics: what the node's datapath looks like right now, for /readyz, logs and tests. Read-only:
 * it reads the kernel and this process's NodeDatapath, and changes neither.
 */
import { existsSync } from 'node:fs';
import { ruledPairs } from './antispoof.js';
import { BR_NF_KEY } from './br-netfilter.js';
import { ipJSON, runRaw } from './exec.js';
import { type Backend, iptablesCmd } from './iptables.js';
import type { LinkInfo } from './links.js';
import { chainNames } from './names.js';
import { bridgeNeighbours } from './neighbours.js';
import { type LivePod, nodeDatapath } from './node-datapath.js';
import { datapathOptions } from './options.js';
import { jumpRules, type NeighEntry } from './plan.js';
import { readSysctls } from './sysctl.js';
import type { NodeNetwork } from './types.js';
import { parseNodeNetwork } from './validate.js';

export interface NodeDiagnostics {
  /** The iptables backend our chains are in (the one kube-proxy uses, see iptables.ts). */
  iptablesBackend: Backend;
  /** Whether this kernel loads modules at all (/proc/modules); if not, br_netfilter must be built in. */
  moduleLoading: boolean;
  bridge: boolean;
  brNetfilter: boolean;
  bridgeNfCallIptables: boolean;
  ipForward: boolean;
  proxyArp: boolean;
  snatChain: boolean;
  forwardChain: boolean;
  /** raw/PODVNET-SRC, the pods' anti-spoofing rules. */
  antispoofChain: boolean;
  /** Host veths of this bridge without their anti-spoofing rule. */
  podsWithoutAntispoof: string[];
  /** Host veths of this bridge whose IP has no permanent neighbour entry with the pod's MAC on the bridge. */
  podsWithoutPinnedNeighbour: string[];
  /** All jumps to our chains (nat/POSTROUTING, filter/FORWARD, raw/PREROUTING) are in place. */
  jumps: boolean;
  problems: string[];
}

/** What nodeDiagnostics read from the kernel: the facts the report is judged on (diagnose). */
export interface NodeReading {
  backend: Backend;
  moduleLoading: boolean;
  /** The bridge's kind, undefined when no device has its name. */
  bridgeKind: string | undefined;
  /** The sysctls read, or why they could not be (one problem, not three misleading ones). */
  sysctls: { brNfCallIptables?: string; ipForward?: string; proxyArp?: string } | { problem: string };
  /** Rule counts of our SNAT and FORWARD chains; undefined when the chain does not exist. */
  snatRules: number | undefined;
  forwardRules: number | undefined;
  /** `iptables -S` of the anti-spoofing chain; undefined when it does not exist. */
  antispoofListing: string | undefined;
  neighbours: NeighEntry[];
  /** Live pods nobody attached or detached while this was read (only those are judged). */
  pods: LivePod[];
  /** Jump rules missing from chains that exist, as `table/chain -j target`. */
  missingJumps: string[];
}

/** What the node's datapath looks like right now (for /readyz, logs and tests). Read-only. */
export async function nodeDiagnostics(input: NodeNetwork): Promise<NodeDiagnostics> {
  const net = parseNodeNetwork(input);
  return diagnose(net, await readNode(net));
}

async function readNode(net: NodeNetwork): Promise<NodeReading> {
  const ns = net.hostNetns;
  // The pods first, their rules and entries after: a pod listed here that nobody attached or detached
  // meanwhile (changedSince) must have both; one that changed is not judged on this reading.
  const node = nodeDatapath(net);
  const since = node.changes.seq;
  const listed = await node.livePods(net);
  const [br] = await ipJSON<LinkInfo>(ns, ['-d', 'link', 'show', 'dev', net.bridgeName]);
  const parpKey = `net/ipv4/conf/${net.bridgeName}/proxy_arp`;
  let sysctls: NodeReading['sysctls'];
  try {
    const v = await readSysctls(ns, datapathOptions().procSysRoot, [BR_NF_KEY, 'net/ipv4/ip_forward', ...(br ? [parpKey] : [])]);
    sysctls = { brNfCallIptables: v[BR_NF_KEY], ipForward: v['net/ipv4/ip_forward'], proxyArp: v[parpKey] };
  } catch (e) {
    sysctls = { problem: (e as Error).message };
  }
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  // The backend ensureNode programmed (detected once per ensureNode, not per probe); detected here only
  // if this process has not set the node up.
  const backend = await node.backendFor(net);
  const listing = async (table: string, chain: string): Promise<string | undefined> => {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    return r.code === 0 ? r.stdout : undefined;
  };
  const ruleCount = (l: string | undefined) => l?.split('\n').filter((x) => x.startsWith('-A ')).length;
  const snatRules = ruleCount(await listing('nat', snat));
  const forwardRules = ruleCount(await listing('filter', forward));
  const antispoofListing = await listing('raw', antispoof);
  const neighbours = br ? await bridgeNeighbours(net) : [];
  const pods = listed.filter((p) => !node.changes.changedSince(p.hostVeth, since));
  const missingJumps: string[] = [];
  for (const j of jumpRules(net)) {
    const chainExists = j.table === 'nat' ? snatRules !== undefined : j.table === 'filter' ? forwardRules !== undefined : antispoofListing !== undefined;
    if (!chainExists) continue; // the chain's own problem says it
    const present = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) missingJumps.push(`${j.table}/${j.chain} -j ${j.spec.at(-1)}`);
  }
  return {
    backend, moduleLoading: existsSync('/proc/modules'), bridgeKind: br ? br.linkinfo?.info_kind ?? '' : undefined, sysctls,
    snatRules, forwardRules, antispoofListing, neighbours, pods, missingJumps,
  };
}

/** The report and its human-readable problems, from a reading (pure). */
export function diagnose(net: NodeNetwork, r: NodeReading): NodeDiagnostics {
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  const sysctlProblem = 'problem' in r.sysctls ? r.sysctls.problem : undefined;
  const values = 'problem' in r.sysctls ? {} : r.sysctls;
  const bridge = r.bridgeKind === 'bridge';
  const named = (p: LivePod) => `pod ${p.containerId}/${p.ifName} (${p.ip}, ${p.hostVeth})`;
  const ruled = ruledPairs(r.antispoofListing ?? '');
  const unruled = r.antispoofListing === undefined ? [] : r.pods.filter((p) => !ruled.has(`${p.hostVeth} ${p.ip}/32`));
  const claims = new Map<string, number>();
  for (const p of r.pods) claims.set(p.ip, (claims.get(p.ip) ?? 0) + 1);
  const unpinned = r.bridgeKind === undefined ? [] : r.pods.filter((p) => {
    if ((claims.get(p.ip) ?? 0) > 1) return false; // a late DEL and a new pod on one IP: not a drift
    const e = r.neighbours.find((n) => n.dst === p.ip);
    return e?.lladdr?.toLowerCase() !== p.mac || !e.state?.includes('PERMANENT');
  });
  const d: NodeDiagnostics = {
    iptablesBackend: r.backend,
    moduleLoading: r.moduleLoading,
    bridge,
    brNetfilter: values.brNfCallIptables !== undefined,
    bridgeNfCallIptables: values.brNfCallIptables === '1',
    ipForward: values.ipForward === '1',
    proxyArp: values.proxyArp === '1',
    snatChain: r.snatRules !== undefined,
    forwardChain: r.forwardRules !== undefined,
    antispoofChain: r.antispoofListing !== undefined,
    podsWithoutAntispoof: unruled.map((p) => p.hostVeth),
    podsWithoutPinnedNeighbour: unpinned.map((p) => p.hostVeth),
    jumps: r.missingJumps.length === 0,
    problems: [],
  };
  if (!d.bridge) d.problems.push(`bridge ${net.bridgeName} is missing`);
  if (sysctlProblem) d.problems.push(sysctlProblem);
  else if (!d.brNetfilter) {
    d.problems.push(`br_netfilter is not loaded${d.moduleLoading ? ' (modprobe br_netfilter)' : ' and this kernel cannot load modules: it must be built in'}: Services with an endpoint on this node break`);
  }
  else if (!d.bridgeNfCallIptables) d.problems.push('net.bridge.bridge-nf-call-iptables is 0: iptables does not see bridged traffic');
  if (!sysctlProblem && !d.ipForward) d.problems.push('net.ipv4.ip_forward is 0: pods cannot leave the node');
  if (!sysctlProblem && d.bridge && !d.proxyArp) d.problems.push(`proxy_arp is off on ${net.bridgeName}: pods get no ARP reply for their gateway`);
  if (!d.snatChain) d.problems.push(`iptables chain nat/${snat} is missing`);
  if (!d.forwardChain) d.problems.push(`iptables chain filter/${forward} is missing`);
  if (!d.antispoofChain) d.problems.push(`iptables chain raw/${antispoof} is missing: pods may send with other pods' IPs`);
  if (unruled.length) {
    d.problems.push(`no anti-spoofing rule in raw/${antispoof} for ${unruled.map(named).join(', ')} (flushed by other software?)`);
  }
  for (const p of unpinned) {
    const e = r.neighbours.find((n) => n.dst === p.ip);
    d.problems.push(`${named(p)}: the node's neighbour entry for ${p.ip} on ${net.bridgeName} is not permanent with ${p.mac}` +
      ` (${e ? `${e.lladdr ?? 'no MAC'} ${(e.state ?? []).join(',')}` : 'none'}): a neighbour's ARP can divert its traffic until the next resync re-pins it`);
  }
  // Our chains always hold rules (RETURNs, ACCEPTs): an empty one was flushed by other software.
  if (r.snatRules === 0) d.problems.push(`iptables chain nat/${snat} is empty (flushed by other software?)`);
  if (r.forwardRules === 0) d.problems.push(`iptables chain filter/${forward} is empty (flushed by other software?)`);
  for (const j of r.missingJumps) d.problems.push(`iptables rule ${j} is missing`);
  return d;
}
