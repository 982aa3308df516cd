import type { Allocation } from './ipam/store.js';

/**
 * Start-up reconciliation as a pure decision: compare the stored allocations with what the kernel has
 * (the datapath's attachments) and what the runtime has (which netns paths still exist). An IP is freed
 * only with proof its pod is gone: no attachment of ours remains and its network namespace no longer
 * exists. Attachments the store does not know (a crash between kernel work and the state write, or a lost
 * state file) are adopted, so their IP is never handed out twice. A DEL the per-pod executable queued
 * while the agent was down (and that could not be applied yet) is proof too: the runtime is done with
 * that container, so it is freed once nothing of it is left in the kernel, and never adopted.
 */

export interface KernelAttachment {
  containerId: string;
  ifName: string;
  ip?: string | undefined;
}

export interface ReconcileInput {
  allocations: readonly Allocation[];
  attachments: readonly KernelAttachment[];
  /** For each netnsPath of a stored allocation: does it still exist? */
  netnsExists: ReadonlyMap<string, boolean>;
  /** IPs the node's NIC holds for pods: an adopted IP must be one of them. */
  poolIPs: readonly string[];
  now: number;
  /** `containerId/ifName` of DELs still in the queue (node-plugin/agent/del-queue.ts). */
  queuedDels?: ReadonlySet<string>;
}

export interface ReconcilePlan {
  keep: Allocation[];
  /** Pods that are provably gone: release their IPs. */
  free: Allocation[];
  /** Attachments found in the kernel that the store lacks. */
  adopt: Allocation[];
  /** Things that need a human or GC: described, not acted on. */
  conflicts: string[];
}

const key = (a: { containerId: string; ifName: string }) => `${a.containerId}/${a.ifName}`;

export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const attached = new Map(input.attachments.map((a) => [key(a), a]));
  const plan: ReconcilePlan = { keep: [], free: [], adopt: [], conflicts: [] };
  const heldIPs = new Map<string, string>();
  const queued = input.queuedDels ?? new Set<string>();

  for (const a of input.allocations) {
    const att = attached.get(key(a));
    const netnsGone = a.netnsPath !== undefined && input.netnsExists.get(a.netnsPath) === false;
    if (a.runtime === 'cni' && !att && (netnsGone || queued.has(key(a)))) {
      plan.free.push(a);
      continue;
    }
    if (att && queued.has(key(a))) plan.conflicts.push(`${key(a)} has a queued DEL but its interface is still there; the queued DEL is retried`);
    if (att?.ip && att.ip !== a.ip) {
      plan.conflicts.push(`${key(a)} holds ${a.ip} in the store but its interface carries ${att.ip}`);
    }
    plan.keep.push(a);
    heldIPs.set(a.ip, key(a));
  }

  const pool = new Set(input.poolIPs);
  for (const att of input.attachments) {
    if (input.allocations.some((a) => key(a) === key(att))) continue;
    if (queued.has(key(att))) {
      plan.conflicts.push(`${key(att)} has an interface the store lacks and a queued DEL; not adopted, the queued DEL is retried`);
      continue;
    }
    if (!att.ip) {
      plan.conflicts.push(`${key(att)} has an interface but no address the agent knows; GC will remove it`);
      continue;
    }
    const holder = heldIPs.get(att.ip);
    if (holder) {
      plan.conflicts.push(`${key(att)} carries ${att.ip}, which the store gives to ${holder}`);
      continue;
    }
    if (!pool.has(att.ip)) {
      plan.conflicts.push(`${key(att)} carries ${att.ip}, which is not among the node's IPs`);
      continue;
    }
    const adopted: Allocation = { containerId: att.containerId, ifName: att.ifName, runtime: 'cni', ip: att.ip, assignedAt: input.now };
    plan.adopt.push(adopted);
    heldIPs.set(att.ip, key(att));
  }
  return plan;
}

/**
 * Allocations kept only because their host veth is still there although their namespace is gone. The
 * kernel destroys a deleted namespace, and the veth pair with it, asynchronously: these deserve another
 * look a moment later rather than being held until a GC.
 */
export function awaitingVethTeardown(input: ReconcileInput): Allocation[] {
  const attached = new Set(input.attachments.map(key));
  return input.allocations.filter((a) => a.runtime === 'cni' && attached.has(key(a)) && a.netnsPath && input.netnsExists.get(a.netnsPath) === false);
}
