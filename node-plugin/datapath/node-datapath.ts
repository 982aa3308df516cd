/**
 * One NodeDatapath per node (node namespace + bridge): the node-wide kernel state (bridge, sysctls, our
 * iptables chains) and what this process knows about it. ensureNode is idempotent and, once it has
 * succeeded for a given NodeNetwork, free (the one memo of it); node-wide work (ensureNode, pod rule
 * changes, neighbour unpinning and GC, teardown) runs one at a time per node, so concurrent callers never
 * race on iptables, on the neighbour table or on creating the bridge.
 */
import { existsSync } from 'node:fs';
import { KeyedSerial } from '../keyed-serial.js';
import { AntispoofRules, hasAntispoofRule, type RuleChange, type RulePod } from './antispoof.js';
import { ensureBrNetfilter } from './br-netfilter.js';
import { ensureJumps, hasChains, removeChains } from './chains.js';
import { ipBatch, ipJSON, ipRemove, netnsPath } from './exec.js';
import { type Backend, detectBackend } from './iptables.js';
import { linkDelStep } from './kernel-errors.js';
import { HostBatches } from './host-batches.js';
import { groupDelStep, LinkRemovals } from './link-removals.js';
import { attachedVeths, type LinkInfo, type VethPod } from './links.js';
import { hostVethName, podMACs, retiredGroup } from './names.js';
import { NeighbourPins } from './neighbours.js';
import { datapathOptions } from './options.js';
import { bridgeCreateLines, bridgeFixLines, nodeSysctls, type PinnedPod } from './plan.js';
import { type Change, PodChanges } from './pod-changes.js';
import { RetiredVeths } from './retired-veths.js';
import { writeSysctls } from './sysctl.js';
import { DatapathError, type NodeNetwork } from './types.js';
import { parseNodeNetwork } from './validate.js';

/** A pod of the bridge with the MAC its neighbour entry must carry. */
export type LivePod = VethPod & PinnedPod;

interface BackendProbes { backend?: Backend; otherHasChains?: boolean }

/** A pod rule change waiting for the node's next turn, with its caller's settlement. */
/**
 * A pod change waiting for the node's next turn, with its caller's settlement: its rule (added or
 * removed) unless `rule` is false, and for a removal its neighbour entry unpinned unless `unpin` is false.
 */
interface QueuedChange extends RuleChange { rule: boolean; unpin: boolean; done: (e?: unknown) => void }

/**
 * What ensureNode's work depends on: everything but the MTU, which is per pod (the bridge follows its
 * ports), so attaching pods with different MTUs never re-applies the node; and where /proc/sys is.
 */
const nodeFingerprint = (net: NodeNetwork): string =>
  JSON.stringify({ ...net, mtu: undefined, procSysRoot: datapathOptions().procSysRoot });

export class NodeDatapath {
  private readonly turns = new KeyedSerial();
  /** An ensureNode run not yet settled, and the fingerprint it applies: callers for the same one share it. */
  private inFlight: { want: string; done: Promise<void> } | undefined;
  /** The fingerprint of the NodeNetwork ensureNode last applied successfully (cleared while it runs). */
  private applied: string | undefined;
  /** The iptables backend ensureNode programmed (diagnostics and pod rules use it without detecting). */
  private backend: Backend | undefined;
  /** Pod rule changes queued for the next turn; undefined when no turn is queued for them. */
  private pending: QueuedChange[] | undefined;
  private readonly rules = new AntispoofRules();
  /** The rules of pods being attached, by host veth: a rule may go in before its veth exists. */
  private readonly attachingRules = new Map<string, RulePod>();
  private readonly pins = new NeighbourPins();
  readonly changes = new PodChanges();
  /** The pods' route and veth removals, coalesced when DELs come together (link-removals.ts). */
  readonly removals: LinkRemovals;
  /** The ADDs' node-side `ip -batch`, coalesced when ADDs come together (host-batches.ts). */
  readonly hostBatches: HostBatches;
  /** Veths the DELs took off the network, deleted later and together (retired-veths.ts). */
  readonly retired: RetiredVeths;
  /** Whether this process has deleted the veths an earlier one left retired (once, at its first ensure). */
  private leftoversDeleted = false;

