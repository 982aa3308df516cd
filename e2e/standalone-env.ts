import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AzureEmulator, createNetworkClient, type ScenarioNode } from '../hack/azure-emulator/index.js';
import { createFabric, type Fabric, type SimHost, type SimVM } from '../node-plugin/datapath/testing/fabric-sim.js';
import { removePluginSpec, writePluginSpec } from '../node-plugin/cnm/index.js';
import { dockerTestUnavailable, importBusybox, removeAllAndStop, startDockerd, tail, type DockerDaemon } from './docker-daemon.js';
import { UndoStack } from './testing/undo.js';

/**
 * A plain Docker host on an Azure VM, no Kubernetes: the Azure emulator (serving IMDS and ARM inside
 * the VM), a simulated VM (a network namespace on a simulated VNet fabric that delivers only to the NIC
 * holding an IP, with a second VNet host beside it), the real agent process in standalone mode running
 * inside the VM like a systemd service would, and a private dockerd inside the VM finding the agent's
 * azure-vnet driver through a spec file with a unique name (parallel runs do not collide).
 */

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const SA_VNET = '10.62.0.0/16';
export const SA_SUBNET = '10.62.0.0/24';
export const SA_VNET_HOST_IP = '10.62.0.200';
export const SA_IMAGE = 'podvnet-test/busybox:1';

