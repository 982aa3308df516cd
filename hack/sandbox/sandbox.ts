import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AzureEmulator, type ScenarioNode } from '../azure-emulator/index.js';
import { kubeconfigYaml, type KubeEmulator } from '../kube-emulator/index.js';
import { build } from '../../deploy/testing/manifests.js';
import { Fabric, type SimHost, type SimVM } from '../../node-plugin/datapath/testing/fabric-sim.js';
import { FORWARDER, buildForwarder, invokePlugin, type CniCall } from '../../node-plugin/agent/testing/test-node.js';
import { KubeClient, PATHS } from '../../controllers/kube.js';
import type { NodePoint } from './timeline-svg.js';
import { distPath, ensureBuilt } from '../dist.js';
import { applyCluster, runKubectl } from './cluster.js';
import { startEmulators } from './emulators.js';
import { PODVNET_NAMESPACE, agentLaunch, agentPaths, controllerLaunch, type ComponentLaunch, type LaunchContext } from './launch.js';
import { MetricsDiscovery } from './metrics-discovery.js';
import { SANDBOX_NETWORK, checkPodSubnet, syncFabricWithAzure } from './network.js';
import { SandboxProcess, startLoggedProcess } from './process.js';

export { SANDBOX_NETWORK } from './network.js';
export { SandboxProcess } from './process.js';
export type { ComponentLaunch } from './launch.js';

/**
 * The local sandbox: everything PodVNet is, on one machine, with nothing faked but Azure and the API
 * server. Emulated Azure (HTTPS, the real SDK talks to it) and an emulated Kubernetes API server; the real
 * controller and one real node agent per simulated VM, each a process of its own running the compiled
 * JavaScript of dist/ (built first when stale, as `npm run build` does); simulated VMs as network
 * namespaces on a simulated VNet fabric that, like Azure, delivers a packet only to the NIC that holds the
 * IP. The fabric learns which NIC holds which IP from the Azure emulator, as Azure's own SDN would.
 *
 * This file is the Sandbox's start-up order and the API tests use (pods, CNI calls, records, waits,
 * metrics targets); the pieces are beside it: emulators.ts, cluster.ts (what kubectl applies), launch.ts (each
 * component's flags), process.ts (process handles), metrics-discovery.ts, network.ts (address plan, fabric sync).
 */

const execFileP = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface SandboxOptions {
  /** Starts a component; returns its process (stopped with SIGTERM by close()). Default: node dist/... */
  launch?: (l: ComponentLaunch, sandbox: Sandbox) => SandboxProcess;
  /** Standalone VMs and scale-set instances (both kinds exercise their own NIC update path). */
  vms?: number;
  scaleSetInstances?: number;
  /** NodeIPPool spec fields over the defaults (cluster.ts). */
  pool?: Record<string, unknown>;
  /**
   * Pods in a subnet of their own: a second subnet of the VNet with this prefix (e.g. 10.240.16.0/20)
   * that the pool names instead of the nodes' subnet. The emulated Azure then lets a NIC hold ip-configs
   * of several subnets (allowMultipleSubnetsPerNic, off in plain Azure) and the fabric gets its gateway.
   */
  podSubnet?: string;
  /** Where process logs go (default .sandbox/logs in the repository; kept after close for a look). */
  logDir?: string;
  /** Called for each step worth telling a person about. */
  say?: (line: string) => void;
  /** How long the agents have to start listening (default 180 s: on a loaded 2-core machine an agent takes up to a minute to import its Kubernetes client under ts-node). */
  startTimeoutMs?: number;
}

export interface SandboxNode {
  name: string;
  azure: ScenarioNode;
  vm: SimVM;
  socket: string;
  /** The node agent's process; kill() and start() it to simulate a crash and a restart. */
  agent: SandboxProcess;
  /** The agent's --state-dir (its allocations.json). */
  stateDir: string;
}

export interface Pod {
  name: string;
  node: SandboxNode;
  netns: string;
  ip: string;
}

