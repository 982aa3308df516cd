/**
 * Node-wide datapath state: bridge, sysctls, our iptables chains. ensureNode is idempotent and, once it
 * has succeeded for a given NodeNetwork, free (memoized per node namespace + bridge); calls for the same
 * node are serialized, so concurrent callers never race on iptables or on creating the bridge.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ipBatch, ipJSON, ipRemove, run, runRaw, type Netns, netnsPath } from './exec.js';
import { iptablesChainMissing, iptablesInterrupted, linkDelStep } from './kernel-errors.js';
import {
  antispoofRule, bridgeCreateLines, bridgeFixLines, chainRemoveRestore, chainRestore, jumpRules, type NeighEntry, neighbourPlan, nodeSysctls, type PinnedPod,
} from './plan.js';
import { type Backend, detectBackend, iptablesCmd, iptablesRestoreCmd } from './iptables.js';
import { chainNames, decodeAlias, hostVethName, podMACs } from './names.js';
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
/**
 * node key -> the (veth, source) pairs of raw/PODVNET-SRC as this process last wrote or read them. It lets
 * a batch of rule changes skip reading the chain (`iptables -S`, a whole process and, on nft, a ruleset
 * dump) when nothing is surprising: an add of a rule not known, a removal of one known. Anything else
 * (a retried ADD, a removal of a rule this process never saw, a write that failed because the chain
 * changed under us) reads the chain as before and starts the model again from that reading.
 */
const knownRules = new Map<string, Set<string>>();
/**
 * node key -> IP -> the MAC this process last pinned for it on the bridge. A DEL whose pod's entry is
 * known to be its own deletes it without reading the neighbour table first; otherwise the table is read.
 */
const knownPins = new Map<string, Map<string, string>>();

/** Records the `neigh replace|del` lines of a batch that succeeded (pod.ts's ADD batch, syncNeighbours). */
export function notePins(net: NodeNetwork, lines: readonly string[]): void {
  const key = nodeKey(net);
  let pins = knownPins.get(key);
  for (const l of lines) {
    const m = /^neigh (replace|del) (\S+)(?: lladdr (\S+))?/.exec(l);
    if (!m) continue;
    if (!pins) knownPins.set(key, (pins = new Map()));
    if (m[1] === 'replace' && m[3]) pins.set(m[2]!, m[3].toLowerCase());
    else pins.delete(m[2]!);
  }
}

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
  // The read-only probes (which backend kube-proxy uses; whether the other backend still holds chains of
  // ours) run before this turn in the node's queue, not in it: pod rule changes queued behind a periodic
  // resync then wait for less (about 8 fewer processes). A probe that fails is simply made again inside.
  const probes = probeBackends(net);
  await serialized(net, async () => {
    if (!opts.force && done.get(key) === want) return;
    done.delete(key);
    await applyNode(net, await probes);
    done.set(key, want);
  });
}

interface BackendProbes { backend?: Backend; otherHasChains?: boolean }

async function probeBackends(net: NodeNetwork): Promise<BackendProbes> {
  try {
    const backend = await detectBackend(net.hostNetns);
    const otherHasChains = await hasChains(net, backend === 'nft' ? 'legacy' : 'nft');
    return { backend, otherHasChains };
  } catch {
    return {};
  }
}

async function applyNode(net: NodeNetwork, probes: BackendProbes = {}): Promise<void> {
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
  const bridgeLines = br ? bridgeFixLines(net, br) : bridgeCreateLines(net);
  if (bridgeLines.length) await ipBatch(ns, bridgeLines);

  const root = datapathOptions().procSysRoot;
  await ensureBrNetfilter(ns, root);
  await writeSysctls(ns, root, nodeSysctls(net));

  const backend = probes.backend ?? await detectBackend(ns);
  backends.set(nodeKey(net), backend);
  // The anti-spoofing chain is rebuilt with a rule for every pod attached now: pod rules are added and
  // removed under the same per-node serialization, so none is lost to a concurrent rebuild.
  const podsNow = await attachedVeths(net);
  knownRules.delete(nodeKey(net));
  await run(ns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], chainRestore(net, podsNow));
  knownRules.set(nodeKey(net), new Set(podsNow.map((p) => `${p.hostVeth} ${p.ip}/32`)));
  for (const j of jumpRules(net)) {
    const present = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) await run(ns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-A', j.chain, ...j.spec]);
  }
  // If kube-proxy moved between backends since we last ran, our rules in the other one must go.
  if (probes.otherHasChains !== false || probes.backend !== backend) await removeChains(net, backend === 'nft' ? 'legacy' : 'nft');
  // Every live pod's permanent neighbour entry (anti-ARP-spoofing), re-pinned if anything flushed it: a
  // carrier loss of the bridge, another program, or a MAC change of the bridge above.
  await syncNeighbours(net, { listPods: () => livePods(net) });
}

