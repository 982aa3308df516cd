import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import * as datapath from '../node-plugin/datapath/index.js';
import { createFabric, type Fabric, type SimVM } from '../node-plugin/datapath/testing/fabric-sim.js';
import { createCnmServer, listenOnSocket, removePluginSpec, writePluginSpec, type CnmServer } from '../node-plugin/cnm/index.js';
import { fixedPoolAddressService, type FixedPool } from '../node-plugin/cnm/testing/fixed-pool.js';
import { dockerTestUnavailable, removeAllAndStop, startDockerd, importBusybox, type DockerDaemon } from './docker-daemon.js';
import { UndoStack } from './testing/undo.js';

/**
 * A node for Docker tests: a simulated Azure VM (a network namespace whose NIC sits on a simulated VNet
 * fabric, with a second VNet host beside it), the azure-vnet driver in this process with the real datapath
 * and a PodAddressService over a fixed list of the NIC's secondary IPs, and a private dockerd inside the
 * VM that finds the driver through a spec file with a unique plugin name (parallel runs and a real
 * azure-vnet plugin do not collide). Everything is removed by close().
 */

export const VNET = '10.61.0.0/16';
export const NODE_SUBNET = '10.61.0.0/24';
export const POD_SUBNET = '10.61.1.0/24';
export const NODE_IP = '10.61.0.4';
export const VNET_HOST_IP = '10.61.0.50';
/** A host on the Internet side of the fabric: reachable from the VNet only through the node's SNAT. */
export const OUTSIDE_HOST_IP = '203.0.113.61';
export const IMAGE = 'podvnet-test/busybox:1';

export interface DockerCnmEnv {
  root: string;
  socket: string;
  fabric: Fabric;
  vm: SimVM;
  net: datapath.NodeNetwork;
  pool: FixedPool;
  server: CnmServer;
  docker: DockerDaemon;
  plugin: string;
  driverLog: string;
  /** A new driver on the same state dir and socket (after server.shutdown()). */
  restartDriver(): Promise<void>;
  close(): Promise<void>;
}

/** Returns the environment, or a string saying why Docker cannot run here (the caller skips). */
export async function startDockerCnmEnv(opts: { podIPs: string[]; logLevel?: pino.Level }): Promise<DockerCnmEnv | string> {
  const unavailable = dockerTestUnavailable();
  if (unavailable) return unavailable;
  const root = mkdtempSync(join(tmpdir(), 'pvdk-'));
  const undo = new UndoStack();
  const removeRoot = () => rmSync(root, { recursive: true, force: true });
  undo.push(removeRoot);
  const unwind = () => undo.unwind();
  try {
    const fabric = await createFabric({ vnetPrefixes: [VNET], subnets: [NODE_SUBNET, POD_SUBNET] });
    undo.push(() => fabric.destroy());
    const vm = await fabric.addVM({ name: 'node', mac: '00:0d:3a:61:00:04', primaryIP: NODE_IP });
    await fabric.addVnetHost({ name: 'vhost', ip: VNET_HOST_IP });
    await fabric.addOutsideHost({ name: 'outside', ip: OUTSIDE_HOST_IP });
    await fabric.setNicIPs('node', opts.podIPs);
    const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
    undo.push(() => datapath.teardownNode(net));

    const pool = fixedPoolAddressService({ node: net, ips: opts.podIPs, nodeName: 'vm-node' });
    const driverLog = join(root, 'driver.log');
    const socket = join(root, 'azure-vnet.sock');
    const newServer = () =>
      createCnmServer({
        addresses: pool,
        datapath,
        logger: pino({ level: opts.logLevel ?? 'debug' }, pino.destination({ dest: driverLog, sync: true })),
        stateDir: join(root, 'cnm-state'),
      });
    const env = { root, socket, fabric, vm, net, pool, driverLog, server: newServer() } as DockerCnmEnv;
    undo.push(() => env.server.shutdown());
    await listenOnSocket(env.server, socket);
    env.plugin = `azure-vnet-t${randomBytes(4).toString('hex')}`;
    await writePluginSpec({ name: env.plugin, socketPath: socket });
    undo.push(() => removePluginSpec({ name: env.plugin }));

    try {
      env.docker = await startDockerd({ root: join(root, 'd'), netnsPath: vm.netnsPath });
    } catch (err) {
      await unwind();
      return `dockerd cannot start here: ${(err as Error).message}`;
    }
    undo.push(() => removeAllAndStop(env.docker, env.plugin));
    await importBusybox(env.docker, IMAGE);
    env.restartDriver = async () => {
      await env.server.shutdown();
      env.server = newServer();
      await listenOnSocket(env.server, socket);
      await env.server.cnm.whenReady();
    };
    env.close = async () => {
      if (process.env.PODVNET_KEEP_DOCKER_TEST_DIR) {
        undo.forget(removeRoot);
        console.warn(`docker test: kept ${root}`);
      }
      await unwind();
    };
    return env;
  } catch (err) {
    await unwind();
    throw err;
  }
}