  constructor(readonly key: string, hostNetns: string | undefined, bridgeName: string) {
    const group = retiredGroup(bridgeName);
    this.removals = new LinkRemovals(hostNetns, group);
    this.hostBatches = new HostBatches(hostNetns);
    this.retired = new RetiredVeths({ ns: hostNetns, group, lastPodChange: () => this.changes.lastChangeAt });
  }

  /** Runs node-wide work after the node's previous work has settled. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.turns.run(this.key, fn);
  }

  async ensure(net: NodeNetwork, opts: { force?: boolean } = {}): Promise<void> {
    const want = nodeFingerprint(net);
    if (!opts.force && this.applied === want) return;
    // The first ADDs of a burst all find the node not yet applied: they share the run in flight rather
    // than each starting its own probes (a process each) and queueing a turn that would find it done.
    if (!opts.force && this.inFlight?.want === want) return this.inFlight.done;
    const done = this.applyInTurn(net, want, opts);
    this.inFlight = { want, done };
    try {
      await done;
    } finally {
      if (this.inFlight?.done === done) this.inFlight = undefined;
    }
  }

  private async applyInTurn(net: NodeNetwork, want: string, opts: { force?: boolean }): Promise<void> {
    // The read-only probes (which backend kube-proxy uses; whether the other backend still holds chains of
    // ours) run before this turn in the node's queue, not in it: pod rule changes queued behind a periodic
    // resync then wait for less (about 8 fewer processes). A probe that fails is simply made again inside.
    const probes = probeBackends(net);
    await this.serialized(async () => {
      if (!opts.force && this.applied === want) return;
      this.applied = undefined;
      await this.apply(net, await probes);
      this.applied = want;
    });
  }

  /** Forgets that ensureNode succeeded (used when a pod operation finds the bridge gone). */
  forget(): void {
    this.applied = undefined;
  }

  private async apply(net: NodeNetwork, probes: BackendProbes): Promise<void> {
    const ns = net.hostNetns;
    if (ns !== undefined && !existsSync(netnsPath(ns))) throw new DatapathError(`node network namespace ${ns} does not exist`);
    await ensureBridge(net);
    if (!this.leftoversDeleted) {
      // Veths an earlier agent retired and did not live to delete: their rules go with the rebuild below.
      const errors = await ipRemove(ns, [groupDelStep(retiredGroup(net.bridgeName))]);
      if (errors.length) throw new DatapathError(`deleting retired veths of ${net.bridgeName}: ${errors.join('; ')}`);
      this.leftoversDeleted = true;
    }
    const root = datapathOptions().procSysRoot;
    await ensureBrNetfilter(ns, root);
    await writeSysctls(ns, root, nodeSysctls(net));

    const backend = probes.backend ?? await detectBackend(ns);
    this.backend = backend;
    // The anti-spoofing chain is rebuilt with a rule for every pod attached now, and for every pod being
    // attached whose veth may not be there or labelled yet: pod rules are added and removed under the same
    // per-node serialization, so none is lost to a concurrent rebuild.
    const listed = await attachedVeths(net);
    const attaching = [...this.attachingRules.values()]
      .map((p) => ({ ...p, hostVeth: hostVethName(p.containerId, p.ifName) }))
      .filter((p) => !listed.some((l) => l.hostVeth === p.hostVeth));
    await this.rules.rebuild(net, backend, [...listed, ...attaching]);
    await ensureJumps(net, backend);
    // If kube-proxy moved between backends since we last ran, our rules in the other one must go.
    if (probes.otherHasChains !== false || probes.backend !== backend) await removeChains(net, backend === 'nft' ? 'legacy' : 'nft');
    // Every live pod's permanent neighbour entry (anti-ARP-spoofing), re-pinned if anything flushed it: a
    // carrier loss of the bridge, another program, or a MAC change of the bridge above.
    await this.pins.sync(net, { listPods: () => this.livePods(net) });
  }

