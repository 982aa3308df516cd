import { ipToInt } from '../../../crds/ipv4.js';
import { targetIPs, type ScalingPolicy } from '../../../crds/scaling.js';

/**
 * Allocation policy as pure functions of plain data: which IP to hand out next, which free IPs to give
 * back. Deterministic (lowest address first for hand-out, highest first for release) so tests and
 * restarts agree on what happens.
 */

export interface PoolView {
  /** IPs the node's NIC holds for pods (NodeIPAllocation status.ips). */
  poolIPs: readonly string[];
  /** IPs held by an owner. */
  allocated: ReadonlySet<string>;
  /** IPs the agent has promised never to hand out again. */
  released: ReadonlySet<string>;
  /** Freed IPs and the time (ms) until which they must not be reused. */
  cooldown: ReadonlyMap<string, number>;
  now: number;
}

const byAddress = (a: string, b: string) => ipToInt(a) - ipToInt(b);

/** IPs that may be handed out right now, lowest first. */
export function availableIPs(view: PoolView): string[] {
  return view.poolIPs
    .filter((ip) => !view.allocated.has(ip) && !view.released.has(ip) && (view.cooldown.get(ip) ?? 0) <= view.now)
    .sort(byAddress);
}

/** The next IP to hand out, or undefined when none is free. */
export function pickAddress(view: PoolView): string | undefined {
  let best: string | undefined;
  let bestN = Infinity;
  for (const ip of view.poolIPs) {
    if (view.allocated.has(ip) || view.released.has(ip) || (view.cooldown.get(ip) ?? 0) > view.now) continue;
    const n = ipToInt(ip);
    if (n < bestN) {
      best = ip;
      bestN = n;
    }
  }
  return best;
}

/** Cooldown entries that have expired, or whose IP left the pool, are dropped. */
export function pruneCooldown(cooldown: ReadonlyMap<string, number>, poolIPs: readonly string[], now: number): Map<string, number> {
  const inPool = new Set(poolIPs);
  return new Map([...cooldown].filter(([ip, until]) => until > now && inPool.has(ip)));
}

/** Released IPs stay listed until the controller has removed them from the NIC (handshake). */
export function pruneReleased(released: ReadonlySet<string>, poolIPs: readonly string[]): Set<string> {
  const inPool = new Set(poolIPs);
  return new Set([...released].filter((ip) => inPool.has(ip)));
}

export interface ReleaseInput extends PoolView {
  pending: number;
  min: number;
  max: number;
  policy: ScalingPolicy;
}

/**
 * Free IPs to give back now, using the controller's own scaling math so the two agree: when the target
 * is below what is usable, release the difference, highest addresses first, never one that is held.
 */
export function chooseReleases(input: ReleaseInput): string[] {
  const usableIPs = input.poolIPs.filter((ip) => !input.released.has(ip));
  const used = usableIPs.filter((ip) => input.allocated.has(ip)).length;
  const decision = targetIPs({
    usable: usableIPs.length,
    used,
    pending: input.pending,
    min: input.min,
    max: input.max,
    policy: input.policy,
  });
  const excess = usableIPs.length - decision.target;
  if (excess <= 0) return [];
  const free = usableIPs.filter((ip) => !input.allocated.has(ip)).sort(byAddress).reverse();
  return free.slice(0, excess);
}
