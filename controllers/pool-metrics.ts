import { conditionOf } from './status.js';
import type { Metrics } from './metrics.js';

/**
 * Per-node and per-subnet gauges for the dashboards and alerts (deploy/monitoring/): what each node of a
 * pool holds, aims at, uses and waits for, whether its demand is capped by ipsPerNode.max, and the pool
 * subnet's headroom. Set from the controller's caches on every pool round; series of nodes that left the
 * pool are removed, so a dashboard does not draw a departed node's last value for ever.
 */

export interface NodeFigures {
  node: string;
  allocated: number;
  target: number;
  used: number;
  pending: number;
  released: number;
  /** Demand exceeds what ipsPerNode.max (and the NIC) allow: the record's Ready reason is AtLimit. */
  capped: boolean;
}

export const NODE_IP_STATES = ['allocated', 'target', 'used', 'pending', 'released'] as const;

/** A record as the controller caches it, reduced to the numbers the gauges show. */
export function nodeFigures(r: {
  metadata: { name: string };
  spec: { demand?: { usedIPs: number; pendingIPs: number } | undefined; releasedIPs: string[] };
  status?: { allocatedIPs?: number | undefined; targetIPs?: number | undefined; ips?: Array<{ ip: string }> | undefined; conditions?: Parameters<typeof conditionOf>[0] } | undefined;
}): NodeFigures {
  const onNic = new Set((r.status?.ips ?? []).map((i) => i.ip));
  return {
    node: r.metadata.name,
    allocated: r.status?.allocatedIPs ?? onNic.size,
    target: r.status?.targetIPs ?? 0,
    used: r.spec.demand?.usedIPs ?? 0,
    pending: r.spec.demand?.pendingIPs ?? 0,
    released: r.spec.releasedIPs.filter((ip) => onNic.has(ip)).length,
    capped: conditionOf(r.status?.conditions, 'Ready')?.reason === 'AtLimit',
  };
}

/** Usable addresses of a subnet: Azure keeps five of every subnet for itself. */
export function usableAddresses(cidr: string): number | undefined {
  const m = /\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const bits = Number(m[1]);
  return bits > 29 ? undefined : 2 ** (32 - bits) - 5;
}

export class PoolGauges {
  private readonly nodesOf = new Map<string, Set<string>>();
  private readonly subnetOf = new Map<string, string>();

  constructor(private readonly metrics: Metrics) {}

  set(pool: string, maxPerNode: number, nodes: readonly NodeFigures[], subnet?: { name: string; addressPrefix?: string | undefined; free?: number | undefined }): void {
    const m = this.metrics;
    const now = new Set(nodes.map((n) => n.node));
    for (const gone of this.nodesOf.get(pool) ?? []) if (!now.has(gone)) this.removeNode(pool, gone);
    this.nodesOf.set(pool, now);
    for (const n of nodes) {
      for (const state of NODE_IP_STATES) m.nodeIPs.set({ pool, node: n.node, state }, n[state]);
      m.nodeCapped.set({ pool, node: n.node }, n.capped ? 1 : 0);
    }
    m.poolMaxIPsPerNode.set({ pool }, maxPerNode);
    if (subnet) {
      this.subnetOf.set(pool, subnet.name);
      const size = subnet.addressPrefix ? usableAddresses(subnet.addressPrefix) : undefined;
      if (size !== undefined) m.subnetSize.set({ pool, subnet: subnet.name }, size);
      if (subnet.free !== undefined) m.subnetFree.set({ pool, subnet: subnet.name }, Math.max(0, subnet.free));
    }
  }

  forget(pool: string): void {
    for (const n of this.nodesOf.get(pool) ?? []) this.removeNode(pool, n);
    this.nodesOf.delete(pool);
    this.metrics.poolMaxIPsPerNode.remove({ pool });
    const subnet = this.subnetOf.get(pool);
    if (subnet !== undefined) {
      this.metrics.subnetSize.remove({ pool, subnet });
      this.metrics.subnetFree.remove({ pool, subnet });
      this.subnetOf.delete(pool);
    }
  }

  private removeNode(pool: string, node: string): void {
    for (const state of NODE_IP_STATES) this.metrics.nodeIPs.remove({ pool, node, state });
    this.metrics.nodeCapped.remove({ pool, node });
  }
}
