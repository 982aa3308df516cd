/**
 * Cold burst: N pods arrive at once on a node holding only its pool's minimum of IPs. Everything real but
 * Azure and the API server (both emulated): the controller (controllers/testing/harness.ts), the Azure emulator
 * with its default long-running-operation latency (async mode, its default asyncDurationMs), the node
 * agent as its own process from the compiled JavaScript of dist/ with the DaemonSet's V8 flags (reading and
 * writing its NodeIPAllocation through the API), the C forwarder and the datapath on a simulated VM whose
 * NIC MAC is the emulated NIC's. The container runtime is its own small process too (burst-runtime.mjs):
 * it execs the forwarder for every pod at once and retries a pod answered "try again" (code 11) after
 * `--retry-ms`, as a kubelet does (the kubelet's own pause after a failed sandbox is about 10 s).
 * `--add-wait-ms` is the agent's: how long it holds an ADD that found no free IP (0: answers at once).
 * The defaults, 10 s and 30 s, are the kubelet's pause and the agent holding ADDs.
 *
 * Printed against the bounds: NIC writes used vs ceil(needed / batch) (one write per round), and the time
 * until every pod has its IP vs rounds x one NIC write's latency (measured in this run, the controller's
 * nic.put calls) + the agent's sync interval (how long its demand may wait before it is written); and,
 * measured in the same run, the reference: the same N pods wired at once on the same node with every IP
 * already on the NIC (after the burst: all DELeted, then ADDed again with the pool minimum raised to N
 * so no IP leaves). A perfect system would take the reference plus one NIC write (every missing IP in
 * one write as soon as the first pod asks: the urgent demand write does not wait for the sync interval);
 * that is the tighter bound printed. `--trace` prints the timeline (the record's demand and IPs, pods wired). Root.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/cold-burst.ts [--pods 250] [--min 16] [--batch 16] [--retry-ms 10000] [--add-wait-ms 30000] [--trace]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startWorld, waitFor } from '../../controllers/testing/harness.js';
import { PATHS } from '../../controllers/kube.js';
import { defaultConfig } from '../azure-emulator/config.js';
import { createFabric } from '../../node-plugin/datapath/testing/fabric-sim.js';
import { buildForwarder, FORWARDER, invokePlugin } from '../../node-plugin/agent/testing/test-node.js';
import { agentNodeFlags, distPath, ensureBuilt } from '../dist.js';

const raw = parseArgs({ options: {
  pods: { type: 'string', default: '250' }, min: { type: 'string', default: '16' }, batch: { type: 'string', default: '16' },
  'sync-ms': { type: 'string', default: '1000' }, 'retry-ms': { type: 'string', default: '10000' }, 'add-wait-ms': { type: 'string', default: '30000' }, trace: { type: 'boolean', default: false },
} }).values;
const opts = z.object({
  pods: z.coerce.number().int().min(1).max(250),
  min: z.coerce.number().int().min(0).max(250),
  batch: z.coerce.number().int().min(1).max(250),
  syncMs: z.coerce.number().int().min(10),
  retryMs: z.coerce.number().int().min(0),
  addWaitMs: z.coerce.number().int().min(0),
  trace: z.boolean(),
}).parse({ pods: raw.pods, min: raw.min, batch: raw.batch, syncMs: raw['sync-ms'], retryMs: raw['retry-ms'], addWaitMs: raw['add-wait-ms'], trace: raw.trace });

const RUNTIME = fileURLToPath(new URL('./burst-runtime.mjs', import.meta.url));

interface RuntimeRun {
  /** Epoch ms the runtime started its first exec. */
  start: number;
  /** Per pod, ms from start until its command succeeded. */
  doneAt: number[];
  tryAgains: number;
  /** "try again" answers by the first words of their message. */
  reasons: Record<string, number>;
}

/** Runs one command for every pod at once in the runtime process; `onDone` hears each pod as it is done. */
function runRuntime(command: 'ADD' | 'DEL', pods: Array<{ id: string; netns: string }>, conf: string, onDone: (count: number, at: number) => void = () => undefined): Promise<RuntimeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUNTIME], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    const run: RuntimeRun = { start: NaN, doneAt: [], tryAgains: 0, reasons: {} };
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { start?: number; wired?: string; at?: number; done?: boolean; tryAgains?: number; reasons?: Record<string, number>; error?: string };
        buf = buf.slice(nl + 1);
        if (msg.start !== undefined) run.start = msg.start;
        if (msg.at !== undefined) onDone(run.doneAt.push(msg.at), msg.at);
        if (msg.error) reject(new Error(msg.error));
        if (msg.done) resolve({ ...run, tryAgains: msg.tryAgains ?? 0, reasons: msg.reasons ?? {} });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => code !== 0 && reject(new Error(`the runtime process exited with ${code}`)));
    child.stdin.end(JSON.stringify({ command, forwarder: FORWARDER, conf, retryMs: opts.retryMs, timeoutMs: 600_000, pods }));
  });
}