/** One namespace per VM on the fabric, the two hosts beside them, and the fabric kept in step with Azure. */
async function buildSimulatedVnet(fabric: Fabric, azure: AzureEmulator, machines: ScenarioNode[]) {
  const vms = new Map<string, SimVM>();
  for (const m of machines) vms.set(m.nodeName, await fabric.addVM({ name: m.nodeName, mac: m.macAddress.replaceAll('-', ':'), primaryIP: m.primaryIP }));
  const outsideHost = await fabric.addOutsideHost({ name: 'internet', ip: SANDBOX_NETWORK.outsideHostIP });
  const vnetHost = await fabric.addVnetHost({ name: 'vnethost', ip: SANDBOX_NETWORK.vnetHostIP });
  const stopFabricSync = syncFabricWithAzure(azure, fabric, new Set(vms.keys()));
  return { vms, outsideHost, vnetHost, stopFabricSync };
}

export class Sandbox {
  readonly pods = new Map<string, Pod>();
  private readonly processes: SandboxProcess[] = [];
  /** host:port of each process's /metrics, from its start-up log line. */
  private readonly metricsAt = new MetricsDiscovery();
  private closing = false;
  /** The controller's process (leader election off: the only replica). */
  controller!: SandboxProcess;

  private constructor(
    readonly azure: AzureEmulator,
    readonly kube: KubeEmulator,
    readonly fabric: Fabric,
    readonly nodes: SandboxNode[],
    readonly outsideHost: SimHost,
    readonly vnetHost: SimHost,
    readonly workDir: string,
    readonly logDir: string,
    /** The CIDR pods get addresses from: the pod subnet if one was asked for, else the nodes' subnet. */
    readonly podSubnet: string,
    /** ARM id of that subnet: the pool's subnetID. */
    readonly podSubnetID: string,
    private readonly stopFabricSync: () => void,
  ) {}

  static async start(opts: SandboxOptions = {}): Promise<Sandbox> {
    const say = opts.say ?? (() => undefined);
    const podSubnet = opts.podSubnet === undefined ? undefined : checkPodSubnet(opts.podSubnet);
    const workDir = mkdtempSync(path.join(tmpdir(), 'podvnet-sandbox-'));
    const logDir = opts.logDir ?? path.join(repo, '.sandbox', 'logs');
    mkdirSync(logDir, { recursive: true });
    await buildForwarder();
    ensureBuilt(say); // the controller and agents run compiled, as in production

    const { azure, kube, machines, subnetPrefixes, subnetID } = await startEmulators(opts, podSubnet, say);
    say('building the simulated VNet: one namespace per VM, a fabric that delivers only to the NIC holding an IP');
    const fabric = await Fabric.create({ vnetPrefixes: [SANDBOX_NETWORK.vnet], subnets: subnetPrefixes, prefix: `sbx${process.pid % 1000}` });
    let sandbox: Sandbox | undefined;
    try {
      const { vms, outsideHost, vnetHost, stopFabricSync } = await buildSimulatedVnet(fabric, azure, machines);
      await applyCluster((args, input) => runKubectl(kube.kubeconfigPath, args, input), { repo, machines, subnetID, pool: opts.pool, deployBase: build('deploy/base'), say });
      sandbox = new Sandbox(azure, kube, fabric, [], outsideHost, vnetHost, workDir, logDir, podSubnet ?? SANDBOX_NETWORK.nodeSubnet, subnetID, stopFabricSync);
      sandbox.launchComponents(machines, vms, opts, say);
      const nodes = sandbox.nodes;
      // the agents listen once they have loaded their state; a runtime would not schedule pods before
      await sandbox.waitFor('every agent\'s CNI socket', async () => nodes.every((n) => existsSync(n.socket)), opts.startTimeoutMs ?? 180_000);
      return sandbox;
    } catch (e) {
      if (sandbox) await sandbox.close();
      else {
        await fabric.destroy();
        await kube.close();
        await azure.close();
      }
      throw e;
    }
  }

