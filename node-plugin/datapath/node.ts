/**
 * Node-wide datapath state: bridge, sysctls, our iptables chains. ensureNode is idempotent and, once it
 * has succeeded for a given NodeNetwork, free (memoized per node namespace + bridge); calls for the same
 * node are serialized, so concurrent callers never race on iptables or on creating the bridge.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ipBatch, ipBatchTolerant, ipJSON, run, runRaw, type Netns, netnsPath } from './exec.js';
import { antispoofRule, bridgeCreateLines, bridgeFixLines, chainRemoveRestore, chainRestore, jumpRules, nodeSysctls } from './plan.js';
import { type Backend, detectBackend, iptablesCmd, iptablesRestoreCmd } from './iptables.js';
import { chainNames, decodeAlias, hostVethName } from './names.js';
import { datapathOptions } from './options.js';
import { readSysctls, writeSysctls } from './sysctl.js';
import { DatapathError, type NodeNetwork, type PodInterface } from './types.js';
import { parseNodeNetwork } from './validate.js';

interface LinkInfo {
  ifname: string; mtu: number; address: string; master?: string; flags?: string[]; ifalias?: string;
  ifindex: number; link_index?: number; linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
}
export type { LinkInfo };

const nodeKey = (net: NodeNetwork): string => `${net.hostNetns ?? ''}\0${net.bridgeName}`;
const done = new Map<string, string>();            // node key -> JSON of the NodeNetwork last applied
const tails = new Map<string, Promise<unknown>>(); // node key -> last queued node-wide operation
const backends = new Map<string, Backend>();       // node key -> iptables backend ensureNode programmed

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
  backends.set(nodeKey(net), backend);
  // The anti-spoofing chain is rebuilt with a rule for every pod attached now: pod rules are added and
  // removed under the same per-node serialization, so none is lost to a concurrent rebuild.
  await run(ns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], chainRestore(net, await attachedVeths(net)));
  for (const j of jumpRules(net)) {
    const present = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) await run(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-A', j.chain, ...j.spec]);
  }
  // If kube-proxy moved between backends since we last ran, our rules in the other one must go.
  await removeChains(net, backend === 'nft' ? 'legacy' : 'nft');
}

/** The pods of this bridge, from the host veths' aliases (the kernel is the record; see pod.ts listAttachments). */
export async function attachedVeths(net: NodeNetwork): Promise<Array<{ hostVeth: string; containerId: string; ifName: string; ip: string }>> {
  const veths = await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'type', 'veth']);
  const out: Array<{ hostVeth: string; containerId: string; ifName: string; ip: string }> = [];
  for (const l of veths) {
    const a = decodeAlias(l.ifalias);
    if (a && a.bridge === net.bridgeName) out.push({ hostVeth: l.ifname, containerId: a.containerId, ifName: a.ifName, ip: a.ip });
  }
  return out;
}

async function backendFor(net: NodeNetwork): Promise<Backend> {
  return backends.get(nodeKey(net)) ?? detectBackend(net.hostNetns);
}

type RulePod = Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>;
interface RuleOp { add: boolean; pod: RulePod; done: (e?: unknown) => void }
const pendingRules = new Map<string, RuleOp[]>(); // node key -> rule changes not yet applied

/**
 * Pod rule changes are batched: every add/remove queued while the previous node-wide operation runs is
 * applied in one `iptables -S` (what is there) and one `iptables-restore --noflush` (only what changes),
 * under the node's serialization, so they never race with ensureNode's chain rebuild, a retried ADD
 * never duplicates a rule, and 250 pods starting together cost a few iptables transactions, not 250.
 */
function queueRuleOp(net: NodeNetwork, add: boolean, pod: RulePod): Promise<void> {
  const key = nodeKey(net);
  return new Promise<void>((resolve, reject) => {
    const op: RuleOp = { add, pod, done: (e) => (e === undefined ? resolve() : reject(e)) };
    const queued = pendingRules.get(key);
    if (queued) { queued.push(op); return; }
    pendingRules.set(key, [op]);
    void serialized(net, async () => {
      const ops = pendingRules.get(key) ?? [];
      pendingRules.delete(key);
      try {
        await applyRuleOps(net, ops);
        for (const o of ops) o.done();
      } catch (e) {
        for (const o of ops) o.done(e);
      }
    });
  });
}

async function applyRuleOps(net: NodeNetwork, ops: RuleOp[]): Promise<void> {
  const backend = await backendFor(net);
  const { antispoof } = chainNames(net.bridgeName);
  const listed = await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', 'raw', '-S', antispoof]);
  const present = listed.code === 0 ? ruledPairs(listed.stdout) : new Set<string>();
  const lines: string[] = [];
  for (const o of ops) {
    const k = `${hostVethName(o.pod.containerId, o.pod.ifName)} ${o.pod.ip}/32`;
    if (o.add && !present.has(k)) { lines.push(`-A ${antispoof} ${antispoofRule(net, o.pod).join(' ')}`); present.add(k); }
    if (!o.add && present.has(k)) { lines.push(`-D ${antispoof} ${antispoofRule(net, o.pod).join(' ')}`); present.delete(k); }
  }
  if (!lines.length) return;
  if (listed.code !== 0 && ops.some((o) => o.add)) {
    throw new DatapathError(`iptables chain raw/${antispoof} is missing (${listed.stderr.trim()}): run ensureNode`);
  }
  await run(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], ['*raw', ...lines, 'COMMIT'].join('\n') + '\n');
}

