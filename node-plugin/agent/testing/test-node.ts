import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { intToIp, ipToInt } from '../../../crds/ipv4.js';
import type { NodeIPAllocation } from '../../../crds/api/nodeipallocation.js';
import { createFabric, type Fabric, type SimVM } from '../../datapath/testing/fabric-sim.js';
import { retiredVethsDeleted } from '../../datapath/index.js';
import { startAgent, type RunningAgent } from '../agent.js';
import type { PoolSettings } from '../address-service.js';
import { parseAgentConfig, type AgentConfig } from '../config.js';

/**
 * Test kit for the agent and the CNI executable: a simulated VM on a simulated VNet (the datapath's
 * fabric), a record file playing the node's NodeIPAllocation, an agent serving a private socket, and a
 * way to run the real C forwarder like a container runtime does. Everything lives in namespaces and
 * temporary directories the kit makes and removes.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
export const CNI_DIR = path.resolve(here, '../../cni');
export const FORWARDER = path.join(CNI_DIR, 'bin/podvnet-cni');
export const REPO_ROOT = path.resolve(here, '../../..');

let built: Promise<void> | undefined;
/** Builds bin/podvnet-cni with the Makefile (once per process; test files run in parallel, hence the lock). */
export function buildForwarder(): Promise<void> {
  built ??= promisify(execFile)('flock', [path.join(tmpdir(), 'podvnet-cni-build.lock'), 'make', '-s', '-C', CNI_DIR]).then(() => undefined);
  return built;
}

export interface CniCall {
  code: number;
  stdout: string;
  stderr: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  ms: number;
}

/** Runs a CNI plugin binary the way libcni does: CNI_* environment, configuration on stdin. */
export function invokePlugin(bin: string, env: Record<string, string>, stdin: string, extraEnv: Record<string, string> = {}, wrap: string[] = []): Promise<CniCall> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const argv = [...wrap, bin];
    const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // a plugin may exit without reading its stdin
    child.on('close', (code) => {
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
    child.stdin.end(stdin);
  });
}

export function ipRange(first: string, n: number): string[] {
  const base = ipToInt(first);
  return Array.from({ length: n }, (_, i) => intToIp(base + i));
}

export function makeRecord(vm: SimVM, podSubnet: string, ips: string[], vnetPrefixes: string[]): NodeIPAllocation {
  return {
    apiVersion: 'podvnet.io/v1alpha1',
    kind: 'NodeIPAllocation',
    metadata: { name: vm.name },
    spec: { poolName: 'test-pool', releasedIPs: [] },
    status: {
      nic: { id: `/subscriptions/0/nic/${vm.name}`, macAddress: vm.mac, primaryIP: vm.primaryIP, vmID: `/vm/${vm.name}` },
      subnet: { id: '/subscriptions/0/subnets/pods', addressPrefix: podSubnet, gatewayIP: intToIp(ipToInt(podSubnet.split('/')[0]!) + 1) },
      vnetAddressPrefixes: vnetPrefixes,
      ips: ips.map((ip, i) => ({ ip, ipConfigName: `ipconfig${i + 2}` })),
    },
  };
}

export const DEFAULT_POOL: PoolSettings = {
  snat: { enabled: true, excludeCIDRs: [] },
  ipsPerNode: { min: 0, max: 250 },
  scaling: { batchSize: 250, requestThresholdPercent: 50, releaseThresholdPercent: 1000 },
};

export interface TestNode {
  fabric: Fabric;
  vm: SimVM;
  dir: string;
  socket: string;
  recordPath: string;
  podIPs: string[];
  /** Agent configuration (for starting it again, in-process or as a child). */
  config: AgentConfig;
  agent?: RunningAgent;
  /** A new pod namespace (removed with the fabric); returns its path. */
  pod(name: string): Promise<string>;
  /** One CNI call through the C forwarder. */
  cni(command: string, opts: { containerId?: string; netns?: string; ifName?: string; args?: string; conf?: Record<string, unknown> }): Promise<CniCall>;
  conf(extra?: Record<string, unknown>): Record<string, unknown>;
  startAgent(overrides?: Partial<AgentConfig>): Promise<RunningAgent>;
  /**
   * Resolves once the in-process agent has deleted every veth its DELs retired (with their rules), on its
   * normal schedule: a DEL leaves the veth retired for a moment.
   */
  retiredVethsDeleted(): Promise<void>;
  close(): Promise<void>;
}