/** Pods with an attach or detach under way in this process (node key + host veth -> how many of each). */
const inFlight = new Map<string, { attach: number; detach: number }>();
/** When each pod's attach or detach last began or ended, as a sequence number (diagnostics, see below). */
const lastChange = new Map<string, number>();
let changeSeq = 0;
type Change = 'attach' | 'detach';

function noteChange(k: string): void {
  lastChange.set(k, ++changeSeq);
  if (lastChange.size > 8192) for (const [key, seq] of lastChange) if (seq < changeSeq - 4096) lastChange.delete(key);
}

/**
 * Marks a pod as being attached or detached for the duration of `fn`. A resync must not re-pin the
 * neighbour entry of a pod being detached (it would outlive the pod), and diagnostics do not count a pod
 * half made or half removed as drift (its rule and entry come a moment after its veth, and go with it).
 */
export async function whileChanging<T>(net: NodeNetwork, hostVeth: string, change: Change, fn: () => Promise<T>): Promise<T> {
  const k = `${nodeKey(net)}\0${hostVeth}`;
  const c = inFlight.get(k) ?? { attach: 0, detach: 0 };
  c[change]++;
  inFlight.set(k, c);
  noteChange(k);
  try {
    return await fn();
  } finally {
    c[change]--;
    if (c.attach === 0 && c.detach === 0) inFlight.delete(k);
    noteChange(k);
  }
}

type LivePod = PinnedPod & { hostVeth: string; containerId: string; ifName: string };

/** The pods of this bridge that are not being detached, with the MAC their neighbour entry must carry. */
async function livePods(net: NodeNetwork): Promise<LivePod[]> {
  return (await attachedVeths(net))
    .filter((p) => (inFlight.get(`${nodeKey(net)}\0${p.hostVeth}`)?.detach ?? 0) === 0)
    .map((p) => ({ ...p, mac: podMACs(p.containerId, p.ifName).container }));
}

/** Whether a pod was attached or detached (or began to be) since `since`, or is being so now. */
const changedSince = (net: NodeNetwork, hostVeth: string, since: number): boolean => {
  const k = `${nodeKey(net)}\0${hostVeth}`;
  return inFlight.has(k) || (lastChange.get(k) ?? 0) > since;
};

const bridgeNeighbours = (net: NodeNetwork): Promise<NeighEntry[]> => ipJSON<NeighEntry>(net.hostNetns, ['-4', 'neigh', 'show', 'dev', net.bridgeName]);

/** A failed `neigh` batch whose entry (or bridge) was gone: the table changed under us, so read it again. */
const NEIGH_GONE = /^RTNETLINK answers: No such file or directory$|^Cannot find device "[^"]+"$|^RTNETLINK answers: No such device$/m;
const NEIGH_ROUNDS = 4;

/**
 * Brings the bridge's neighbour entries to what the pods need (plan.ts neighbourPlan); call it under the
 * node's serialization. The entries are read before the pods (a pod's entry is pinned after its veth is
 * labelled), so a GC never takes a fresh pod's entry for a stale one. An `ip neigh` failure ends its
 * batch: if it was an entry (or the bridge) that vanished meanwhile, the table is read again and the rest
 * done; any other failure is an error.
 */
