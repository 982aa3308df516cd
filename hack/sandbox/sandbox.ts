import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { AzureEmulator, type ScenarioNode } from '../azure-emulator/index.js';
import { kubeconfigYaml, startKubeEmulator, type KubeEmulator } from '../kube-emulator/index.js';
import { build } from '../../deploy/testing/manifests.js';
import { Fabric, type SimHost, type SimVM } from '../../node-plugin/datapath/fabric-sim.js';
import { FORWARDER, buildForwarder, invokePlugin, type CniCall } from '../../node-plugin/agent/testing.js';
import { API_GROUP_VERSION } from '../../crds/api/index.js';
import { cidrContains, formatCIDR, parseCIDR, type CIDR } from '../../crds/ipv4.js';
import { KubeClient, PATHS } from '../../controllers/kube.js';
import type { NodePoint } from './timeline-svg.js';
import { distPath, ensureBuilt } from '../dist.js';

/**
 * The local sandbox: everything PodVNet is, on one machine, with nothing faked but Azure and the API
 * server. Emulated Azure (HTTPS, the real SDK talks to it) and an emulated Kubernetes API server; the real
 * controller and one real node agent per simulated VM, each a process of its own running the compiled
 * JavaScript of dist/ (built first when stale, as `npm run build` does); simulated VMs as network
 * namespaces on a simulated VNet fabric that, like Azure, delivers a packet only to the NIC that holds the
 * IP. The fabric learns which NIC holds which IP from the Azure emulator, as Azure's own SDN would.
 */

const execFileP = promisify(execFile);

