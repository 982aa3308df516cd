/**
 * br_netfilter: its sysctls exist only when the module is loaded (or built in). Without it, a pod talking
 * to a Service whose endpoint is on the same bridge gets replies that skip the Service's reverse NAT.
 */
import { readFileSync } from 'node:fs';
import { runRaw, type Netns } from './exec.js';
import { readSysctls } from './sysctl.js';
import { DatapathError } from './types.js';

export const BR_NF_KEY = 'net/bridge/bridge-nf-call-iptables';

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

/**
 * Makes sure br_netfilter is there. If it is missing and this process may load modules (root on a plain
 * Docker host), try modprobe once. The DaemonSet's agent may not (no CAP_SYS_MODULE): its init container
 * loads it, and an attempt here could only fail, so the error says where to look instead.
 */
export async function ensureBrNetfilter(ns: Netns, root: string): Promise<void> {
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