const azureDefaults = defaultConfig();
ensureBuilt((m) => console.log(m));
await buildForwarder();
const w = await startWorld({
  scenario: { vnets: [{ name: 'burst-vnet', addressPrefixes: ['10.60.0.0/16'], subnets: [{ name: 'nodes', addressPrefix: '10.60.0.0/20' }] }], vms: [{ count: 1 }] },
  nodeLabels: () => ({ 'podvnet.io/burst': 'yes' }),
  azureConfig: { mode: 'async', asyncDurationMs: azureDefaults.asyncDurationMs },
});
const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-burst-'));
const node = w.nodes[0]!;
const fabric = await createFabric({ vnetPrefixes: ['10.60.0.0/16'], subnets: ['10.60.0.0/20'] });
let agent: ReturnType<typeof spawn> | undefined;
try {
  const vm = await fabric.addVM({ name: 'burst', mac: node.macAddress.toLowerCase().replace(/-/g, ':'), primaryIP: node.primaryIP });
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
  // A DEL the agent cannot take is queued where this agent applies it (its state directory), not in the host's default.
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'podvnet', type: 'podvnet-cni', agentSocket: socket, delQueueDir: path.join(dir, 'state', 'del-queue') });
  let lastStatus = '';
  const status = async () => {
    const r = await invokePlugin(FORWARDER, { CNI_PATH: path.dirname(FORWARDER), CNI_COMMAND: 'STATUS' }, conf);
    lastStatus = r.stdout;
    return r.code === 0 ? 0 : (r.json?.code as number | undefined);
  };
  /** Starts the agent and waits until it answers (STATUS 11 is the executable's "agent unreachable"). */
  const startAgent = async () => {
    agent = spawn(process.execPath, [...agentNodeFlags(), distPath('agent'),
      `--node-name=${node.nodeName}`, `--socket=${socket}`, '--cnm-socket=', `--state-dir=${path.join(dir, 'state')}`, `--kubeconfig=${w.kube.kubeconfigPath}`,
      '--host-interface=eth0', `--host-netns=${vm.netnsPath}`, '--cooldown-ms=0', `--sync-interval-ms=${opts.syncMs}`, `--add-wait-ms=${opts.addWaitMs}`,
      '--metrics-address=127.0.0.1:0', `--log-level=${process.env.BURST_AGENT_LOG ?? 'warn'}`], { stdio: ['ignore', 'inherit', 'inherit'] });
    await waitFor('the agent to answer', async () => (await status()) !== 11, 60_000, 100);
  };
  process.once('exit', () => agent?.kill('SIGKILL')); // never leave the agent behind, even on a crash
  await startAgent();
  await waitFor('the agent to serve (STATUS 0)', async () => (await status()) === 0, 60_000, 100).catch((e: Error) => { throw new Error(`${e.message}: ${lastStatus}`); });
  const held = (await w.record(node.nodeName))?.status?.ips?.length ?? 0;
  const rssIdle = await rssMiB(agent!.pid!);
  const netns = await Promise.all(Array.from({ length: opts.pods }, (_, i) => fabric.addNetns(`cb${i}-`).then((ns) => `/run/netns/${ns}`)));
  const burstPods = netns.map((ns, i) => ({ id: `burst-${i}`, netns: ns }));
  const writesBefore = w.azure.calls().byKind['nic.put'] ?? 0;
  const putsBefore = await nicPutSeconds();

  // The timeline: the record as the API server has it (what the agent wrote, what the controller put).
  const trace: Array<{ at: number; what: string }> = [];
  let tracing = true;
  const watcher = (async () => {
    let last = '';
    while (tracing) {
      const r = await w.record(node.nodeName);
      const what = `record: demand ${r?.spec?.demand?.usedIPs ?? 0} used + ${r?.spec?.demand?.pendingIPs ?? 0} pending, ${r?.status?.ips?.length ?? 0} IPs`;
      if (what !== last) trace.push({ at: Date.now(), what });
      last = what;
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  const wired: Array<{ n: number; at: number }> = []; // ms from the runtime's start
  const burst = await runRuntime('ADD', burstPods, conf, (n, at) => {
    if (n === 1 || n % 25 === 0 || n === opts.pods) wired.push({ n, at });
  });
  trace.push(...wired.map((x) => ({ at: burst.start + x.at, what: `${x.n} pods wired` })));
  tracing = false;
  await watcher;
  const rssBusy = await rssMiB(agent!.pid!);
  const allSeconds = Math.max(...burst.doneAt) / 1000;
  const writes = (w.azure.calls().byKind['nic.put'] ?? 0) - writesBefore;
  const putsAfter = await nicPutSeconds();
  const writeLatency = (putsAfter.sum - putsBefore.sum) / Math.max(1, putsAfter.count - putsBefore.count);

  // The reference: the same pods wired at once with every IP already there. The pool minimum is raised
  // first so that no IP leaves while the pods are gone, and the agent restarted so that it reads the new
  // minimum now (it re-reads its pool's settings every 30 s); then the wait is for the node to hold that
  // many IPs with none of them released.
  await w.client.mergePatch(`${PATHS.pools}/burst`, { spec: { ipsPerNode: { min: opts.pods } } });
  await stopAgent();
  await startAgent();
  await runRuntime('DEL', burstPods, conf);
  const ipsAfter = await waitFor('the node to hold an IP for every pod, none released', async () => {
    const r = await w.record(node.nodeName);
    const ips = r?.status?.ips?.length ?? 0;
    return ips >= opts.pods && (r?.spec?.releasedIPs ?? []).length === 0 && { ips };
  }, 120_000, 50).then((held) => held.ips);
  await waitFor('the agent to serve (STATUS 0)', async () => (await status()) === 0, 60_000, 100).catch((e: Error) => { throw new Error(`${e.message}: ${lastStatus}`); });
  const warm = await runRuntime('ADD', netns.map((ns, i) => ({ id: `warm-${i}`, netns: ns })), conf);
  const warmSeconds = Math.max(...warm.doneAt) / 1000;

  const needed = Math.max(0, opts.pods - held);
  const rounds = Math.ceil(needed / opts.batch);
  const timeBound = rounds * writeLatency + opts.syncMs / 1000;
  const sorted = [...burst.doneAt].sort((a, b) => a - b);
  if (opts.trace) {
    const t0 = burst.start;
    for (const e of trace.sort((a, b) => a.at - b.at)) console.log(`${((e.at - t0) / 1000).toFixed(2).padStart(7)} s  ${e.what}`);
  }
  console.log(`\nCold burst: ${opts.pods} pods at once on a node holding ${held} IPs (pool min ${opts.min}, batch ${opts.batch}); Azure emulator async, LRO ${azureDefaults.asyncDurationMs} ms; agent sync interval ${opts.syncMs} ms, holds an ADD up to ${opts.addWaitMs} ms for an IP; runtime retries "try again" after ${opts.retryMs} ms`);
  console.log(`${'metric'.padEnd(40)}${'measured'.padStart(12)}${'bound'.padStart(12)}${'ratio'.padStart(8)}`);
  console.log(`${'NIC writes'.padEnd(40)}${String(writes).padStart(12)}${String(rounds).padStart(12)}${(rounds ? writes / rounds : NaN).toFixed(2).padStart(8)}`);
  console.log(`${'time until every pod has its IP (s)'.padEnd(40)}${allSeconds.toFixed(2).padStart(12)}${timeBound.toFixed(2).padStart(12)}${(allSeconds / timeBound).toFixed(2).padStart(8)}`);
  // What a perfect system could do: wire the pods as fast as when every IP is there, plus one NIC write
  // (every missing IP in one write, as soon as the first pod asked), the sync interval being waived for a
  // write that raises demand.
  const perfect = warmSeconds + writeLatency;
  console.log(`${'  vs reference + one NIC write (s)'.padEnd(40)}${allSeconds.toFixed(2).padStart(12)}${perfect.toFixed(2).padStart(12)}${(allSeconds / perfect).toFixed(2).padStart(8)}`);
  console.log(`one NIC write (controller's nic.put, mean of ${putsAfter.count - putsBefore.count}): ${(writeLatency * 1000).toFixed(0)} ms; rounds = ceil(${needed} / ${opts.batch}) = ${rounds}`);
  console.log(`pods with an IP: first ${(sorted[0]! / 1000).toFixed(2)} s, half ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s, all ${allSeconds.toFixed(2)} s; "try again" answers: ${burst.tryAgains} ${JSON.stringify(burst.reasons)}`);
  console.log(`agent RSS (API server mode, as deployed): ${rssIdle.toFixed(1)} MiB idle, ${rssBusy.toFixed(1)} MiB with ${opts.pods} pods`);
  console.log(`reference: ${opts.pods} pods wired at once on the same node with ${ipsAfter} IPs on its NIC: ${warmSeconds.toFixed(2)} s ("try again" answers: ${warm.tryAgains} ${JSON.stringify(warm.reasons)})`);
} finally {
  await stopAgent();
  await fabric.destroy().catch(() => undefined);
  await w.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

async function rssMiB(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

async function stopAgent(): Promise<void> {
  const a = agent;
  if (!a || a.exitCode !== null || a.signalCode !== null) return;
  const exited = new Promise((res) => a.once('exit', res));
  a.kill('SIGTERM');
  await exited;
}

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