  /**
   * Removes everything ensureNode made, and any pod veths of this bridge still left: our jump rules and
   * chains, the bridge (its /32 pod routes go with it).
   */
  teardown(net: NodeNetwork): Promise<void> {
    return this.serialized(async () => {
      this.applied = undefined;
      this.rules.forget();
      this.pins.forget();
      this.retired.forget();
      for (const b of ['nft', 'legacy'] as const) await removeChains(net, b);
      this.backend = undefined;
      const ours = (await attachedVeths(net)).map((l) => linkDelStep(l.hostVeth));
      const [br] = await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'dev', net.bridgeName]);
      const steps = [...ours, groupDelStep(retiredGroup(net.bridgeName)), ...(br ? [linkDelStep(net.bridgeName)] : [])];
      const errors = steps.length ? await ipRemove(net.hostNetns, steps) : [];
      if (errors.length) throw new DatapathError(`teardownNode ${net.bridgeName}: ${errors.join('; ')}`);
    });
  }

  /** The backend ensureNode programmed, or (if it has not run in this process) the one detected now. */
  backendFor(net: NodeNetwork): Promise<Backend> {
    return this.backend !== undefined ? Promise.resolve(this.backend) : detectBackend(net.hostNetns);
  }

  /** Marks a pod as being attached or detached for the duration of `fn` (see pod-changes.ts). */
  whileChanging<T>(hostVeth: string, change: Change, fn: () => Promise<T>): Promise<T> {
    if (change === 'detach') return this.changes.during(hostVeth, change, fn);
    return this.changes.during(hostVeth, change, async () => {
      try {
        return await fn();
      } finally {
        this.attachingRules.delete(hostVeth);
      }
    });
  }

  /** Records the `neigh` lines of a successful batch (pod.ts's ADD batch pins the pod's entry). */
  notePins(lines: readonly string[]): void {
    this.pins.note(lines);
  }

  /** The pods of this bridge that are not being detached, with the MAC their neighbour entry must carry. */
  async livePods(net: NodeNetwork): Promise<LivePod[]> {
    return (await attachedVeths(net))
      .filter((p) => !this.changes.detaching(p.hostVeth))
      .map((p) => ({ ...p, mac: podMACs(p.containerId, p.ifName).container }));
  }

  /** Adds a pod's anti-spoofing rule (plan.ts antispoofRule) unless it is there already; within whileChanging('attach'). */
  addAntispoofRule(net: NodeNetwork, pod: RulePod): Promise<void> {
    this.attachingRules.set(hostVethName(pod.containerId, pod.ifName), pod);
    return this.queueChange(net, true, pod, { rule: true, unpin: false });
  }

  /**
   * Removes a pod's anti-spoofing rule and its neighbour entry (if it still carries the pod's MAC); a rule,
   * chain or entry that is already gone is fine. `only` removes just one of them: a DEL unpins the entry
   * at once and leaves the rule for its retired veth's deletion (retired-veths.ts).
   */
  removePodProtection(net: NodeNetwork, pod: RulePod, only?: 'rule' | 'neighbour'): Promise<void> {
    return this.queueChange(net, false, pod, { rule: only !== 'neighbour', unpin: only !== 'rule' });
  }

  /** Whether the pod's anti-spoofing rule is in place (CHECK). */
  async hasAntispoofRule(net: NodeNetwork, pod: RulePod): Promise<boolean> {
    return hasAntispoofRule(net, await this.backendFor(net), pod);
  }

  /**
   * GC: removes anti-spoofing rules whose veth no longer exists, except those of pods attached or
   * detached meanwhile (an attach adds its rule alongside its veth); returns the veth names.
   */
  pruneOrphanAntispoofRules(net: NodeNetwork): Promise<string[]> {
    const since = this.changes.seq;
    return this.serialized(async () => this.rules.pruneOrphans(net, await this.backendFor(net), (veth) => this.changes.changedSince(veth, since)));
  }

  /**
   * GC of the bridge's neighbour entries: permanent entries no live pod claims are deleted and live pods'
   * missing ones pinned again.
   */
  pruneStaleNeighbours(net: NodeNetwork): Promise<void> {
    return this.serialized(() => this.pins.sync(net, { listPods: () => this.livePods(net), gcStale: true }));
  }

  /**
   * Pod rule changes are batched: every add/remove queued while the previous node-wide operation runs is
   * applied in one turn (antispoof.ts: one `iptables-restore --noflush` with only what changes), so they
   * never race with ensureNode's chain rebuild, a retried ADD never duplicates a rule, and 250 pods starting
   * together cost a few iptables transactions, not 250.
   */
  private queueChange(net: NodeNetwork, add: boolean, pod: RulePod, what: { rule: boolean; unpin: boolean }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const change: QueuedChange = { add, pod, ...what, done: (e) => (e === undefined ? resolve() : reject(e)) };
      if (this.pending) { this.pending.push(change); return; }
      this.pending = [change];
      void this.serialized(async () => {
        const batch = this.pending ?? [];
        this.pending = undefined;
        await this.applyChanges(net, batch);
      });
    });
  }

  /** Applies queued pod changes and settles each (never throws). */
  private async applyChanges(net: NodeNetwork, batch: QueuedChange[]): Promise<void> {
    const unpin = batch.filter((o) => o.unpin).map((o) => ({ ip: o.pod.ip, mac: podMACs(o.pod.containerId, o.pod.ifName).container }));
    const ruleChanges = batch.filter((o) => o.rule);
    // The neighbour entries and the rules are independent: both under this one serialized turn.
    const [rules, neighs] = await Promise.allSettled([
      ruleChanges.length ? this.backendFor(net).then((backend) => this.rules.apply(net, backend, ruleChanges)) : Promise.resolve(),
      unpin.length ? this.pins.unpin(net, unpin) : Promise.resolve(),
    ]);
    // The rules are one transaction for every change; a neighbour failure concerns only the unpinning ones.
    for (const o of batch) {
      if (o.rule && rules.status === 'rejected') o.done(rules.reason);
      else if (o.unpin && neighs.status === 'rejected') o.done(neighs.reason);
      else o.done();
    }
  }
}

