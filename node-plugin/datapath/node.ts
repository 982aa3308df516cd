/**
 * Node-wide datapath state: bridge, sysctls, our iptables chains. ensureNode is idempotent and, once it
 * has succeeded for a given NodeNetwork, free (memoized per node namespace + bridge); calls for the same
 * node are serialized, so concurrent callers never race on iptables or on creating the bridge.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ipBatch, ipBatchTolerant, ipJSON, run, runRaw, type Netns, netnsPath } from './exec.js';
import { bridgeCreateLines, bridgeFixLines, chainRemoveRestore, chainRestore, jumpRules, nodeSysctls } from './plan.js';
import { type Backend, detectBackend, iptablesCmd, iptablesRestoreCmd } from './iptables.js';
import { chainNames, decodeAlias } from './names.js';
import { datapathOptions } from './options.js';
import { readSysctls, writeSysctls } from './sysctl.js';
import { DatapathError, type NodeNetwork } from './types.js';
import { parseNodeNetwork } from './validate.js';

interface LinkInfo {
  ifname: string; mtu: number; address: string; master?: string; flags?: string[]; ifalias?: string;
  ifindex: number; link_index?: number; linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
}
export type { LinkInfo };

const nodeKey = (net: NodeNetwork): string => `${net.hostNetns ?? ''}\0${net.bridgeName}`;
const done = new Map<string, string>();            // node key -> JSON of the NodeNetwork last applied
const tails = new Map<string, Promise<unknown>>(); // node key -> last queued node-wide operation

/** Serializes node-wide work (bridge, sysctls, iptables) per node namespace + bridge. */
export function serialized<T>(net: NodeNetwork, fn: () => Promise<T>): Promise<T> {
  const key = nodeKey(net);
  const prev = tails.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  tails.set(key, tail);
  void tail.then(() => { if (tails.get(key) === tail) tails.delete(key); });
  return next;
}

/** Forgets that ensureNode succeeded (used when a pod operation finds the bridge gone). */
export function forgetNode(net: NodeNetwork): void {
  done.delete(nodeKey(net));
}

/**
 * What ensureNode's work depends on: everything but the MTU, which is per pod (the bridge follows its
 * ports), so attaching pods with different MTUs never re-applies the node; and where /proc/sys is.
 */
const nodeFingerprint = (net: NodeNetwork): string =>
  JSON.stringify({ ...net, mtu: undefined, procSysRoot: datapathOptions().procSysRoot });

export async function ensureNode(input: NodeNetwork, opts: { force?: boolean } = {}): Promise<void> {
  const net = parseNodeNetwork(input);
  const key = nodeKey(net);
  const want = nodeFingerprint(net);
  if (!opts.force && done.get(key) === want) return;
  await serialized(net, async () => {
    if (!opts.force && done.get(key) === want) return;
    done.delete(key);
    await applyNode(net);
    done.set(key, want);
  });
}

async function applyNode(net: NodeNetwork): Promise<void> {
  const ns: Netns = net.hostNetns;
  if (net.hostNetns !== undefined && !existsSync(netnsPath(net.hostNetns))) {
    throw new DatapathError(`node network namespace ${net.hostNetns} does not exist`);
  }
  const [nic] = await ipJSON<LinkInfo>(ns, ['link', 'show', 'dev', net.hostInterface]);
  if (!nic) throw new DatapathError(`host interface ${net.hostInterface} does not exist${ns ? ` in netns ${ns}` : ''}`);
  if (nic.address.toLowerCase() !== net.nicMAC) {
    // Azure delivers pod traffic only to the NIC's MAC: a different interface here means the node is
    // configured with the wrong hostInterface (or NIC), and no pod would ever receive a packet.
    throw new DatapathError(`host interface ${net.hostInterface} has MAC ${nic.address}, but the NIC that holds the pod IPs has ${net.nicMAC}: wrong hostInterface?`);
  }

  const [br] = await ipJSON<LinkInfo>(ns, ['-d', 'link', 'show', 'dev', net.bridgeName]);
  if (br && br.linkinfo?.info_kind !== 'bridge') {
    throw new DatapathError(`${net.bridgeName} exists and is not a bridge (it is ${br.linkinfo?.info_kind ?? 'a plain device'}): refusing to touch it`);
  }
  await ipBatch(ns, br ? bridgeFixLines(net) : bridgeCreateLines(net));

  const root = datapathOptions().procSysRoot;
  await ensureBrNetfilter(ns, root);
  await writeSysctls(ns, root, nodeSysctls(net));

  const backend = await detectBackend(ns);
  await run(ns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], chainRestore(net));
  for (const j of jumpRules(net)) {
    const present = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) await run(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-A', j.chain, ...j.spec]);
  }
  // If kube-proxy moved between backends since we last ran, our rules in the other one must go.
  await removeChains(net, backend === 'nft' ? 'legacy' : 'nft');
}

