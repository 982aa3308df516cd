/**
 * Which iptables backend to program: the one kube-proxy uses on this node, so that our chains and its
 * chains live in the same ruleset (rules in the other backend would still run, but in an order nobody
 * chose). Same detection as kube-proxy's iptables wrapper: kubelet's marker chains (KUBE-IPTABLES-HINT,
 * KUBE-KUBELET-CANARY in mangle) say which backend is in use; without them, the system default
 * (`iptables` alternative: nf_tables on Debian 12). PODVNET_IPTABLES_BACKEND=nft|legacy overrides.
 *
 * iptables-legacy needs CAP_NET_RAW (it talks to the kernel through a raw socket), iptables-nft only
 * CAP_NET_ADMIN (netlink). Without CAP_NET_RAW the legacy probe is refused rather than empty; taking that
 * for "no hint" would silently program nft on a node whose kube-proxy uses legacy, so it is an error.
 */
import { runRaw, type Netns } from './exec.js';
import { DatapathError } from './types.js';

export type Backend = 'nft' | 'legacy';

export const iptablesCmd = (b: Backend): string => `iptables-${b}`;
export const iptablesRestoreCmd = (b: Backend): string => `iptables-${b}-restore`;

const DETECT = [
  'for b in nft legacy; do for c in KUBE-IPTABLES-HINT KUBE-KUBELET-CANARY; do',
  '  if err=$(iptables-$b -w 5 -t mangle -S $c 2>&1 >/dev/null); then echo "hint $b"; exit 0; fi',
  '  case $err in *"Permission denied"*) echo "denied $b";; esac',
  'done; done',
  'iptables --version',
].join('\n');

/** Parses the detection script's output (pure, for tests). */
export function parseBackend(output: string, override?: string): Backend {
  if (override === 'nft' || override === 'legacy') return override;
  const hint = /^hint (nft|legacy)$/m.exec(output);
  if (hint) return hint[1] as Backend;
  const denied = /^denied (nft|legacy)$/m.exec(output);
  if (denied) {
    throw new DatapathError(`cannot tell which iptables backend kube-proxy uses: reading the ${denied[1]} tables was refused` +
      ` (iptables-${denied[1]} needs ${denied[1] === 'legacy' ? 'CAP_NET_ADMIN and CAP_NET_RAW' : 'CAP_NET_ADMIN'})`);
  }
  return /\(legacy\)/.test(output) ? 'legacy' : 'nft';
}

export async function detectBackend(ns: Netns): Promise<Backend> {
  const override = process.env.PODVNET_IPTABLES_BACKEND;
  if (override === 'nft' || override === 'legacy') return override;
  const r = await runRaw(ns, ['sh', '-c', DETECT]);
  return parseBackend(r.stdout);
}
