/**
 * Cold burst: N pods arrive at once on a node holding only its pool's minimum of IPs. Everything real but
 * Azure and the API server (both emulated): the controller (controllers/harness.ts), the Azure emulator
 * with its default long-running-operation latency (async mode, its default asyncDurationMs), the node
 * agent (in this process, reading and writing its NodeIPAllocation through the API), the C forwarder and
 * the datapath on a simulated VM whose NIC MAC is the emulated NIC's. Pods that get "try again" (code 11:
 * no free IP yet) retry like kubelet does, after a short pause.
 *
 * Printed against the bounds: NIC writes used vs ceil(needed / batch) (one write per round), and the time
 * until every pod has its IP vs rounds x one NIC write's latency (measured in this run, the controller's
 * nic.put calls) + the agent's sync interval (how long its demand may wait before it is written). Root.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/cold-burst.ts [--pods 250] [--min 16] [--batch 16]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { z } from 'zod';
import { startWorld, waitFor } from '../../controllers/testing/harness.js';
import { defaultConfig } from '../azure-emulator/config.js';
import { createFabric } from '../../node-plugin/datapath/fabric-sim.js';
import { startAgent } from '../../node-plugin/agent/agent.js';
import { parseAgentConfig } from '../../node-plugin/agent/config.js';
import { buildForwarder, FORWARDER, invokePlugin } from '../../node-plugin/agent/testing.js';

const raw = parseArgs({ options: { pods: { type: 'string', default: '250' }, min: { type: 'string', default: '16' }, batch: { type: 'string', default: '16' }, 'sync-ms': { type: 'string', default: '1000' } } }).values;
const opts = z.object({
  pods: z.coerce.number().int().min(1).max(250),
  min: z.coerce.number().int().min(0).max(250),
  batch: z.coerce.number().int().min(1).max(250),
  syncMs: z.coerce.number().int().min(10),
}).parse({ pods: raw.pods, min: raw.min, batch: raw.batch, syncMs: raw['sync-ms'] });

const azureDefaults = defaultConfig();
await buildForwarder();
const w = await startWorld({
  scenario: { vnets: [{ name: 'burst-vnet', addressPrefixes: ['10.60.0.0/16'], subnets: [{ name: 'nodes', addressPrefix: '10.60.0.0/20' }] }], vms: [{ count: 1 }] },
  nodeLabels: () => ({ 'podvnet.io/burst': 'yes' }),
  azureConfig: { mode: 'async', asyncDurationMs: azureDefaults.asyncDurationMs },
});
const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-burst-'));
const node = w.nodes[0]!;
const fabric = await createFabric({ vnetPrefixes: ['10.60.0.0/16'], subnets: ['10.60.0.0/20'] });
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
try {
  const vm = await fabric.addVM({ name: 'burst', mac: node.macAddress.toLowerCase().replace(/-/g, ':'), primaryIP: node.primaryIP });
  const kubeconfig = w.kube.kubeconfigPath;
  const subnetID = Object.values(w.subnets)[0]!;
  await w.createPool('burst', {
    nodeSelector: { matchLabels: { 'podvnet.io/burst': 'yes' } },
    subnetID,
    ipsPerNode: { min: opts.min, max: 250 },
    scaling: { batchSize: opts.batch },
  });
  // The node holds its minimum (what an idle node of this pool has) before the pods come.
  await waitFor('the node to hold the pool minimum', async () => ((await w.record(node.nodeName))?.status?.ips?.length ?? 0) >= opts.min, 120_000, 50);
  const socket = path.join(dir, 'agent.sock');
  const config = parseAgentConfig([
    `--node-name=${node.nodeName}`, `--socket=${socket}`, '--cnm-socket=', `--state-dir=${path.join(dir, 'state')}`, `--kubeconfig=${kubeconfig}`,
    '--host-interface=eth0', `--host-netns=${vm.netnsPath}`, '--cooldown-ms=0', `--sync-interval-ms=${opts.syncMs}`,
    '--metrics-address=127.0.0.1:0', '--log-level=silent',
  ], {});
  agent = await startAgent(config, { logger: pino({ level: 'silent' }) });
  await agent.reconciled;
  const held = (await w.record(node.nodeName))?.status?.ips?.length ?? 0;
  const pods = await Promise.all(Array.from({ length: opts.pods }, (_, i) => fabric.addNetns(`cb${i}-`).then((ns) => `/run/netns/${ns}`)));
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'podvnet', type: 'podvnet-cni', agentSocket: socket });
  const writesBefore = w.azure.calls().byKind['nic.put'] ?? 0;
  const putsBefore = await nicPutSeconds();

  const start = Date.now();
  let tryAgains = 0;
  const addOne = async (i: number): Promise<number> => {
    for (;;) {
      const r = await invokePlugin(FORWARDER, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `burst-${i}`, CNI_NETNS: pods[i]!, CNI_IFNAME: 'eth0', CNI_PATH: path.dirname(FORWARDER) }, conf);
      if (r.code === 0) return Date.now() - start;
      if (r.json?.code !== 11) throw new Error(`ADD of pod ${i} failed: ${r.stdout}${r.stderr}`);
      tryAgains++;
      if (Date.now() - start > 600_000) throw new Error(`pod ${i} had no IP after 10 minutes: ${r.json?.msg}`);
      await new Promise((res) => setTimeout(res, 200)); // kubelet retries a failed sandbox after a pause
    }
  };
  const doneAt = await Promise.all(pods.map((_, i) => addOne(i)));
  const allSeconds = Math.max(...doneAt) / 1000;
  const writes = (w.azure.calls().byKind['nic.put'] ?? 0) - writesBefore;
  const putsAfter = await nicPutSeconds();
  const writeLatency = (putsAfter.sum - putsBefore.sum) / Math.max(1, putsAfter.count - putsBefore.count);
  const needed = Math.max(0, opts.pods - held);
  const rounds = Math.ceil(needed / opts.batch);
  const timeBound = rounds * writeLatency + opts.syncMs / 1000;
  const sorted = [...doneAt].sort((a, b) => a - b);
  console.log(`\nCold burst: ${opts.pods} pods at once on a node holding ${held} IPs (pool min ${opts.min}, batch ${opts.batch}); Azure emulator async, LRO ${azureDefaults.asyncDurationMs} ms; agent sync interval ${opts.syncMs} ms`);
  console.log(`${'metric'.padEnd(40)}${'measured'.padStart(12)}${'bound'.padStart(12)}${'ratio'.padStart(8)}`);
  console.log(`${'NIC writes'.padEnd(40)}${String(writes).padStart(12)}${String(rounds).padStart(12)}${(rounds ? writes / rounds : NaN).toFixed(2).padStart(8)}`);
  console.log(`${'time until every pod has its IP (s)'.padEnd(40)}${allSeconds.toFixed(2).padStart(12)}${timeBound.toFixed(2).padStart(12)}${(allSeconds / timeBound).toFixed(2).padStart(8)}`);
  console.log(`one NIC write (controller's nic.put, mean of ${putsAfter.count - putsBefore.count}): ${(writeLatency * 1000).toFixed(0)} ms; rounds = ceil(${needed} / ${opts.batch}) = ${rounds}`);
  console.log(`pods with an IP: first ${(sorted[0]! / 1000).toFixed(2)} s, half ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s, all ${allSeconds.toFixed(2)} s; "try again" answers: ${tryAgains}`);
  console.log(`NIC now holds ${w.nicIPs(node.nodeName).length} of our ip-configs`);
} finally {
  await agent?.close().catch(() => undefined);
  await fabric.destroy().catch(() => undefined);
  await w.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

/** The controller's nic.put calls so far: total seconds and count (its azure call histogram). */
async function nicPutSeconds(): Promise<{ sum: number; count: number }> {
  const h = await w.metrics.azureCallSeconds.get();
  let sum = 0;
  let count = 0;
  for (const v of h.values) {
    if (v.labels.operation !== 'nic.put') continue;
    if ((v as { metricName?: string }).metricName?.endsWith('_sum')) sum += v.value;
    if ((v as { metricName?: string }).metricName?.endsWith('_count')) count += v.value;
  }
  return { sum, count };
}
