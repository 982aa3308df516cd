import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentAddressService } from './address-service.js';

/** The agent's Prometheus metrics and its localhost /healthz, /readyz and /metrics endpoint. */

export interface AgentMetrics {
  registry: Registry;
  cniRequests: Counter<'command' | 'code'>;
  cniDuration: Histogram<'command'>;
  specWrites: Counter;
}

/** `nodeProblems`: the node network's current problems (nodeDiagnostics), read at scrape time. */
export function createMetrics(addresses: AgentAddressService, nodeProblems?: () => Promise<string[] | undefined>): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'podvnet_agent_' });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  gauge('podvnet_agent_pool_ips', 'Addresses the node\'s NIC holds for pods: its secondary IPs, in Block mode every address of its /28 blocks too.', () => addresses.podAddresses().length);
  gauge('podvnet_agent_allocated_ips', 'IPs held by pods and containers.', () => addresses.demand().usedIPs);
  gauge('podvnet_agent_free_ips', 'IPs that can be handed out now.', () => addresses.freeCount());
  gauge('podvnet_agent_released_ips', 'IPs given back, waiting for the controller to remove them.', () => addresses.releasedIPs().length);
  gauge('podvnet_agent_record_present', 'Whether the node has a NodeIPAllocation (0: no NodeIPPool selects it, or not read yet).', () => (addresses.recordPresence() === 'present' ? 1 : 0));
  if (nodeProblems) {
    new Gauge({
      name: 'podvnet_agent_node_network_problems',
      help: 'Problems found in the node network (bridge, sysctls, iptables chains and jumps); 0 when healthy or not set up yet.',
      registers: [registry],
      async collect() {
        this.set((await nodeProblems().catch(() => undefined))?.length ?? 0);
      },
    });
  }
  gauge('podvnet_agent_pending_ips', 'Pod set-ups that recently found no free IP.', () => addresses.demand().pendingIPs);
  return {
    registry,
    cniRequests: new Counter({ name: 'podvnet_agent_cni_requests_total', help: 'CNI requests by command and result code (0 = success).', labelNames: ['command', 'code'], registers: [registry] }),
    cniDuration: new Histogram({
      name: 'podvnet_agent_cni_request_duration_seconds',
      help: 'Time the agent spent on a CNI request.',
      labelNames: ['command'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    specWrites: new Counter({ name: 'podvnet_agent_spec_writes_total', help: 'Writes of spec.demand/spec.releasedIPs to the node\'s record.', registers: [registry] }),
  };
}

/** `podvnet_agent_ready`: what /readyz answers, at scrape time (the PodVNetAgentNotReady alert reads it). */
export function exportReadiness(metrics: AgentMetrics, ready: () => Promise<Readiness>): void {
  new Gauge({
    name: 'podvnet_agent_ready', help: '1 while the agent is ready (what /readyz answers): its node network set up and its record served.',
    registers: [metrics.registry],
    async collect() { this.set((await ready().catch(() => ({ ready: false }))).ready ? 1 : 0); },
  });
}

/** A readiness verdict: `detail` says why not ready, or qualifies a ready answer. */
export interface Readiness {
  ready: boolean;
  detail?: string;
}

export function startHealthServer(address: string, metrics: AgentMetrics, checks: { live: () => boolean; ready: () => Promise<Readiness> }): Promise<http.Server> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      const ok = checks.live();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not live\n');
    } else if (url === '/readyz') {
      checks.ready().then(
        (r) =>
          res
            .writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' })
            .end(r.ready ? `ok${r.detail ? `: ${r.detail}` : ''}\n` : `not ready: ${r.detail ?? 'unknown'}\n`),
        (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: readiness check failed: ${err.message}\n`),
      );
    } else if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
