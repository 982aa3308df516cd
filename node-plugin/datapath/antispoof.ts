/**
 * The pods' anti-spoofing rules in raw/PODVNET-SRC (one DROP per pod: its host veth, any source but its
 * own IP; see README "Anti-spoofing"). One AntispoofRules per node (node-datapath.ts); its writes run under
 * the node's serialization, so they never race with ensureNode's chain rebuild.
 */
import { ipJSON, nftAppendAntispoof, run, runRaw } from './exec.js';
import { listChain, RESTORE_ATTEMPTS } from './chains.js';
import { type Backend, iptablesCmd, iptablesRestoreCmd } from './iptables.js';
import type { LinkInfo, VethPod } from './links.js';
import type { AntispoofRule } from './netlink-helper.js';
import { chainNames, hostVethName } from './names.js';
import { antispoofRule, chainRestore } from './plan.js';
import { DatapathError, type NodeNetwork, type PodInterface } from './types.js';

export type RulePod = Pick<PodInterface, 'containerId' | 'ifName' | 'ip'>;
/** add: the pod's rule goes in; otherwise it goes. */
export interface RuleChange { add: boolean; pod: RulePod }

/** (veth, source) pairs of the DROP rules in an `iptables -S` listing; -S orders a rule's matches its own way. */
export function ruledPairs(listing: string): Set<string> {
  const out = new Set<string>();
  for (const l of listing.split('\n')) {
    const veth = /--physdev-in (\S+)/.exec(l)?.[1];
    const src = /! -s (\S+)/.exec(l)?.[1];
    if (veth && src && / -j DROP\b/.test(l)) out.add(`${veth} ${src}`);
  }
  return out;
}

/** Whether the pod's anti-spoofing rule is in place (CHECK). */
export async function hasAntispoofRule(net: NodeNetwork, backend: Backend, pod: RulePod): Promise<boolean> {
  const { antispoof } = chainNames(net.bridgeName);
  const r = await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', 'raw', '-C', antispoof, ...antispoofRule(pod)]);
  return r.code === 0;
}

/**
 * Appends through the netlink helper: 'appended' (committed), 'not' (nothing changed: the helper is off,
 * could not carry the request, or the kernel refused it, e.g. a missing chain) or 'unknown' (the helper
 * died while running it).
 */
async function appendByHelper(net: NodeNetwork, chain: string, adds: AntispoofRule[]): Promise<'appended' | 'not' | 'unknown'> {
  const pending = nftAppendAntispoof(net.hostNetns, chain, adds);
  if (!pending) return 'not';
  try {
    const a = await pending;
    return a.kind === 'done' && a.code === 0 ? 'appended' : 'not';
  } catch {
    return 'unknown';
  }
}

export class AntispoofRules {
  /**
   * The (veth, source) pairs of the chain as this process last wrote or read them. It lets a batch of rule
   * changes skip reading the chain (`iptables -S`, a whole process and, on nft, a ruleset dump) when
   * nothing is surprising: an add of a rule not known, a removal of one known. Anything else (a retried
   * ADD, a removal of a rule this process never saw, a write that failed because the chain changed under
   * us) reads the chain as before and starts the model again from that reading.
   */
  private known: Set<string> | undefined;

  forget(): void {
    this.known = undefined;
  }

