/**
 * Reading and removing our iptables chains (node-wide; the chain contents come from plan.ts). The pods'
 * anti-spoofing rules are antispoof.ts's.
 */
import { run, runRaw, type Netns } from './exec.js';
import { type Backend, iptablesCmd, iptablesRestoreCmd } from './iptables.js';
import { iptablesChainMissing, iptablesInterrupted } from './kernel-errors.js';
import { chainNames } from './names.js';
import { chainRemoveRestore, jumpRules } from './plan.js';
import { DatapathError, type NodeNetwork } from './types.js';

/** How often an iptables write (or a listing) that lost a race with other software is tried. */
export const RESTORE_ATTEMPTS = 3;

/**
 * `iptables -S <chain>`: the listing, or undefined when the chain does not exist. A listing that lost a
 * race with a concurrent ruleset change is read again; any other failure (e.g. the xtables lock held
 * past -w) is an error, not an empty chain.
 */
export async function listChain(ns: Netns, backend: Backend, table: string, chain: string): Promise<string | undefined> {
  for (let attempt = 1; ; attempt++) {
    const r = await runRaw(ns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain]);
    if (r.code === 0) return r.stdout;
    if (iptablesChainMissing(r.stderr)) return undefined;
    if (!iptablesInterrupted(r.stderr) || attempt >= RESTORE_ATTEMPTS) {
      throw new DatapathError(`${iptablesCmd(backend)} -t ${table} -S ${chain}: ${r.stderr.trim() || `exit code ${r.code}`}`, `${iptablesCmd(backend)} -S`, r.stderr);
    }
  }
}

/** Whether one backend holds any of our chains (a backend that does not work here holds none). */
export async function hasChains(net: NodeNetwork, backend: Backend): Promise<boolean> {
  const { snat, forward, antispoof } = chainNames(net.bridgeName);
  const has = async (table: string, chain: string) =>
    (await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', table, '-S', chain])).code === 0;
  return (await has('nat', snat)) || (await has('filter', forward)) || (await has('raw', antispoof));
}

/**
 * Removes our jump rules and chains from one backend, if they are there. A backend that does not work
 * here (no legacy tables in this kernel) has nothing of ours, so its errors are ignored.
 */
export async function removeChains(net: NodeNetwork, backend: Backend): Promise<void> {
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

/** Adds each jump rule to our chains that is missing (`-C`, then `-A`). */
export async function ensureJumps(net: NodeNetwork, backend: Backend): Promise<void> {
  for (const j of jumpRules(net)) {
    const present = await runRaw(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-C', j.chain, ...j.spec]);
    if (present.code !== 0) await run(net.hostNetns, [iptablesCmd(backend), '-w', '5', '-t', j.table, '-A', j.chain, ...j.spec]);
  }
}