  /** Starts the controller, then one agent per VM (opts.launch, or `node dist/...` with a kubeconfig of its own). */
  private launchComponents(machines: ScenarioNode[], vms: Map<string, SimVM>, opts: SandboxOptions, say: (line: string) => void): void {
    const ctx: LaunchContext = { kube: this.kube, logDir: this.logDir };
    const launch = (l: ComponentLaunch): SandboxProcess => opts.launch ? opts.launch(l, this)
      : this.startProcess(l.name, [distPath(l.command), '--kubeconfig', this.kubeconfigFor(l.name, l.serviceAccount.token), ...l.args]);
    say(`starting the real controller (leader election off: one replica) as ${PODVNET_NAMESPACE}/podvnet-controller`);
    const caFile = path.join(this.workDir, 'azure-ca.pem');
    writeFileSync(caFile, this.azure.ca);
    this.controller = launch(controllerLaunch(ctx, { url: this.azure.url, caFile }));

    say(`starting one node agent per VM (${machines.length}), each driving the datapath inside its VM's namespace, as ${PODVNET_NAMESPACE}/podvnet-node with a token bound to its node`);
    for (const m of machines) {
      const vm = vms.get(m.nodeName)!;
      const dir = path.join(this.workDir, m.nodeName);
      mkdirSync(dir, { recursive: true });
      const agent = launch(agentLaunch(ctx, m, vm.netnsPath, dir));
      const { socket, stateDir } = agentPaths(dir);
      this.nodes.push({ name: m.nodeName, azure: m, vm, socket, agent, stateDir });
    }
  }

  /** Each component gets a kubeconfig with its own service account's token, never the admin's. */
  private kubeconfigFor(name: string, token: string): string {
    const file = path.join(this.workDir, `kubeconfig-${name}`);
    writeFileSync(file, kubeconfigYaml(this.kube.url, token, this.kube.caPem), { mode: 0o600 });
    return file;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return runKubectl(this.kube.kubeconfigPath, args, input);
  }