/** (veth, source) pairs of the DROP rules in an `iptables -S` listing; -S orders a rule's matches its own way. */
function ruledPairs(listing: string): Set<string> {
  const out = new Set<string>();
  for (const l of listing.split('\n')) {
    const veth = /--physdev-in (\S+)/.exec(l)?.[1];
    const src = /! -s (\S+)/.exec(l)?.[1];
    if (veth && src && / -j DROP\b/.test(l)) out.add(`${veth} ${src}`);
  }
  return out;
}

/** Adds a pod's anti-spoofing rule (plan.ts antispoofRule) unless it is there already. */
export function addAntispoofRule(net: NodeNetwork, pod: RulePod): Promise<void> {
  return queueRuleOp(net, true, pod);
}

/** Removes a pod's anti-spoofing rule; a missing rule or chain is fine. */
export function removeAntispoofRule(net: NodeNetwork, pod: RulePod): Promise<void> {
  return queueRuleOp(net, false, pod);
}

/** Whether the pod's anti-spoofing rule is in place (CHECK). */
export async function hasAntispoofRule(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>): Promise<boolean> {
  const { antispoof } = chainNames(net.bridgeName);
  const r = await runRaw(net.hostNetns, [iptablesCmd(await backendFor(net)), '-w', '5', '-t', 'raw', '-C', antispoof, ...antispoofRule(net, pod)]);
  return r.code === 0;
}

/**
 * GC: removes anti-spoofing rules whose veth no longer exists. Rules are read before veths (a rule is
 * added after its veth and removed before it), under the node's serialization. Returns the veth names.
 */
export function pruneOrphanAntispoofRules(net: NodeNetwork): Promise<string[]> {
  return serialized(net, async () => {
    const backend = await backendFor(net);
    const { antispoof } = chainNames(net.bridgeName);
    const r = await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', 'raw', '-S', antispoof]);
    if (r.code !== 0) return [];
    const veths = new Set((await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'type', 'veth'])).map((l) => l.ifname));
    const orphans = r.stdout.split('\n').filter((l) => l.startsWith(`-A ${antispoof} `))
      .map((l) => ({ line: l, veth: /--physdev-in (\S+)/.exec(l)?.[1] }))
      .filter((o): o is { line: string; veth: string } => o.veth !== undefined && !veths.has(o.veth));
    if (!orphans.length) return [];
    const restore = ['*raw', ...orphans.map((o) => o.line.replace(/^-A /, '-D ')), 'COMMIT'].join('\n') + '\n';
    await run(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], restore);
    return orphans.map((o) => o.veth);
  });
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
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  const has = async (table: string, chain: string) =>
    (await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain])).code === 0;
  if (!(await has('nat', snat)) && !(await has('filter', forward)) && !(await has('raw', antispoof))) return;
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
  /** raw/PODVNET-SRC, the pods' anti-spoofing rules. */
  antispoofChain: boolean;
  /** Host veths of this bridge without their anti-spoofing rule. */
  podsWithoutAntispoof: string[];
  /** All jumps to our chains (nat/POSTROUTING, filter/FORWARD, raw/PREROUTING) are in place. */
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
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  const backend = await detectBackend(ns);
  /** The chain's rule count, or undefined when the chain does not exist. */
  const chainRules = async (table: string, chain: string): Promise<number | undefined> => {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    return r.code === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length : undefined;
  };
  const [snatRules, forwardRules] = [await chainRules('nat', snat), await chainRules('filter', forward)];
  const srcDump = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', 'raw', '-S', antispoof]);
  const srcRules = srcDump.code === 0 ? srcDump.stdout : undefined;
  const ruled = ruledPairs(srcRules ?? '');
  const podsWithoutAntispoof = srcRules === undefined ? [] : (await attachedVeths(net))
    .filter((p) => !ruled.has(`${p.hostVeth} ${p.ip}/32`)).map((p) => p.hostVeth);
  const missingJumps: string[] = [];
  for (const j of jumpRules(net)) {
    const chainRuleCount = j.table === 'nat' ? snatRules : j.table === 'filter' ? forwardRules : (srcRules === undefined ? undefined : 0);
    if (chainRuleCount === undefined) continue; // the chain's own problem says it
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
    antispoofChain: srcRules !== undefined,
    podsWithoutAntispoof,
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
  if (!d.antispoofChain) d.problems.push(`iptables chain raw/${antispoof} is missing: pods may send with other pods' IPs`);
  if (podsWithoutAntispoof.length) {
    d.problems.push(`no anti-spoofing rule in raw/${antispoof} for ${podsWithoutAntispoof.join(', ')} (flushed by other software?)`);
  }
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
    backends.delete(nodeKey(net));
    const ours = (await attachedVeths(net)).map((l) => `link del dev ${l.hostVeth}`);
    const [br] = await ipJSON<LinkInfo>(ns, ['link', 'show', 'dev', net.bridgeName]);
    const lines = [...ours, ...(br ? [`link del dev ${net.bridgeName}`] : [])];
    const errors = lines.length ? await ipBatchTolerant(ns, lines, [/Cannot find device/, /does not exist/]) : [];
    if (errors.length) throw new DatapathError(`teardownNode ${net.bridgeName}: ${errors.join('; ')}`);
  });
}
