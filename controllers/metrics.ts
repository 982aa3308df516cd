import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The controller's Prometheus metrics, on a registry of its own (tests make one each). */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'podvnet_controller_' });
  const m = {
    registry,
    azureCalls: new Counter({
      name: 'podvnet_azure_calls_total', help: 'Azure ARM calls by operation, read/write and result (ok or the failure kind).',
      labelNames: ['operation', 'kind', 'result'] as const, registers: [registry],
    }),
    azureCallSeconds: new Histogram({
      name: 'podvnet_azure_call_duration_seconds', help: 'Azure ARM call latency, long-running operations included.',
      labelNames: ['operation'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: [registry],
    }),
    throttles: new Counter({ name: 'podvnet_azure_throttled_total', help: '429 answers that paused a subscription.', registers: [registry] }),
    allocationSeconds: new Histogram({
      name: 'podvnet_ip_allocation_duration_seconds',
      help: 'From seeing a node short of IPs to Azure confirming the added ip-configs.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600], registers: [registry],
    }),
    ipConfigChanges: new Counter({
      name: 'podvnet_ip_configs_changed_total', help: 'ip-configs added or removed on NICs.', labelNames: ['change'] as const, registers: [registry],
    }),
    reconciles: new Counter({
      name: 'podvnet_reconciles_total', help: 'Reconcile runs by object kind and outcome.', labelNames: ['kind', 'result'] as const, registers: [registry],
    }),
    poolNodes: new Gauge({ name: 'podvnet_pool_nodes', help: 'Nodes a pool serves.', labelNames: ['pool'] as const, registers: [registry] }),
    poolIPs: new Gauge({
      name: 'podvnet_pool_ips', help: 'IPs of a pool by state: allocated (on NICs), used (by pods), released (awaiting removal).',
      labelNames: ['pool', 'state'] as const, registers: [registry],
    }),
    nodeIPs: new Gauge({
      name: 'podvnet_node_ips', help: 'IPs of one node by state: allocated (on its NIC), target (what the scaling policy wants), used (by pods), pending (pods that found none free), released (awaiting removal).',
      labelNames: ['pool', 'node', 'state'] as const, registers: [registry],
    }),
    nodeCapped: new Gauge({
      name: 'podvnet_node_demand_capped', help: '1 while a node\'s demand exceeds what its pool\'s ipsPerNode.max (or the NIC\'s 256 ip-configs) allow.',
      labelNames: ['pool', 'node'] as const, registers: [registry],
    }),
    poolMaxIPsPerNode: new Gauge({ name: 'podvnet_pool_max_ips_per_node', help: 'The pool\'s ipsPerNode.max.', labelNames: ['pool'] as const, registers: [registry] }),
    subnetSize: new Gauge({
      name: 'podvnet_subnet_usable_ips', help: 'Addresses of the pool subnet Azure lets ip-configs use (its size less the 5 Azure keeps).',
      labelNames: ['pool', 'subnet'] as const, registers: [registry],
    }),
    subnetFree: new Gauge({
      name: 'podvnet_subnet_free_ips', help: 'Free addresses in the pool subnet: the last subnet read, less the adds and plus the removes of this controller since.',
      labelNames: ['pool', 'subnet'] as const, registers: [registry],
    }),
    queueDepth: new Gauge({ name: 'podvnet_workqueue_depth', help: 'Keys waiting in the work queue.', registers: [registry] }),
    leader: new Gauge({ name: 'podvnet_leader', help: '1 while this replica holds the leader lease.', registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Counts each Azure call the adapter reports (azure.ts's observer): calls, durations, throttles. */
export function azureCallObserver(metrics: Metrics): (c: { operation: string; kind: string; result: string; ms: number }) => void {
  return (c) => {
    metrics.azureCalls.inc({ operation: c.operation, kind: c.kind, result: c.result });
    metrics.azureCallSeconds.observe({ operation: c.operation }, c.ms / 1000);
    if (c.result === 'Throttled') metrics.throttles.inc();
  };
}