export interface TestNodeOptions {
  podIPCount: number;
  cooldownMs?: number;
  pool?: PoolSettings;
  startAgent?: boolean;
}

let counter = 0;

export async function startTestNode(o: TestNodeOptions): Promise<TestNode> {
  await buildForwarder();
  const vnet = '10.40.0.0/16';
  const podSubnet = '10.40.4.0/22';
  const fabric = await createFabric({ vnetPrefixes: [vnet], subnets: ['10.40.0.0/24', podSubnet] });
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-agent-'));
  try {
    const vm = await fabric.addVM({ name: 'vm1', mac: '00:0d:3a:4e:00:01', primaryIP: '10.40.0.4' });
    const podIPs = ipRange('10.40.4.10', o.podIPCount);
    await fabric.setNicIPs('vm1', podIPs);
    const recordPath = path.join(dir, 'record.json');
    await writeFile(recordPath, JSON.stringify({ record: makeRecord(vm, podSubnet, podIPs, [vnet]), pool: o.pool ?? DEFAULT_POOL }));
    const socket = path.join(dir, 'agent.sock');
    const config = parseAgentConfig(
      [
        `--node-name=vm1`,
        `--socket=${socket}`,
        `--cnm-socket=`,
        `--state-dir=${path.join(dir, 'state')}`,
        `--record-file=${recordPath}`,
        `--host-interface=eth0`,
        `--host-netns=${vm.netnsPath}`,
        `--cooldown-ms=${o.cooldownMs ?? 0}`,
        `--sync-interval-ms=50`,
        `--metrics-address=127.0.0.1:0`,
        `--log-level=silent`,
      ],
      {},
    );
    const node: TestNode = {
      fabric,
      vm,
      dir,
      socket,
      recordPath,
      podIPs,
      config,
      async pod(name) {
        const ns = await fabric.addNetns(`${name}${counter++}`);
        return `/run/netns/${ns}`;
      },
      conf(extra = {}) {
        // The agent's queue (its default, <state-dir>/del-queue), not the executable's /var/lib/podvnet one.
        return { cniVersion: '1.1.0', name: 'podvnet', type: 'podvnet-cni', agentSocket: socket, delQueueDir: path.join(dir, 'state', 'del-queue'), ...extra };
      },
      cni(command, c) {
        const env: Record<string, string> = { CNI_COMMAND: command, CNI_PATH: path.dirname(FORWARDER) };
        if (c.containerId) env.CNI_CONTAINERID = c.containerId;
        if (c.netns) env.CNI_NETNS = c.netns;
        if (c.ifName ?? (command !== 'GC' && command !== 'STATUS' && command !== 'VERSION')) env.CNI_IFNAME = c.ifName ?? 'eth0';
        if (c.args) env.CNI_ARGS = c.args;
        return invokePlugin(FORWARDER, env, JSON.stringify(c.conf ?? node.conf()));
      },
      async startAgent(overrides = {}) {
        node.agent = await startAgent({ ...config, ...overrides }, { logger: pino({ level: 'silent' }) });
        await node.agent.reconciled;
        return node.agent;
      },
      async retiredVethsDeleted() {
        const net = node.agent?.addresses.teardownNetwork();
        if (!net) throw new Error('retiredVethsDeleted: no in-process agent with a known node network');
        await retiredVethsDeleted(net);
      },
      async close() {
        await node.agent?.close().catch(() => undefined);
        await fabric.destroy();
        await rm(dir, { recursive: true, force: true });
      },
    };
    if (o.startAgent !== false) await node.startAgent();
    return node;
  } catch (err) {
    await fabric.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