  node(name: string): SandboxNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`sandbox: no node ${name}`);
    return n;
  }

  /** CNI ADD through the real forwarder, as a container runtime would run it for a pod. */
  async addPod(nodeName: string, podName: string): Promise<Pod> {
    const node = this.node(nodeName);
    const netns = await this.fabric.addNetns(`${nodeName.slice(-6)}-${podName}`.replace(/[^a-z0-9-]/g, '-'));
    const r = await this.cni(node, 'ADD', podName, `/run/netns/${netns}`);
    if (r.code !== 0 || !r.json?.ips?.[0]) {
      await execFileP('ip', ['netns', 'del', netns]).catch(() => undefined);
      throw new Error(`CNI ADD for ${podName} on ${nodeName} failed: ${r.stdout.trim() || r.stderr.trim()}`);
    }
    const pod: Pod = { name: podName, node, netns, ip: String(r.json.ips[0].address).split('/')[0]! };
    this.pods.set(podName, pod);
    return pod;
  }

  /**
   * addPod, again while the pool is empty: the plugin says "try again later" (code 11) and runtimes retry,
   * every 250 ms until `deadlineMs` (default 60 s). `onRefused` sees each refusal (a test asserts its words).
   */
  async addPodRetrying(nodeName: string, podName: string, o: { deadlineMs?: number; onRefused?: (e: Error) => void } = {}): Promise<Pod> {
    const deadline = Date.now() + (o.deadlineMs ?? 60_000);
    for (;;) {
      try {
        return await this.addPod(nodeName, podName);
      } catch (e) {
        o.onRefused?.(e as Error);
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async deletePod(podName: string): Promise<void> {
    const pod = this.pods.get(podName);
    if (!pod) return;
    const r = await this.cni(pod.node, 'DEL', podName, `/run/netns/${pod.netns}`);
    if (r.code !== 0) throw new Error(`CNI DEL for ${podName} failed: ${r.stdout.trim() || r.stderr.trim()}`);
    await execFileP('ip', ['netns', 'del', pod.netns]).catch(() => undefined);
    this.pods.delete(podName);
  }

  /**
   * One CNI call through the real forwarder. `podName` defaults to the container ID (a runtime retrying a
   * pod makes a new sandbox, so a new container ID, for the same pod name). With `deadlineMs` the plugin is
   * SIGKILLed when it runs longer (exit code 137), as a runtime's own timeout would.
   */
  cni(node: SandboxNode, command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS', containerId: string, netns: string, opts: { podName?: string; deadlineMs?: number } = {}): Promise<CniCall> {
    // A DEL while the agent is down is queued in the node's own queue, which its agent applies when back.
    const conf = { cniVersion: '1.1.0', name: 'podvnet', type: 'podvnet-cni', agentSocket: node.socket, delQueueDir: agentPaths(path.dirname(node.socket)).delQueueDir };
    const wrap = opts.deadlineMs === undefined ? [] : ['timeout', '-s', 'KILL', `${Math.ceil(opts.deadlineMs / 1000)}`];
    return invokePlugin(FORWARDER, {
      CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
      CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${opts.podName ?? containerId};IgnoreUnknown=1`,
    }, JSON.stringify(conf), {}, wrap);
  }

  /** The node's record as the API server has it. */
  async record(nodeName: string): Promise<{ spec: any; status?: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return JSON.parse(await this.kubectl(['get', 'nodeipallocation', nodeName, '-o', 'json']));
  }

  /** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`sandbox: timed out after ${timeoutMs} ms waiting for ${what} (logs: ${this.logDir})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Runs a command of its own (`node dist/...`, or a launcher's `docker run`), its output appended to
   * logDir/<name>.log (one stream for every start, so a restarted process's log follows its predecessor's);
   * close() stops it.
   */
  startProcess(name: string, args: string[], command: string = process.execPath): SandboxProcess {
    const p = startLoggedProcess({ name, command, args, cwd: repo, logDir: this.logDir, quiet: () => this.closing, onSpawn: (child) => this.metricsAt.watch(name, child) });
    this.processes.push(p);
    return p;
  }

  /**
   * A TimelineSampler source: each node's record as the controller works from it, straight from the API
   * server (status: allocated and target; spec.demand, written by the agent: used and pending).
   */
  recordsSource(): () => Promise<Record<string, NodePoint>> {
    const client = new KubeClient(this.kube.kubeConfig(), 4);
    return async () => {
      type Rec = { metadata: { name: string }; spec?: { demand?: { usedIPs?: number; pendingIPs?: number } }; status?: { allocatedIPs?: number; targetIPs?: number } };
      const list = await client.get<{ items: Rec[] }>(PATHS.records);
      return Object.fromEntries(list.items.map((r) => [r.metadata.name, {
        allocated: r.status?.allocatedIPs ?? 0, target: r.status?.targetIPs ?? 0, used: r.spec?.demand?.usedIPs ?? 0, pending: r.spec?.demand?.pendingIPs ?? 0,
      }]));
    };
  }

  /**
   * Where Prometheus finds each component's /metrics: the controller (job podvnet-controller) and one agent
   * per node (job podvnet-node, with the node's name as the label `node`, as the PodMonitor relabels it).
   */
  async metricsTargets(timeoutMs = 60_000): Promise<Array<{ job: 'podvnet-controller' | 'podvnet-node'; address: string; node?: string }>> {
    const names = ['controller', ...this.nodes.map((n) => `agent-${n.name}`)];
    await this.waitFor('every component to serve /metrics', async () => names.every((n) => this.metricsAt.get(n) !== undefined), timeoutMs);
    return [
      { job: 'podvnet-controller', address: this.metricsAt.get('controller')! },
      ...this.nodes.map((n) => ({ job: 'podvnet-node' as const, address: this.metricsAt.get(`agent-${n.name}`)!, node: n.name })),
    ];
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const pod of [...this.pods.values()]) await this.deletePod(pod.name).catch(() => undefined);
    await Promise.all(this.processes.map((p) => p.stop()));
    this.stopFabricSync();
    await this.fabric.destroy();
    await this.kube.close();
    await this.azure.close();
    rmSync(path.join(this.workDir), { recursive: true, force: true, maxRetries: 2 });
  }
}
