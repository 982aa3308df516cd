/**
 * CNI benchmark: PodVNet (C forwarder -> agent -> datapath) against the reference bridge + host-local
 * plugins, measured in the same run on the same simulated VM (a network namespace on a simulated VNet).
 *
 *   node --loader ts-node/esm hack/bench/cni-bench.ts [--pods 250] [--sequential 200] [--rounds 2] [--json out.json]
 *
 * Reports ADD and DEL latency (p50/p99, sequential), 250-way concurrent ADD and DEL wall time, the cost
 * of starting each executable (VERSION), and the agent's RSS idle and with 250 pods. The agent runs as
 * its own process from the compiled JavaScript of dist/ (npm run build, as in production), not under ts-node. Needs root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import * as datapath from '../../node-plugin/datapath/index.js';
import { agentNodeFlags, distPath, ensureBuilt } from '../dist.js';
import { FORWARDER, invokePlugin, startTestNode, type CniCall, type TestNode } from '../../node-plugin/agent/testing/test-node.js';

const AGENT_NODE_FLAGS = agentNodeFlags();

const Args = z.object({
  pods: z.coerce.number().int().min(1).max(250).default(250),
  // 200: the p99 of 60 samples would be their maximum, one noisy sample.
  sequential: z.coerce.number().int().min(5).max(1000).default(200),
  rounds: z.coerce.number().int().min(1).max(9).default(2),
  json: z.string().optional(),
});

function parseArgs(argv: string[]): z.infer<typeof Args> {
  const raw: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    raw[m[1]!] = m[2] ?? argv[++i] ?? '';
  }
  return Args.parse(raw);
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

function rssKiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN));
}

async function waitReady(node: TestNode): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if ((await node.cni('STATUS', {})).code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('agent did not become ready');
}

interface Plugin {
  name: string;
  add(i: number, netns: string): Promise<CniCall>;
  del(i: number, netns: string): Promise<CniCall>;
  version(): Promise<CniCall>;
}

function must(r: CniCall, what: string): CniCall {
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stdout}${r.stderr}`);
  return r;
}

/** What each plugin measured, over the whole run. */
interface Samples { version: number[]; add: number[]; del: number[]; wall: number[]; p99: number[]; delWall: number[] }
type Results = Record<string, Record<string, number>>;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  ensureBuilt((m) => console.log(m));
  const node = await startTestNode({ podIPCount: 250, startAgent: false });
  let agent: ChildProcess | undefined;
  try {
    agent = startAgentProcess(node);
    await waitReady(node);
    const rssIdle = await rssKiB(agent.pid!);
    const { plugins, wrap } = pluginsUnderTest(node);
    // The machine's load changes over a run, so every measurement alternates between the two plugins:
    // each sees the same conditions.
    const samples: Samples[] = plugins.map(() => ({ version: [], add: [], del: [], wall: [], p99: [], delWall: [] }));
    const wrapperCost = await measureStarts(plugins, samples, wrap);
    await measureSequential(node, plugins, samples, args.sequential);
    const rssWithPods = await measureConcurrent(node, plugins, samples, args, agent.pid!);
    const results = medians(plugins, samples);
    results.podvnet!.agent_rss_mib_with_pods = rssWithPods / 1024;
    results.datapath = await measureDatapathAlone(node, args.pods);
    const wrapP50 = percentile(wrapperCost, 50);
    printReport(results, args, wrapP50, rssIdle);
    if (args.json) await writeFile(args.json, JSON.stringify({ results, wrapperP50: wrapP50, rssIdleMiB: rssIdle / 1024 }, null, 2));
  } finally {
    agent?.kill('SIGTERM');
    if (agent) await new Promise((r) => agent!.once('exit', r));
    await node.close();
  }
}