export interface StandaloneHost {
  emu: AzureEmulator;
  fabric: Fabric;
  node: ScenarioNode;
  vm: SimVM;
  vnetHost: SimHost;
  docker: DockerDaemon;
  /** The plugin name to give --driver and --ipam-driver (unique per run). */
  plugin: string;
  dir: string;
  agentLog: string;
  /** Starts the agent (again) with the same state dir and sockets; resolves once /readyz answers 200. */
  startAgent(): Promise<void>;
  /** SIGTERM, as systemd stops it; resolves with the exit code. */
  stopAgent(): Promise<number | null>;
  /** Runs a command inside the VM. */
  inVm(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Our ip-configs' addresses on the VM's NIC, as Azure has them now. */
  nicSecondaryIPs(): string[];
  /** Adds one ip-config through ARM (as `az network nic ip-config create` would). */
  addIpConfig(name: string): Promise<string>;
  close(): Promise<void>;
}

export function runIn(netnsPath: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const c = spawn('nsenter', [`--net=${netnsPath}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('error', rej);
    c.on('close', (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

export interface StandaloneOptions {
  mode: 'static' | 'managed';
  secondaryIPs: number;
  agentArgs?: string[];
  /** false: no agent process (the test installs the Docker managed plugin instead). */
  agentProcess?: boolean;
  /** The plugin name (default: azure-vnet-s<random>, so parallel runs do not collide). */
  pluginName?: string;
}

/** Returns the host, or a string saying why Docker cannot run here (the caller skips). */
export async function startStandaloneHost(opts: StandaloneOptions): Promise<StandaloneHost | string> {
  const unavailable = dockerTestUnavailable();
  if (unavailable) return unavailable;
  const dir = mkdtempSync(join(tmpdir(), 'pvsa-'));
  const undo = new UndoStack();
  undo.push(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const azureVm = await startAzureVm(undo, opts.secondaryIPs);
    const { emu, vm } = azureVm;
    const plugin = opts.pluginName ?? `azure-vnet-s${randomBytes(4).toString('hex')}`;
    const cnmSocket = join(dir, 'cnm.sock');
    await writePluginSpec({ name: plugin, socketPath: cnmSocket });
    undo.push(() => removePluginSpec({ name: plugin }));

    const agentLog = join(dir, 'agent.log');
    const agent = agentService(vm.netnsPath, agentLog, [
      '--loader', 'ts-node/esm', '--no-warnings', join(repo, 'node-plugin/agent/main.ts'),
      `--standalone=${opts.mode}`, `--state-dir=${join(dir, 'state')}`, `--socket=${join(dir, 'agent.sock')}`, `--cnm-socket=${cnmSocket}`,
      `--metrics-address=127.0.0.1:${AGENT_PORT}`, '--cooldown-ms=0', '--imds-interval-ms=500', '--log-level=debug',
      ...(opts.mode === 'managed' ? [`--azure-endpoint=${emu.url}`, `--azure-ca-file=${emu.caPath}`, '--azure-resync-ms=2000'] : []),
      ...(opts.agentArgs ?? []),
    ]);
    undo.push(() => agent.stop());
    if (opts.agentProcess !== false) await agent.start();

    let docker: DockerDaemon;
    try {
      docker = await startDockerd({ root: join(dir, 'docker'), netnsPath: vm.netnsPath });
    } catch (err) {
      await undo.unwind();
      return `dockerd cannot start here: ${(err as Error).message}`;
    }
    undo.push(() => removeAllAndStop(docker, plugin));
    await importBusybox(docker, SA_IMAGE);
    return {
      ...azureVm, docker, plugin, dir, agentLog, startAgent: agent.start, stopAgent: agent.stop, inVm: (argv) => runIn(vm.netnsPath, argv),
      addIpConfig: ipConfigAdder(azureVm),
      close: () => undo.unwind(),
    };
  } catch (err) {
    await undo.unwind();
    throw err;
  }
}

/** The agent's metrics and health port, inside the VM's own namespace (so parallel runs do not collide). */
const AGENT_PORT = 9464;

type AzureVm = Pick<StandaloneHost, 'emu' | 'fabric' | 'node' | 'vm' | 'vnetHost' | 'nicSecondaryIPs'> & { scenario: ReturnType<AzureEmulator['loadScenario']> };

/**
 * The emulated Azure with one VM of `secondaryIPs` ip-configs, the VM simulated on a fabric beside a VNet
 * host, the fabric delivering what Azure holds, and IMDS and ARM served inside the VM.
 */
async function startAzureVm(undo: UndoStack, secondaryIPs: number): Promise<AzureVm> {
  const emu = await AzureEmulator.start();
  undo.push(() => emu.close());
  const scenario = emu.loadScenario({
    vnets: [{ name: 'vnet', addressPrefixes: [SA_VNET], subnets: [{ name: 'hosts', addressPrefix: SA_SUBNET }] }],
    vms: [{ namePrefix: 'docker-host-', count: 1, secondaryIpConfigs: secondaryIPs }],
  });
  const node = scenario.nodes[0]!;
  const fabric = await createFabric({ vnetPrefixes: [SA_VNET], subnets: [SA_SUBNET] });
  undo.push(() => fabric.destroy());
  const vm = await fabric.addVM({ name: 'host', mac: node.macAddress.replaceAll('-', ':'), primaryIP: node.primaryIP });
  const vnetHost = await fabric.addVnetHost({ name: 'vhost', ip: SA_VNET_HOST_IP });
  // The fabric delivers what Azure holds: the NIC's addresses now, then every change.
  const held = () => emu.ipOwners().filter((o) => o.nodeName === node.nodeName && !o.primary).map((o) => o.ip);
  await fabric.setNicIPs('host', held());
  let syncing = Promise.resolve();
  undo.push(emu.onIpChange((ev) => {
    if (ev.nodeName === node.nodeName) syncing = syncing.then(() => fabric.setNicIPs('host', held())).catch(() => undefined);
  }));
  const stopImds = await emu.serveVm({ netnsPath: vm.netnsPath, resourceId: node.resourceId });
  undo.push(stopImds);
  return { emu, scenario, fabric, node, vm, vnetHost, nicSecondaryIPs: held };
}

/**
 * The agent as a systemd service inside the VM (IMDS and ARM are reached from there): start() resolves once
 * /readyz answers 200, stop() sends SIGTERM and resolves with the exit code. Its output goes to `log`.
 */
function agentService(netnsPath: string, log: string, args: string[]): { start(): Promise<void>; stop(): Promise<number | null> } {
  let agent: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  const stop = async () => {
    if (!agent || agent.exitCode !== null) return agent?.exitCode ?? null;
    agent.kill('SIGTERM');
    return exited;
  };
  const start = async () => {
    const fd = openSync(log, 'a');
    agent = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, ...args], { cwd: repo, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const child = agent;
    exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}):\n${tail(log, 30)}`);
      const r = await runIn(netnsPath, ['curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${AGENT_PORT}/readyz`]);
      if (r.stdout === '200') return;
      if (Date.now() > deadline) throw new Error(`the agent did not become ready within 90 s:\n${tail(log, 30)}`);
      await new Promise((r2) => setTimeout(r2, 250));
    }
  };
  return { start, stop };
}

/** Adds one ip-config to the VM's NIC through ARM (as `az network nic ip-config create` would); returns its address. */
function ipConfigAdder({ emu, scenario, node }: AzureVm): (name: string) => Promise<string> {
  const network = createNetworkClient(emu, scenario.subscriptionId);
  const nicName = node.nicId.split('/').at(-1)!;
  return async (name) => {
    const current = await network.networkInterfaces.get(scenario.resourceGroup, nicName);
    const after = await network.networkInterfaces.beginCreateOrUpdateAndWait(scenario.resourceGroup, nicName, {
      ...current,
      ipConfigurations: [...current.ipConfigurations!, { name, privateIPAllocationMethod: 'Dynamic', subnet: { id: node.subnetId } }],
    }, { updateIntervalInMs: 20 });
    return after.ipConfigurations!.find((c) => c.name === name)!.privateIPAddress!;
  };
}