/** What deploy/base declares about identities and their rights: applied so every component runs least-privileged. */
const ACCESS_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
const PODVNET_NAMESPACE = 'podvnet-system';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * One component the sandbox starts: the compiled controller or a node agent, with its flags (paths are the
 * host's), the service account it runs as and the API server. The default launcher runs
 * `node dist/<command> --kubeconfig <its own> ...args`; a test can run it another way (from the image).
 */
export interface ComponentLaunch {
  name: string;
  command: 'controller' | 'agent';
  nodeName?: string;
  args: string[];
  serviceAccount: { namespace: string; name: string; token: string };
  kube: { url: string; caPem?: string };
  logDir: string;
}

export interface SandboxOptions {
  /** Starts a component; returns its process (stopped with SIGTERM by close()). Default: node dist/... */
  launch?: (l: ComponentLaunch, sandbox: Sandbox) => SandboxProcess;
  /** Standalone VMs and scale-set instances (both kinds exercise their own NIC update path). */
  vms?: number;
  scaleSetInstances?: number;
  /** NodeIPPool spec fields over the defaults below. */
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

/**
 * A component the sandbox runs as a process of its own (the controller, each node agent), with a handle to
 * crash it (SIGKILL) and start it again with the same arguments, as a DaemonSet or Deployment would.
 */
export class SandboxProcess {
  private current: ChildProcess;
  private expectingExit = false;
  /** How many times it was started (1 after the sandbox starts). */
  starts = 0;

  constructor(readonly name: string, private readonly spawnIt: () => ChildProcess, private readonly logFile: string, private readonly quiet: () => boolean) {
    this.current = this.launch();
  }

  get child(): ChildProcess { return this.current; }
  get pid(): number | undefined { return this.current.pid; }
  get running(): boolean { return this.current.exitCode === null && this.current.signalCode === null; }

  /** Sends `signal` (SIGKILL: a crash) and resolves once the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    const exited = new Promise<void>((resolve) => this.current.once('exit', () => resolve()));
    this.current.kill(signal);
    await exited;
  }

  /** Starts it again with the same arguments (it must have exited). */
  start(): void {
    if (this.running) throw new Error(`sandbox: ${this.name} is still running (pid ${this.pid})`);
    this.current = this.launch();
  }

  /** SIGTERM, then SIGKILL after 10 s: a graceful stop. */
  stop(): Promise<void> {
    this.expectingExit = true;
    return stopChild(this.current);
  }

  private launch(): ChildProcess {
    const child = this.spawnIt();
    this.starts++;
    this.expectingExit = false;
    child.on('exit', (code, signal) => {
      if (!this.quiet() && !this.expectingExit) process.stderr.write(`sandbox: ${this.name} exited (${signal ?? code}); see ${this.logFile}\n`);
    });
    return child;
  }
}

export interface Pod {
  name: string;
  node: SandboxNode;
  netns: string;
  ip: string;
}

export const SANDBOX_NETWORK = {
  vnet: '10.240.0.0/16',
  nodeSubnet: '10.240.0.0/24',
  outsideHostIP: '203.0.113.80',
  vnetHostIP: '10.240.0.250',
  /** A second subnet of the VNet for SandboxOptions.podSubnet (pods in a subnet other than the nodes'). */
  podSubnet: '10.240.16.0/20',
} as const;

const NODE_SELECTOR_LABEL = 'podvnet.io/sandbox';

/** The pod subnet must be a subnet of the sandbox VNet apart from the nodes' subnet (which holds the VNet host too). */
function checkPodSubnet(cidr: string): string {
  let c: CIDR;
  try { c = parseCIDR(cidr); } catch (e) { throw new Error(`sandbox: podSubnet: ${(e as Error).message}`); }
  const vnet = parseCIDR(SANDBOX_NETWORK.vnet);
  const nodes = parseCIDR(SANDBOX_NETWORK.nodeSubnet);
  if (!cidrContains(vnet, c.network) || c.prefixLength < vnet.prefixLength) throw new Error(`sandbox: podSubnet ${cidr} is not inside the VNet ${SANDBOX_NETWORK.vnet}`);
  if (cidrContains(c, nodes.network) || cidrContains(nodes, c.network)) throw new Error(`sandbox: podSubnet ${cidr} overlaps the nodes' subnet ${SANDBOX_NETWORK.nodeSubnet}`);
  if (c.prefixLength > 29) throw new Error(`sandbox: podSubnet ${cidr} is smaller than Azure's smallest subnet, a /29`);
  return formatCIDR(c);
}

export class Sandbox {
  readonly pods = new Map<string, Pod>();
  private readonly processes: SandboxProcess[] = [];
  /** host:port of each process's /metrics, from its start-up log line, by process name. */
  private readonly metricsAt = new Map<string, string>();
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

    say('starting the Azure ARM emulator (HTTPS, real SDK clients) and the Kubernetes API emulator');
    // Plain Azure refuses ip-configs of two subnets on one NIC (IpConfigurationsOnSameNicCannotUseDifferentSubnets).
    const azure = await AzureEmulator.start(podSubnet ? { config: { allowMultipleSubnetsPerNic: true } } : {});
    const subnets = [{ name: 'nodes', addressPrefix: SANDBOX_NETWORK.nodeSubnet }, ...(podSubnet ? [{ name: 'pods', addressPrefix: podSubnet }] : [])];
    const scenario = azure.loadScenario({
      vnets: [{ name: 'sandbox-vnet', addressPrefixes: [SANDBOX_NETWORK.vnet], subnets }],
      vms: [{ namePrefix: 'vm-', count: opts.vms ?? 2, subnet: 'nodes' }],
      scaleSets: (opts.scaleSetInstances ?? 1) > 0 ? [{ name: 'pool1', count: opts.scaleSetInstances ?? 1, subnet: 'nodes', computerNamePrefix: 'vmss-pool1-' }] : [],
    });
    const kube = await startKubeEmulator({});
    const machines = scenario.nodes;
    const subnetID = Object.entries(scenario.subnets).find(([k]) => k.endsWith(podSubnet ? '/pods' : '/nodes'))?.[1];
    if (!subnetID) throw new Error(`sandbox: the scenario has no ${podSubnet ? 'pods' : 'nodes'} subnet`);
    if (podSubnet) say(`pods get addresses of ${podSubnet}, a subnet other than the nodes' ${SANDBOX_NETWORK.nodeSubnet} (the emulator allows several subnets per NIC)`);

    say('building the simulated VNet: one namespace per VM, a fabric that delivers only to the NIC holding an IP');
    const fabric = await Fabric.create({ vnetPrefixes: [SANDBOX_NETWORK.vnet], subnets: subnets.map((x) => x.addressPrefix), prefix: `sbx${process.pid % 1000}` });
    let sandbox: Sandbox | undefined;
    try {
      const vms = new Map<string, SimVM>();
      for (const m of machines) vms.set(m.nodeName, await fabric.addVM({ name: m.nodeName, mac: m.macAddress.replaceAll('-', ':'), primaryIP: m.primaryIP }));
      const outsideHost = await fabric.addOutsideHost({ name: 'internet', ip: SANDBOX_NETWORK.outsideHostIP });
      const vnetHost = await fabric.addVnetHost({ name: 'vnethost', ip: SANDBOX_NETWORK.vnetHostIP });
      const stopFabricSync = syncFabricWithAzure(azure, fabric, new Set(vms.keys()));

      const kubectl = (args: string[], input?: string) => runKubectl(kube.kubeconfigPath, args, input);
      say('applying the CRDs, the Nodes (providerIDs from Azure) and a NodeIPPool with kubectl');
      await kubectl(['apply', '-f', path.join(repo, 'crds/podvnet.io_nodeippools.yaml'), '-f', path.join(repo, 'crds/podvnet.io_nodeipallocations.yaml')]);
      await kubectl(['apply', '-f', '-'], machines.map((m) => stringify(nodeManifest(m))).join('---\n'));
      await kubectl(['apply', '-f', '-'], stringify(poolManifest(subnetID, opts.pool)));
      say('applying deploy/base\'s service accounts, RBAC and admission policy (the API emulator enforces RBAC)');
      await kubectl(['apply', '--server-side', '-f', '-'], build('deploy/base').filter((o) => ACCESS_KINDS.has(o.kind)).map((o) => stringify(o)).join('---\n'));
      // each component gets a kubeconfig with its own service account's token, never the admin's
      const kubeconfigAs = (name: string, token: string): string => {
        const file = path.join(workDir, `kubeconfig-${name}`);
        writeFileSync(file, kubeconfigYaml(kube.url, token, kube.caPem), { mode: 0o600 });
        return file;
      };

      const nodes: SandboxNode[] = [];
      sandbox = new Sandbox(azure, kube, fabric, nodes, outsideHost, vnetHost, workDir, logDir, podSubnet ?? SANDBOX_NETWORK.nodeSubnet, subnetID, stopFabricSync);
      say(`starting the real controller (leader election off: one replica) as ${PODVNET_NAMESPACE}/podvnet-controller`);
      const caFile = path.join(workDir, 'azure-ca.pem');
      writeFileSync(caFile, azure.ca);
      const started = sandbox;
      const launch = (l: ComponentLaunch): SandboxProcess => opts.launch ? opts.launch(l, started)
        : started.startProcess(l.name, [distPath(l.command), '--kubeconfig', kubeconfigAs(l.name, l.serviceAccount.token), ...l.args]);
      sandbox.controller = launch({
        name: 'controller', command: 'controller', kube: { url: kube.url, caPem: kube.caPem }, logDir,
        serviceAccount: { namespace: PODVNET_NAMESPACE, name: 'podvnet-controller', token: kube.serviceAccountToken(PODVNET_NAMESPACE, 'podvnet-controller') },
        args: ['--azure-endpoint', azure.url, '--azure-ca-file', caFile,
          '--credential', 'emulator', '--http-port', '0', '--http-host', '127.0.0.1', '--leader-elect', 'false',
          '--event-namespace', 'default', '--poll-interval-ms', '50'],
      });

      say(`starting one node agent per VM (${machines.length}), each driving the datapath inside its VM's namespace, as ${PODVNET_NAMESPACE}/podvnet-node with a token bound to its node`);
      for (const m of machines) {
        const vm = vms.get(m.nodeName)!;
        const dir = path.join(workDir, m.nodeName);
        mkdirSync(dir, { recursive: true });
        const socket = path.join(dir, 'agent.sock');
        const agent = launch({
          name: `agent-${m.nodeName}`, command: 'agent', nodeName: m.nodeName, kube: { url: kube.url, caPem: kube.caPem }, logDir,
          serviceAccount: { namespace: PODVNET_NAMESPACE, name: 'podvnet-node', token: kube.serviceAccountToken(PODVNET_NAMESPACE, 'podvnet-node', { nodeName: m.nodeName }) },
          args: ['--node-name', m.nodeName, '--host-netns', vm.netnsPath,
            '--socket', socket, '--cnm-socket=', '--state-dir', path.join(dir, 'state'), '--del-queue-dir', path.join(dir, 'del-queue'), '--metrics-address', '127.0.0.1:0',
            '--cooldown-ms', '1000', '--sync-interval-ms', '200'],
        });
        nodes.push({ name: m.nodeName, azure: m, vm, socket, agent, stateDir: path.join(dir, 'state') });
      }
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
    const conf = { cniVersion: '1.1.0', name: 'podvnet', type: 'podvnet-cni', agentSocket: node.socket, delQueueDir: path.join(path.dirname(node.socket), 'del-queue') };
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
    const logFile = path.join(this.logDir, `${name}.log`);
    const log = createWriteStream(logFile);
    const p = new SandboxProcess(name, () => {
      const child = spawn(command, args, {
        cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PODVNET_LOG_LEVEL: process.env.PODVNET_LOG_LEVEL ?? 'info' },
      });
      child.stdout!.pipe(log, { end: false });
      child.stderr!.pipe(log, { end: false });
      this.watchMetricsAddress(name, child);
      return child;
    }, logFile, () => this.closing);
    this.processes.push(p);
    return p;
  }

  /** The controller logs `url` ("serving metrics and health"), an agent `health` ("agent started"). */
  private watchMetricsAddress(name: string, child: ChildProcess): void {
    let pending = '';
    const scan = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const j = JSON.parse(line) as { url?: string; health?: string };
          const at = j.url?.replace(/^https?:\/\//, '') ?? j.health;
          if (at) { this.metricsAt.set(name, at); child.stdout!.off('data', scan); return; }
        } catch { /* not a log line */ }
      }
    };
    child.stdout!.on('data', scan);
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
    await this.waitFor('every component to serve /metrics', async () => names.every((n) => this.metricsAt.has(n)), timeoutMs);
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

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => { clearTimeout(hard); resolve(); });
    child.kill('SIGTERM');
  });
}