const CAP_SYS_MODULE = 16;

/** Whether this process holds a capability (effective set), from /proc/self/status. */
function hasCapability(bit: number): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> BigInt(bit)) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

const BR_NF_KEY = 'net/bridge/bridge-nf-call-iptables';

/**
 * br_netfilter: its sysctls exist only when the module is loaded (or built in). Without it, a pod
 * talking to a Service whose endpoint is on the same bridge gets replies that skip the Service's
 * reverse NAT. If it is missing and this process may load modules (root on a plain Docker host), try
 * modprobe once. The DaemonSet's agent may not (no CAP_SYS_MODULE): its init container loads it, and
 * an attempt here could only fail, so the error says where to look instead.
 */
async function ensureBrNetfilter(ns: Netns, root: string): Promise<void> {
  const probe = async (): Promise<boolean> => (await readSysctls(ns, root, [BR_NF_KEY]))[BR_NF_KEY] !== undefined;
  if (await probe()) return;
  const fix = 'Load it on the host (package kmod: modprobe br_netfilter; persist it in /etc/modules-load.d/).' +
    ' Without it Services whose endpoint is on the same node break.';
  if (!hasCapability(CAP_SYS_MODULE)) {
    throw new DatapathError(
      `br_netfilter is not available (${root}/net/bridge is missing) and this process may not load modules (no CAP_SYS_MODULE;` +
        ' in the podvnet-node DaemonSet the load-br-netfilter init container loads it: see its log). ' + fix,
    );
  }
  const mp = await runRaw(undefined, ['modprobe', 'br_netfilter']).catch((e: Error) => ({ code: -1, stderr: e.message, stdout: '' }));
  if (await probe()) return;
  throw new DatapathError(
    `br_netfilter is not available (${root}/net/bridge is missing) and \`modprobe br_netfilter\` failed` +
      ` (${mp.stderr.trim() || `exit ${mp.code}`}). ` + fix,
  );
}

/**
 * Removes our jump rules and chains from one backend, if they are there. A backend that does not work
 * here (no legacy tables in this kernel) has nothing of ours, so its errors are ignored.
 */
async function removeChains(net: NodeNetwork, backend: Backend): Promise<void> {
  const ns = net.hostNetns;
  const { snat, forward } = chainNames(net.bridgeName);
  const has = async (table: string, chain: string) =>
    (await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain])).code === 0;
  if (!(await has('nat', snat)) && !(await has('filter', forward))) return;
  for (const j of jumpRules(net)) {
    // -D removes one copy per call; loop in case a crash ever left two.
    for (let i = 0; i < 10; i++) {
      const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-D', j.chain, ...j.spec]);
      if (r.code !== 0) break;
    }
  }
  await run(ns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], chainRemoveRestore(net));
}

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
  /** Both jumps to our chains (nat/POSTROUTING, filter/FORWARD) are in place. */
  jumps: boolean;
  problems: string[];
}

