/**
 * Which iptables backend to program: the one kube-proxy uses on this node, so that our chains and its
 * chains live in the same ruleset (rules in the other backend would still run, but in an order nobody
 * chose). Same detection as kube-proxy's iptables wrapper: kubelet's marker chains (KUBE-IPTABLES-HINT,
 * KUBE-KUBELET-CANARY in mangle) say which backend is in use; without them, the system default
 * (`iptables` alternative: nf_tables on Debian 12). PODVNET_IPTABLES_BACKEND=nft|legacy overrides.
 */
import { runRaw, type Netns } from './exec.js';

export type Backend = 'nft' | 'legacy';

export const iptablesCmd = (b: Backend): string => `iptables-${b}`;
export const iptablesRestoreCmd = (b: Backend): string => `iptables-${b}-restore`;

const DETECT = [
  'for b in nft legacy; do for c in KUBE-IPTABLES-HINT KUBE-KUBELET-CANARY; do',
  '  iptables-$b -w 5 -t mangle -S $c >/dev/null 2>&1 && { echo "hint $b"; exit 0; }',
  'done; done',
  'iptables --version',
].join('\n');

/** Parses the detection script's output (pure, for tests). */
export function parseBackend(output: string, override?: string): Backend {
  if (override === 'nft' || override === 'legacy') return override;
  const hint = /^hint (nft|legacy)$/m.exec(output);
  if (hint) return hint[1] as Backend;
  return /\(legacy\)/.test(output) ? 'legacy' : 'nft';
}

export async function detectBackend(ns: Netns): Promise<Backend> {
  const override = process.env.PODVNET_IPTABLES_BACKEND;
  if (override === 'nft' || override === 'legacy') return override;
  const r = await runRaw(ns, ['sh', '-c', DETECT]);
  return parseBackend(r.stdout);
}