async function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`kubectl ${args.join(' ')}: ${err.trim() || out.trim()}`))));
    child.stdin.end(input ?? '');
  });
}

/** A machine of the scenario as the Azure cloud provider registers it: a Node with its providerID. */
function nodeManifest(m: ScenarioNode) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: m.nodeName,
      labels: { [NODE_SELECTOR_LABEL]: 'true', 'kubernetes.io/hostname': m.nodeName, ...(m.scaleSet ? { 'kubernetes.azure.com/agentpool': m.scaleSet } : {}) },
    },
    spec: { providerID: m.providerID },
  };
}

function poolManifest(subnetID: string, overrides: Record<string, unknown> = {}) {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'NodeIPPool',
    metadata: { name: 'sandbox' },
    spec: {
      nodeSelector: { matchLabels: { [NODE_SELECTOR_LABEL]: 'true' } },
      subnetID,
      ipsPerNode: { min: 4, max: 64 },
      scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
      ...overrides,
    },
  };
}

/**
 * Keeps the fabric's view of "which NIC holds which IP" equal to Azure's: Azure's SDN starts delivering
 * an IP to a NIC when the ip-config is created and stops when it is removed.
 */
function syncFabricWithAzure(azure: AzureEmulator, fabric: Fabric, vmNames: Set<string>): () => void {
  const held = new Map<string, Set<string>>();
  let chain = Promise.resolve();
  const stop = azure.onIpChange((ev) => {
    const vm = ev.nodeName;
    if (!vm || !vmNames.has(vm)) return;
    const ips = held.get(vm) ?? new Set<string>();
    for (const ip of ev.removed) ips.delete(ip);
    for (const ip of ev.added) ips.add(ip);
    held.set(vm, ips);
    const snapshot = [...ips];
    chain = chain.then(() => fabric.setNicIPs(vm, snapshot)).catch((e: Error) => {
      process.stderr.write(`sandbox: fabric update for ${vm} failed: ${e.message}\n`);
    });
  });
  return stop;
}