async function syncNeighbours(
  net: NodeNetwork,
  want: { listPods?: () => Promise<PinnedPod[]>; unpin?: PinnedPod[]; gcStale?: boolean },
): Promise<void> {
  let last = '';
  let recheck = want.gcStale === true;
  for (let round = 0; round < NEIGH_ROUNDS; round++) {
    const entries = await bridgeNeighbours(net);
    const pods = want.listPods ? await want.listPods() : undefined;
    const lines = neighbourPlan(net, { entries, ...(pods ? { pods } : {}), ...(want.unpin ? { unpin: want.unpin } : {}), gcStale: want.gcStale ?? false });
    if (!lines.length) return;
    const r = await runRaw(net.hostNetns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
    if (r.code === 0) notePins(net, lines);
    else knownPins.delete(nodeKey(net)); // part of it ran: read the table next time
    // GC deletes by IP: a pod attached (and pinned) on a freed IP between the reading and the delete lost
    // its entry; one more reading finds it listed now and pins it again.
    if (r.code === 0 && recheck && round < NEIGH_ROUNDS - 1 && lines.some((l) => l.startsWith('neigh del '))) { recheck = false; continue; }
    if (r.code === 0) return;
    last = r.stderr.trim();
    if (!NEIGH_GONE.test(r.stderr)) throw new DatapathError(`neighbour entries on ${net.bridgeName}: ${last}`, 'ip -batch -', r.stderr);
  }
  throw new DatapathError(`neighbour entries on ${net.bridgeName} kept changing under ${NEIGH_ROUNDS} attempts: ${last}`);
}

/**
 * GC of the bridge's neighbour entries: permanent entries no live pod claims are deleted and live pods'
 * missing ones pinned again. Serialized with ensureNode and the pods' DEL-time unpinning.
 */
export function pruneStaleNeighbours(input: NodeNetwork): Promise<void> {
  const net = parseNodeNetwork(input);
  return serialized(net, () => syncNeighbours(net, { listPods: () => livePods(net), gcStale: true }));
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
/** add: the pod's anti-spoofing rule; remove: its rule and (if still its own) its neighbour entry. */
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
      await applyRuleOps(net, ops);
    });
  });
}

/** Applies queued pod changes and settles each op (never throws). */
async function applyRuleOps(net: NodeNetwork, ops: RuleOp[]): Promise<void> {
  const unpin = ops.filter((o) => !o.add).map((o) => ({ ip: o.pod.ip, mac: podMACs(o.pod.containerId, o.pod.ifName).container }));
  // The neighbour entries and the rules are independent: both under this one serialized turn.
  const [rules, neighs] = await Promise.allSettled([
    applyAntispoofOps(net, ops),
    unpin.length ? unpinNeighbours(net, unpin) : Promise.resolve(),
  ]);
  // The rules are one transaction for every op; a neighbour failure concerns only the removals.
  for (const o of ops) {
    if (rules.status === 'rejected') o.done(rules.reason);
    else if (!o.add && neighs.status === 'rejected') o.done(neighs.reason);
    else o.done();
  }
}

/**
 * Removes the pods' neighbour entries, each only if it still carries the pod's MAC. Entries this process
 * pinned itself with that MAC (and nobody re-pinned since, as far as it knows) are deleted straight away
 * in one `ip -batch`; the others, or all of them if that batch fails (an entry flushed meanwhile), go
 * through syncNeighbours, which reads the table first.
 */
async function unpinNeighbours(net: NodeNetwork, unpin: PinnedPod[]): Promise<void> {
  const pins = knownPins.get(nodeKey(net));
  const seen = new Set<string>();
  const direct = unpin.filter((u) => {
    const ours = pins?.get(u.ip) === u.mac && !seen.has(u.ip);
    seen.add(u.ip);
    return ours;
  });
  const rest = unpin.filter((u) => !direct.includes(u));
  if (direct.length) {
    const lines = direct.map((u) => `neigh del ${u.ip} dev ${net.bridgeName}`);
    const r = await runRaw(net.hostNetns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
    if (r.code === 0) notePins(net, lines);
    else {
      knownPins.delete(nodeKey(net));
      rest.push(...direct);
    }
  }
  if (rest.length) await syncNeighbours(net, { unpin: rest });
}

const RESTORE_ATTEMPTS = 3;

/**
 * The anti-spoofing rule changes: what is there is read, only what differs is written. If the write
 * fails, the chain is read again and the difference retried: a rule that other software removed in
 * between is then simply not removed again; a real error fails every attempt and is thrown.
 */
async function applyAntispoofOps(net: NodeNetwork, ops: RuleOp[]): Promise<void> {
  const backend = await backendFor(net);
  const key = nodeKey(net);
  const { antispoof } = chainNames(net.bridgeName);
  const pair = (o: RuleOp) => `${hostVethName(o.pod.containerId, o.pod.ifName)} ${o.pod.ip}/32`;
  for (let attempt = 1; ; attempt++) {
    // The chain is read unless the model covers every op without surprise (see knownRules).
    const known = attempt === 1 ? knownRules.get(key) : undefined;
    const trusted = known !== undefined && ops.every((o) => o.add !== known.has(pair(o)));
    knownRules.delete(key); // unknown until this write is known to have landed
    const listing = trusted ? '' : await listChain(net.hostNetns, backend, 'raw', antispoof);
    const present = trusted ? new Set(known) : listing === undefined ? new Set<string>() : ruledPairs(listing);
    const lines: string[] = [];
    for (const o of ops) {
      const k = pair(o);
      if (o.add && !present.has(k)) { lines.push(`-A ${antispoof} ${antispoofRule(o.pod).join(' ')}`); present.add(k); }
      if (!o.add && present.has(k)) { lines.push(`-D ${antispoof} ${antispoofRule(o.pod).join(' ')}`); present.delete(k); }
    }
    if (!lines.length) { if (listing !== undefined) knownRules.set(key, present); return; }
    if (listing === undefined) throw new DatapathError(`iptables chain raw/${antispoof} is missing: run ensureNode`);
    const r = await runRaw(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], ['*raw', ...lines, 'COMMIT'].join('\n') + '\n');
    if (r.code === 0) { knownRules.set(key, present); return; }
    // A trusted model that was wrong (the chain was flushed or changed by others) costs one more round.
    if (trusted) { attempt--; continue; }
    if (attempt >= RESTORE_ATTEMPTS) {
      throw new DatapathError(`${iptablesRestoreCmd(backend)} (raw/${antispoof}): ${r.stderr.trim() || `exit code ${r.code}`}`, iptablesRestoreCmd(backend), r.stderr);
    }
  }
}