  /** Declares our chains afresh (ensureNode) with a rule for every pod attached now. */
  async rebuild(net: NodeNetwork, backend: Backend, podsNow: VethPod[]): Promise<void> {
    this.known = undefined;
    await run(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], chainRestore(net, podsNow));
    this.known = new Set(podsNow.map((p) => `${p.hostVeth} ${p.ip}/32`));
  }

  /**
   * The rule changes: what is there is read (unless the model covers them), only what differs is written.
   * If the write fails, the chain is read again and the difference retried: a rule that other software
   * removed in between is then simply not removed again; a real error fails every attempt and is thrown.
   *
   * A batch of adds only, on nft, that the model covers is appended by the netlink helper (one nf_tables
   * transaction, no process: see README "Anti-spoofing"); whatever it cannot do goes the usual way.
   */
  async apply(net: NodeNetwork, backend: Backend, changes: RuleChange[]): Promise<void> {
    const { antispoof } = chainNames(net.bridgeName);
    const pair = (o: RuleChange) => `${hostVethName(o.pod.containerId, o.pod.ifName)} ${o.pod.ip}/32`;
    for (let attempt = 1; ; attempt++) {
      const known = attempt === 1 ? this.known : undefined;
      const trusted = known !== undefined && changes.every((o) => o.add !== known.has(pair(o)));
      this.known = undefined; // unknown until this write is known to have landed
      const listing = trusted ? '' : await listChain(net.hostNetns, backend, 'raw', antispoof);
      const present = trusted ? new Set(known) : listing === undefined ? new Set<string>() : ruledPairs(listing);
      const lines: string[] = [];
      const adds: AntispoofRule[] = [];
      for (const o of changes) {
        const k = pair(o);
        if (o.add && !present.has(k)) {
          lines.push(`-A ${antispoof} ${antispoofRule(o.pod).join(' ')}`);
          adds.push({ veth: hostVethName(o.pod.containerId, o.pod.ifName), ip: o.pod.ip });
          present.add(k);
        }
        if (!o.add && present.has(k)) { lines.push(`-D ${antispoof} ${antispoofRule(o.pod).join(' ')}`); present.delete(k); }
      }
      if (!lines.length) { if (listing !== undefined) this.known = present; return; }
      if (listing === undefined) throw new DatapathError(`iptables chain raw/${antispoof} is missing: run ensureNode`);
      if (trusted && backend === 'nft' && changes.every((o) => o.add)) {
        const out = await appendByHelper(net, antispoof, adds);
        if (out === 'appended') { this.known = present; return; }
        // The helper died during the transaction, which may have committed: read the chain (next attempt).
        if (out === 'unknown') continue;
      }
      const r = await runRaw(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], ['*raw', ...lines, 'COMMIT'].join('\n') + '\n');
      if (r.code === 0) { this.known = present; return; }
      // A trusted model that was wrong (the chain was flushed or changed by others) costs one more round.
      if (trusted) { attempt--; continue; }
      if (attempt >= RESTORE_ATTEMPTS) {
        throw new DatapathError(`${iptablesRestoreCmd(backend)} (raw/${antispoof}): ${r.stderr.trim() || `exit code ${r.code}`}`, iptablesRestoreCmd(backend), r.stderr);
      }
    }
  }

  /**
   * GC: removes rules whose veth no longer exists, unless `inFlux` says its pod is being attached or
   * detached (an attach adds the rule alongside the veth, so for a moment the rule may come first). Rules
   * are read before veths. Returns the veth names.
   */
  async pruneOrphans(net: NodeNetwork, backend: Backend, inFlux: (veth: string) => boolean = () => false): Promise<string[]> {
    const { antispoof } = chainNames(net.bridgeName);
    for (let attempt = 1; ; attempt++) {
      const listing = await listChain(net.hostNetns, backend, 'raw', antispoof);
      if (listing === undefined) return [];
      const veths = new Set((await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'type', 'veth'])).map((l) => l.ifname));
      const orphans = listing.split('\n').filter((l) => l.startsWith(`-A ${antispoof} `))
        .map((l) => ({ line: l, veth: /--physdev-in (\S+)/.exec(l)?.[1] }))
        .filter((o): o is { line: string; veth: string } => o.veth !== undefined && !veths.has(o.veth) && !inFlux(o.veth));
      if (!orphans.length) return [];
      const restore = ['*raw', ...orphans.map((o) => o.line.replace(/^-A /, '-D ')), 'COMMIT'].join('\n') + '\n';
      this.known = undefined; // the next batch reads the chain
      const r = await runRaw(net.hostNetns, [iptablesRestoreCmd(backend), '-w', '5', '--noflush'], restore);
      if (r.code === 0) return orphans.map((o) => o.veth);
      // Read again: another program may have removed some of them meanwhile (a real error fails every time).
      if (attempt >= RESTORE_ATTEMPTS) {
        throw new DatapathError(`${iptablesRestoreCmd(backend)} (raw/${antispoof}): ${r.stderr.trim() || `exit code ${r.code}`}`, iptablesRestoreCmd(backend), r.stderr);
      }
    }
  }
}