async function probeBackends(net: NodeNetwork): Promise<BackendProbes> {
  try {
    const backend = await detectBackend(net.hostNetns);
    const otherHasChains = await hasChains(net, backend === 'nft' ? 'legacy' : 'nft');
    return { backend, otherHasChains };
  } catch {
    return {};
  }
}

/** The NIC must be the one holding the pod IPs; the bridge is made, or fixed where it differs. */
async function ensureBridge(net: NodeNetwork): Promise<void> {
  const ns = net.hostNetns;
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
}

const nodes = new Map<string, NodeDatapath>();

/** The NodeDatapath of a node (node namespace + bridge), made on first use and kept for the process. */
export function nodeDatapath(net: NodeNetwork): NodeDatapath {
  const key = `${net.hostNetns ?? ''}\0${net.bridgeName}`;
  let node = nodes.get(key);
  if (!node) nodes.set(key, (node = new NodeDatapath(key, net.hostNetns, net.bridgeName)));
  return node;
}

/** Sets the node up (bridge, sysctls, chains, pods' rules and entries); free once done for this NodeNetwork. */
export async function ensureNode(input: NodeNetwork, opts: { force?: boolean } = {}): Promise<void> {
  const net = parseNodeNetwork(input);
  await nodeDatapath(net).ensure(net, opts);
}

/**
 * Resolves once every veth this process's DELs retired on the node is deleted, with its rule, on the
 * normal schedule (retired-veths.ts): for callers that need the kernel clean, not
 * just the pods off the network (tests, the sandbox's checks).
 */
export async function retiredVethsDeleted(input: NodeNetwork): Promise<void> {
  await nodeDatapath(parseNodeNetwork(input)).retired.idle();
}

/** Deletes now every veth this process retired, on every node (a graceful stop leaves none waiting). */
export async function deleteRetiredVeths(): Promise<void> {
  await Promise.all([...nodes.values()].map((n) => n.retired.reapNow()));
}

/**
 * Removes everything ensureNode made (see NodeDatapath.teardown). ip_forward and bridge-nf-call-iptables
 * are left as they are: other software on the node may rely on them.
 */
export async function teardownNode(input: NodeNetwork): Promise<void> {
  const net = parseNodeNetwork(input);
  await nodeDatapath(net).teardown(net);
}