/** The compiled agent as its own process, with the V8 flags deploy/base/node/daemonset.yaml runs it with. */
function startAgentProcess(node: TestNode): ChildProcess {
  const c = node.config;
  const agent = spawn(process.execPath, [...AGENT_NODE_FLAGS, distPath('agent'),
    `--node-name=${c.nodeName}`, `--socket=${c.socket}`, '--cnm-socket=', `--state-dir=${c.stateDir}`, `--record-file=${c.recordFile}`,
    `--host-interface=${c.hostInterface}`, `--host-netns=${c.hostNetns}`, '--cooldown-ms=0', '--sync-interval-ms=1000',
    '--metrics-address=127.0.0.1:0', '--log-level=warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.once('exit', () => agent.kill('SIGKILL')); // never leave the agent behind, even on a crash
  return agent;
}

/** PodVNet (forwarder -> agent) and the reference bridge + host-local, in the simulated VM's namespace. */
function pluginsUnderTest(node: TestNode): { plugins: Plugin[]; wrap: string[] } {
  const refData = path.join(node.dir, 'host-local');
  const refConf = JSON.stringify({
    cniVersion: '1.0.0', name: 'refnet', type: 'bridge', bridge: 'refbr0', isGateway: true, ipMasq: false,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.99.0.0/16' }]], dataDir: refData },
  });
  // The reference runs in the simulated VM's namespace, as it would in a node's; that needs a wrapper
  // (nsenter --net, a setns and an exec), whose own cost is measured and reported.
  const wrap = ['nsenter', `--net=${node.vm.netnsPath}`, '--'];
  const refEnv = (cmd: string, i: number, netns: string) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: `ref-${i}`, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' });
  const plugins: Plugin[] = [
    {
      name: 'podvnet',
      add: (i, netns) => node.cni('ADD', { containerId: `pv-${i}`, netns }),
      del: (i, netns) => node.cni('DEL', { containerId: `pv-${i}`, netns }),
      version: () => invokePlugin(FORWARDER, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}'),
    },
    {
      name: 'bridge+host-local',
      add: (i, netns) => invokePlugin('/usr/lib/cni/bridge', refEnv('ADD', i, netns), refConf, {}, wrap),
      del: (i, netns) => invokePlugin('/usr/lib/cni/bridge', refEnv('DEL', i, netns), refConf, {}, wrap),
      version: () => invokePlugin('/usr/lib/cni/bridge', { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}'),
    },
  ];
  return { plugins, wrap };
}

/** The cost of starting each executable (VERSION), and of the nsenter wrapper alone; returns the wrapper's samples. */
async function measureStarts(plugins: Plugin[], samples: Samples[], wrap: string[]): Promise<number[]> {
  const wrapperCost: number[] = [];
  for (let i = 0; i < 30; i++) {
    for (const [k, p] of plugins.entries()) samples[k]!.version.push(must(await p.version(), `${p.name} VERSION`).ms);
    wrapperCost.push((await invokePlugin('/bin/true', {}, '', {}, wrap)).ms);
  }
  return wrapperCost;
}

/** `count` ADDs one after another, then their DELs, after three uncounted warm-up rounds. */
async function measureSequential(node: TestNode, plugins: Plugin[], samples: Samples[], count: number): Promise<void> {
  const seqPods = await Promise.all(plugins.map((p) => Promise.all(Array.from({ length: count + 3 }, (_, i) => node.pod(`${p.name[0]}q${i}-`)))));
  // warm-up rounds (bridge creation, ensureNode, JIT) are not counted
  for (let i = 0; i < 3; i++) {
    for (const [k, p] of plugins.entries()) {
      must(await p.add(900 + i, seqPods[k]![count + i]!), `${p.name} warm-up ADD`);
      must(await p.del(900 + i, seqPods[k]![count + i]!), `${p.name} warm-up DEL`);
    }
  }
  for (let i = 0; i < count; i++) {
    for (const [k, p] of plugins.entries()) samples[k]!.add.push(must(await p.add(i, seqPods[k]![i]!), `${p.name} ADD`).ms);
  }
  for (let i = 0; i < count; i++) {
    for (const [k, p] of plugins.entries()) samples[k]!.del.push(must(await p.del(i, seqPods[k]![i]!), `${p.name} DEL`).ms);
  }
}

/** `args.pods` ADDs at once, then their DELs, `args.rounds` times; returns the agent's largest RSS with the pods (KiB). */
async function measureConcurrent(node: TestNode, plugins: Plugin[], samples: Samples[], args: { pods: number; rounds: number }, agentPid: number): Promise<number> {
  let rssWithPods = 0;
  for (let round = 0; round < args.rounds; round++) {
    for (const [k, p] of plugins.entries()) {
      const pods = await Promise.all(Array.from({ length: args.pods }, (_, i) => node.pod(`${p.name[0]}c${round}-${i}-`)));
      let t0 = Date.now();
      const concurrent = await Promise.all(pods.map((netns, i) => p.add(1000 + i, netns)));
      samples[k]!.wall.push(Date.now() - t0);
      concurrent.forEach((x) => must(x, `${p.name} concurrent ADD`));
      samples[k]!.p99.push(percentile(concurrent.map((x) => x.ms), 99));
      if (p.name === 'podvnet') {
        const ips = new Set(concurrent.map((x) => x.json.ips[0].address));
        if (ips.size !== args.pods) throw new Error(`podvnet handed out ${ips.size} distinct IPs to ${args.pods} pods`);
        rssWithPods = Math.max(rssWithPods, await rssKiB(agentPid));
      }
      t0 = Date.now();
      const cdel = await Promise.all(pods.map((netns, i) => p.del(1000 + i, netns)));
      samples[k]!.delWall.push(Date.now() - t0);
      cdel.forEach((x) => must(x, `${p.name} concurrent DEL`));
    }
  }
  return rssWithPods;
}

function medians(plugins: Plugin[], samples: Samples[]): Results {
  const results: Results = {};
  for (const [k, p] of plugins.entries()) {
    const sm = samples[k]!;
    results[p.name] = {
      version_p50: percentile(sm.version, 50),
      add_p50: percentile(sm.add, 50),
      add_p99: percentile(sm.add, 99),
      del_p50: percentile(sm.del, 50),
      del_p99: percentile(sm.del, 99),
      concurrent_add_wall: percentile(sm.wall, 50),
      concurrent_add_p99: percentile(sm.p99, 50),
      concurrent_del_wall: percentile(sm.delWall, 50),
    };
  }
  return results;
}

/**
 * The datapath alone (in this process, no executable, no agent), on the same IPs the agent has freed:
 * what our stack adds on top of the kernel work is the difference.
 */
async function measureDatapathAlone(node: TestNode, count: number): Promise<Record<string, number>> {
  const net = node.vm.nodeNetwork({ podSubnet: '10.40.4.0/22' });
  const pods = await Promise.all(Array.from({ length: count }, (_, i) => node.pod(`dp${i}-`)));
  const t0 = Date.now();
  await Promise.all(pods.map((netnsPath, i) => datapath.attachPod(net, { containerId: `dp-${i}`, netnsPath, ifName: 'eth0', ip: node.podIPs[i]!, prefixLength: 22 })));
  const attachWall = Date.now() - t0;
  const t1 = Date.now();
  await Promise.all(pods.map((netnsPath, i) => datapath.detachPod(net, { containerId: `dp-${i}`, netnsPath, ifName: 'eth0', ip: node.podIPs[i]! })));
  return { concurrent_add_wall: attachWall, concurrent_del_wall: Date.now() - t1 };
}

function printReport(results: Results, args: { pods: number; sequential: number; rounds: number }, wrapP50: number, rssIdle: number): void {
  const ours = results.podvnet!;
  const ref = results['bridge+host-local']!;
  const rows: Array<[string, string, number, number]> = [
    ['executable start (VERSION) p50', 'version_p50', ours.version_p50!, ref.version_p50!],
    ['ADD p50 (sequential)', 'add_p50', ours.add_p50!, ref.add_p50!],
    ['ADD p99 (sequential)', 'add_p99', ours.add_p99!, ref.add_p99!],
    ['DEL p50 (sequential)', 'del_p50', ours.del_p50!, ref.del_p50!],
    ['DEL p99 (sequential)', 'del_p99', ours.del_p99!, ref.del_p99!],
    [`${args.pods}-way concurrent ADD wall`, 'concurrent_add_wall', ours.concurrent_add_wall!, ref.concurrent_add_wall!],
    [`${args.pods}-way concurrent ADD p99`, 'concurrent_add_p99', ours.concurrent_add_p99!, ref.concurrent_add_p99!],
    [`${args.pods}-way concurrent DEL wall`, 'concurrent_del_wall', ours.concurrent_del_wall!, ref.concurrent_del_wall!],
  ];
  console.log(`\nPodVNet CNI vs reference bridge+host-local (same run, same simulated VM; ${args.sequential} sequential, ${args.pods} concurrent)`);
  console.log(`measurements alternate between the two; concurrent rounds: ${args.rounds} each (median shown)`);
  console.log(`reference timings include the 'nsenter --net' wrapper: p50 ${fmt(wrapP50)} (measured alone)\n`);
  console.log(`${'metric'.padEnd(34)}${'podvnet'.padStart(12)}${'reference'.padStart(12)}${'ratio'.padStart(9)}${'ratio*'.padStart(9)}`);
  for (const [label, key, a, b] of rows) {
    const adjusted = key.includes('wall') || key === 'version_p50' ? b : b - wrapP50;
    const star = adjusted > b / 2 ? (a / adjusted).toFixed(2) : '-';
    console.log(`${label.padEnd(34)}${fmt(a).padStart(12)}${fmt(b).padStart(12)}${(a / b).toFixed(2).padStart(9)}${star.padStart(9)}`);
  }
  console.log('ratio = podvnet / reference (lower is better); ratio* = against the reference minus the wrapper cost (latencies only)');
  console.log(`datapath alone (in-process, no executable or agent): ${args.pods}-way attach ${fmt(results.datapath!.concurrent_add_wall!)}, detach ${fmt(results.datapath!.concurrent_del_wall!)}`);
  console.log(`\nagent RSS: ${(rssIdle / 1024).toFixed(1)} MiB idle, ${ours.agent_rss_mib_with_pods!.toFixed(1)} MiB with ${args.pods} pods (compiled JS, node ${process.version}${AGENT_NODE_FLAGS.length ? ` ${AGENT_NODE_FLAGS.join(' ')}` : ''})`);
}

await main();
