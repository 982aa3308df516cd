import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AzureEmulator, createNetworkClient, type ScenarioNode } from '../hack/azure-emulator/index.js';
import { createFabric, type Fabric, type SimHost, type SimVM } from '../node-plugin/datapath/testing/fabric-sim.js';
import { removePluginSpec, writePluginSpec } from '../node-plugin/cnm/index.js';
import { findDockerd, importBusybox, startDockerd, tail, type DockerDaemon } from './docker-daemon.js';

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

export async function startStandaloneHost(opts: {
  mode: 'static' | 'managed';
  secondaryIPs: number;
  agentArgs?: string[];
  /** false: no agent process (the test installs the Docker managed plugin instead). */
  agentProcess?: boolean;
  /** The plugin name (default: azure-vnet-s<random>, so parallel runs do not collide). */
  pluginName?: string;
}): Promise<StandaloneHost | string> {
  if (process.getuid?.() !== 0) return 'not root (the test makes network namespaces and runs dockerd)';
  if (!findDockerd()) return 'dockerd is not installed: apt-get install docker.io';
  const dir = mkdtempSync(join(tmpdir(), 'pvsa-'));
  const undo: Array<() => unknown> = [() => rmSync(dir, { recursive: true, force: true })];
  const unwind = async () => {
    for (const u of undo.splice(0).reverse()) await Promise.resolve().then(u).catch(() => undefined);
  };
  try {
    const emu = await AzureEmulator.start();
    undo.push(() => emu.close());
    const scenario = emu.loadScenario({
      vnets: [{ name: 'vnet', addressPrefixes: [SA_VNET], subnets: [{ name: 'hosts', addressPrefix: SA_SUBNET }] }],
      vms: [{ namePrefix: 'docker-host-', count: 1, secondaryIpConfigs: opts.secondaryIPs }],
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

    const plugin = opts.pluginName ?? `azure-vnet-s${randomBytes(4).toString('hex')}`;
    const cnmSocket = join(dir, 'cnm.sock');
    await writePluginSpec({ name: plugin, socketPath: cnmSocket });
    undo.push(() => removePluginSpec({ name: plugin }));

    const agentLog = join(dir, 'agent.log');
    let agent: ChildProcess | undefined;
    let exited: Promise<number | null> = Promise.resolve(null);
    const inVm = (argv: string[]) => runIn(vm.netnsPath, argv);
    const args = [
      '--loader', 'ts-node/esm', '--no-warnings', join(repo, 'node-plugin/agent/main.ts'),
      `--standalone=${opts.mode}`, `--state-dir=${join(dir, 'state')}`, `--socket=${join(dir, 'agent.sock')}`, `--cnm-socket=${cnmSocket}`,
      '--metrics-address=127.0.0.1:9464', '--cooldown-ms=0', '--imds-interval-ms=500', '--log-level=debug',
      ...(opts.mode === 'managed' ? [`--azure-endpoint=${emu.url}`, `--azure-ca-file=${emu.caPath}`, '--azure-resync-ms=2000'] : []),
      ...(opts.agentArgs ?? []),
    ];
    const stopAgent = async () => {
      if (!agent || agent.exitCode !== null) return agent?.exitCode ?? null;
      agent.kill('SIGTERM');
      return exited;
    };
    const startAgent = async () => {
      const log = openSync(agentLog, 'a');
      // Inside the VM, as on a real host: IMDS and ARM are reached from there.
      agent = spawn('nsenter', [`--net=${vm.netnsPath}`, '--', process.execPath, ...args], { cwd: repo, stdio: ['ignore', log, log] });
      closeSync(log);
      const child = agent;
      exited = new Promise((r) => child.once('exit', (code) => r(code)));
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}):\n${tail(agentLog, 30)}`);
        const r = await inVm(['curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9464/readyz']);
        if (r.stdout === '200') return;
        if (Date.now() > deadline) throw new Error(`the agent did not become ready within 90 s:\n${tail(agentLog, 30)}`);
        await new Promise((r2) => setTimeout(r2, 250));
      }
    };
    undo.push(() => stopAgent());
    if (opts.agentProcess !== false) await startAgent();

    let docker: DockerDaemon;
    try {
      docker = await startDockerd({ root: join(dir, 'docker'), netnsPath: vm.netnsPath });
    } catch (err) {
      await unwind();
      return `dockerd cannot start here: ${(err as Error).message}`;
    }
    undo.push(async () => {
      const ids = (await docker.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker.cli(['rm', '-f', ...ids]);
      const nets = (await docker.cli(['network', 'ls', '-q', '--filter', `driver=${plugin}`])).stdout.split('\n').filter(Boolean);
      if (nets.length) await docker.cli(['network', 'rm', ...nets]);
      await docker.stop();
    });
    await importBusybox(docker, SA_IMAGE);

    const network = createNetworkClient(emu, scenario.subscriptionId);
    const nicName = node.nicId.split('/').at(-1)!;
    return {
      emu, fabric, node, vm, vnetHost, docker, plugin, dir, agentLog, startAgent, stopAgent, inVm,
      nicSecondaryIPs: held,
      async addIpConfig(name: string) {
        const current = await network.networkInterfaces.get(scenario.resourceGroup, nicName);
        const after = await network.networkInterfaces.beginCreateOrUpdateAndWait(scenario.resourceGroup, nicName, {
          ...current,
          ipConfigurations: [...current.ipConfigurations!, { name, privateIPAllocationMethod: 'Dynamic', subnet: { id: node.subnetId } }],
        }, { updateIntervalInMs: 20 });
        return after.ipConfigurations!.find((c) => c.name === name)!.privateIPAddress!;
      },
      close: unwind,
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