/** What the node's datapath looks like right now (for /readyz, logs and tests). Read-only. */
export async function nodeDiagnostics(input: NodeNetwork): Promise<NodeDiagnostics> {
  const net = parseNodeNetwork(input);
  const ns = net.hostNetns;
  const [br] = await ipJSON<LinkInfo>(ns, ['-d', 'link', 'show', 'dev', net.bridgeName]);
  const parpKey = `net/ipv4/conf/${net.bridgeName}/proxy_arp`;
  // A procSysRoot that is not the host's /proc/sys/net is one problem, not three misleading ones.
  let values: Record<string, string | undefined> = {};
  let sysctlProblem: string | undefined;
  try {
    values = await readSysctls(ns, datapathOptions().procSysRoot, [BR_NF_KEY, 'net/ipv4/ip_forward', ...(br ? [parpKey] : [])]);
  } catch (e) {
    sysctlProblem = (e as Error).message;
  }
  const nf = values[BR_NF_KEY];
  const fwd = values['net/ipv4/ip_forward'];
  const parp = values[parpKey];
  const { snat, forward } = chainNames(net.bridgeName);
  const backend = await detectBackend(ns);
  /** The chain's rule count, or undefined when the chain does not exist. */
  const chainRules = async (table: string, chain: string): Promise<number | undefined> => {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    return r.code === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length : undefined;
  };
  const [snatRules, forwardRules] = [await chainRules('nat', snat), await chainRules('filter', forward)];
  const missingJumps: string[] = [];
  for (const j of jumpRules(net)) {
    if ((j.table === 'nat' ? snatRules : forwardRules) === undefined) continue; // the chain's own problem says it
    const present = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) missingJumps.push(`${j.table}/${j.chain} -j ${j.spec.at(-1)}`);
  }
  const d: NodeDiagnostics = {
    iptablesBackend: backend,
    moduleLoading: existsSync('/proc/modules'),
    bridge: br?.linkinfo?.info_kind === 'bridge',
    brNetfilter: nf !== undefined,
    bridgeNfCallIptables: nf === '1',
    ipForward: fwd === '1',
    proxyArp: parp === '1',
    snatChain: snatRules !== undefined,
    forwardChain: forwardRules !== undefined,
    jumps: missingJumps.length === 0,
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
  // Our chains always hold rules (RETURNs, ACCEPTs): an empty one was flushed by other software.
  if (snatRules === 0) d.problems.push(`iptables chain nat/${snat} is empty (flushed by other software?)`);
  if (forwardRules === 0) d.problems.push(`iptables chain filter/${forward} is empty (flushed by other software?)`);
  for (const j of missingJumps) d.problems.push(`iptables rule ${j} is missing`);
  return d;
}

/**
 * Removes everything ensureNode made, and any pod veths of this bridge still left: our jump rules and
 * chains, the bridge (its /32 pod routes go with it). ip_forward and bridge-nf-call-iptables are left
 * as they are: other software on the node may rely on them.
 */
export async function teardownNode(input: NodeNetwork): Promise<void> {
  const net = parseNodeNetwork(input);
  const ns = net.hostNetns;
  await serialized(net, async () => {
    forgetNode(net);
    for (const b of ['nft', 'legacy'] as const) await removeChains(net, b);
    const veths = await ipJSON<LinkInfo>(ns, ['link', 'show', 'type', 'veth']);
    const ours = veths.filter((l) => decodeAlias(l.ifalias)?.bridge === net.bridgeName).map((l) => `link del dev ${l.ifname}`);
    const [br] = await ipJSON<LinkInfo>(ns, ['link', 'show', 'dev', net.bridgeName]);
    const lines = [...ours, ...(br ? [`link del dev ${net.bridgeName}`] : [])];
    const errors = lines.length ? await ipBatchTolerant(ns, lines, [/Cannot find device/, /does not exist/]) : [];
    if (errors.length) throw new DatapathError(`teardownNode ${net.bridgeName}: ${errors.join('; ')}`);
  });
}