/**
 * `iptables -S <chain>`: the listing, or undefined when the chain does not exist. A listing that lost a
 * race with a concurrent ruleset change is read again; any other failure (e.g. the xtables lock held
 * past -w) is an error, not an empty chain.
 */
async function listChain(ns: Netns, backend: Backend, table: string, chain: string): Promise<string | undefined> {
  for (let attempt = 1; ; attempt++) {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    if (r.code === 0) return r.stdout;
    if (iptablesChainMissing(r.stderr)) return undefined;
    if (!iptablesInterrupted(r.stderr) || attempt >= RESTORE_ATTEMPTS) {
      throw new DatapathError(`${iptablesCmd(backend)} -t ${table} -S ${chain}: ${r.stderr.trim() || `exit code ${r.code}`}`, `${iptablesCmd(backend)} -S`, r.stderr);
    }
  }
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

/**
 * Removes a pod's anti-spoofing rule and its neighbour entry (if it still carries the pod's MAC); a rule,
 * chain or entry that is already gone is fine.
 */
export function removePodProtection(net: NodeNetwork, pod: RulePod): Promise<void> {
  return queueRuleOp(net, false, pod);
}

/** Whether the pod's anti-spoofing rule is in place (CHECK). */
export async function hasAntispoofRule(net: NodeNetwork, pod: Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>): Promise<boolean> {
  const { antispoof } = chainNames(net.bridgeName);
  const r = await runRaw(net.hostNetns, [iptablesCmd(await backendFor(net)), '-w', '5', '-t', 'raw', '-C', antispoof, ...antispoofRule(pod)]);
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
    for (let attempt = 1; ; attempt++) {
      const listing = await listChain(net.hostNetns, backend, 'raw', antispoof);
      if (listing === undefined) return [];
      const veths = new Set((await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'type', 'veth'])).map((l) => l.ifname));
      const orphans = listing.split('\n').filter((l) => l.startsWith(`-A ${antispoof} `))
        .map((l) => ({ line: l, veth: /--physdev-in (\S+)/.exec(l)?.[1] }))
        .filter((o): o is { line: string; veth: string } => o.veth !== undefined && !veths.has(o.veth));
      if (!orphans.length) return [];
      const restore = ['*raw', ...orphans.map((o) => o.line.replace(/^-A /, '-D ')), 'COMMIT'].join('\n') + '\n';
      knownRules.delete(nodeKey(net)); // the next batch reads the chain
      const r = await runRaw(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], restore);
      if (r.code === 0) return orphans.map((o) => o.veth);
      // Read again: another program may have removed some of them meanwhile (a real error fails every time).
      if (attempt >= RESTORE_ATTEMPTS) {
        throw new DatapathError(`${iptablesRestoreCmd(backend)} (raw/${antispoof}): ${r.stderr.trim() || `exit code ${r.code}`}`, iptablesRestoreCmd(backend), r.stderr);
      }
    }
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

/** Whether one backend holds any of our chains (a backend that does not work here holds none). */
async function hasChains(net: NodeNetwork, backend: Backend): Promise<boolean> {
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  const has = async (table: string, chain: string) =>
    (await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain])).code === 0;
  return (await has('nat', snat)) || (await has('filter', forward)) || (await has('raw', antispoof));
}

/**
 * Removes our jump rules and chains from one backend, if they are there. A backend that does not work
 * here (no legacy tables in this kernel) has nothing of ours, so its errors are ignored.
 */
async function removeChains(net: NodeNetwork, backend: Backend): Promise<void> {
  const ns = net.hostNetns;
  if (!(await hasChains(net, backend))) return;
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
  /** Host veths of this bridge whose IP has no permanent neighbour entry with the pod's MAC on the bridge. */
  podsWithoutPinnedNeighbour: string[];
  /** All jumps to our chains (nat/POSTROUTING, filter/FORWARD, raw/PREROUTING) are in place. */
  jumps: boolean;
  problems: string[];
}

/** What the node's datapath looks like right now (for /readyz, logs and tests). Read-only. */
export async function nodeDiagnostics(input: NodeNetwork): Promise<NodeDiagnostics> {
  const net = parseNodeNetwork(input);
  const ns = net.hostNetns;
  // The pods first, their rules and entries after: a pod listed here that nobody attached or detached
  // meanwhile (changedSince) must have both; one that changed is not judged on this reading.
  const since = changeSeq;
  const listed = await livePods(net);
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
  // The backend ensureNode programmed (detected once per ensureNode, not per probe); detected here only
  // if this process has not set the node up.
  const backend = await backendFor(net);
  /** The chain's rule count, or undefined when the chain does not exist. */
  const chainRules = async (table: string, chain: string): Promise<number | undefined> => {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    return r.code === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length : undefined;
  };
  const [snatRules, forwardRules] = [await chainRules('nat', snat), await chainRules('filter', forward)];
  const srcDump = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', 'raw', '-S', antispoof]);
  const srcRules = srcDump.code === 0 ? srcDump.stdout : undefined;
  const ruled = ruledPairs(srcRules ?? '');
  const neighs = br ? await bridgeNeighbours(net) : [];
  const pods = listed.filter((p) => !changedSince(net, p.hostVeth, since));
  const named = (p: (typeof pods)[number]) => `pod ${p.containerId}/${p.ifName} (${p.ip}, ${p.hostVeth})`;
  const unruled = srcRules === undefined ? [] : pods.filter((p) => !ruled.has(`${p.hostVeth} ${p.ip}/32`));
  const podsWithoutAntispoof = unruled.map((p) => p.hostVeth);
  const claims = new Map<string, number>();
  for (const p of pods) claims.set(p.ip, (claims.get(p.ip) ?? 0) + 1);
  const unpinned = !br ? [] : pods.filter((p) => {
    if ((claims.get(p.ip) ?? 0) > 1) return false; // a late DEL and a new pod on one IP: not a drift
    const e = neighs.find((n) => n.dst === p.ip);
    return e?.lladdr?.toLowerCase() !== p.mac || !e.state?.includes('PERMANENT');
  });
  const podsWithoutPinnedNeighbour = unpinned.map((p) => p.hostVeth);
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
    podsWithoutPinnedNeighbour,
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
  if (unruled.length) {
    d.problems.push(`no anti-spoofing rule in raw/${antispoof} for ${unruled.map(named).join(', ')} (flushed by other software?)`);
  }
  for (const p of unpinned) {
    const e = neighs.find((n) => n.dst === p.ip);
    d.problems.push(`${named(p)}: the node's neighbour entry for ${p.ip} on ${net.bridgeName} is not permanent with ${p.mac}` +
      ` (${e ? `${e.lladdr ?? 'no MAC'} ${(e.state ?? []).join(',')}` : 'none'}): a neighbour's ARP can divert its traffic until the next resync re-pins it`);
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
    knownRules.delete(nodeKey(net));
    knownPins.delete(nodeKey(net));
    for (const b of ['nft', 'legacy'] as const) await removeChains(net, b);
    backends.delete(nodeKey(net));
    const ours = (await attachedVeths(net)).map((l) => linkDelStep(l.hostVeth));
    const [br] = await ipJSON<LinkInfo>(ns, ['link', 'show', 'dev', net.bridgeName]);
    const steps = [...ours, ...(br ? [linkDelStep(net.bridgeName)] : [])];
    const errors = steps.length ? await ipRemove(ns, steps) : [];
    if (errors.length) throw new DatapathError(`teardownNode ${net.bridgeName}: ${errors.join('; ')}`);
  });
}
