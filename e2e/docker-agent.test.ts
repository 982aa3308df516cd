import test from 'ava';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as datapath from '../node-plugin/datapath/index.js';
import { startTestNode, type TestNode } from '../node-plugin/agent/testing/test-node.js';
import { removePluginSpec, writePluginSpec } from '../node-plugin/cnm/index.js';
import { findDockerd, importBusybox, pingFrom, removeByName, startDockerd, tail, type DockerDaemon } from './docker-daemon.js';

/**
 * The whole node plugin under a real dockerd: the agent process (its real address service, store and
 * record file playing the node's NodeIPAllocation) serves the azure-vnet CNM socket; dockerd runs in the
 * simulated VM. Containers get the NIC's secondary IPs through the agent, an exhausted pool fails with the
 * agent's explanation, and an agent restart while containers run keeps their addresses and lets Docker
 * release them afterwards.
 */

interface Env {
  node: TestNode;
  docker: DockerDaemon;
  plugin: string;
  cnmSocket: string;
}

async function setUp(): Promise<Env | string> {
  if (process.getuid?.() !== 0) return 'not root (the test makes network namespaces and runs dockerd)';
  if (!findDockerd()) return 'dockerd is not installed: apt-get install docker.io';
  const node = await startTestNode({ podIPCount: 2, startAgent: false, cooldownMs: 0 });
  const plugin = `azure-vnet-a${randomBytes(4).toString('hex')}`;
  const cnmSocket = join(node.dir, 'cnm.sock');
  try {
    await node.startAgent({ cnmSocket });
    await writePluginSpec({ name: plugin, socketPath: cnmSocket });
    let docker: DockerDaemon;
    try {
      docker = await startDockerd({ root: join(node.dir, 'docker'), netnsPath: node.vm.netnsPath });
    } catch (err) {
      await removePluginSpec({ name: plugin });
      await node.close();
      return `dockerd cannot start here: ${(err as Error).message}`;
    }
    await importBusybox(docker, 'podvnet-test/busybox:1').catch(async (err) => {
      await docker.stop();
      throw err;
    });
    return { node, docker, plugin, cnmSocket };
  } catch (err) {
    await removePluginSpec({ name: plugin }).catch(() => undefined);
    await node.close();
    throw err;
  }
}

const env = await setUp();

if (typeof env === 'string') {
  console.warn(`docker-agent: SKIPPED: ${env}`);
  test.skip(`docker with the node agent (skipped: ${env})`, () => undefined);
} else {
  test.after.always(async () => {
    const net = env.node.agent?.addresses.nodeNetwork();
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['containers', async () => {
        const ids = (await env.docker.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
        if (ids.length) await env.docker.cli(['rm', '-f', ...ids]);
      }],
      ['network', () => env.docker.cli(['network', 'rm', 'vnet'])],
      ['dockerd', () => env.docker.stop()],
      ['plugin spec', () => removePluginSpec({ name: env.plugin })],
      ['node', async () => net && datapath.teardownNode(net)],
      ['agent and fabric', () => env.node.close()],
    ];
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (err) {
        console.warn(`docker-agent cleanup: ${what}: ${(err as Error).message}`);
      }
    }
  });

  test.serial('containers get VNet IPs from the agent, survive an agent restart, and release through it', async (t) => {
    const { node, docker, plugin, cnmSocket } = env;
    const d = docker.ok;
    const diag = () => `\n--- dockerd log ---\n${tail(docker.logPath)}`;
    const cnmAllocations = () => node.agent!.addresses.snapshot().allocations.filter((a) => a.runtime === 'cnm');
    const ipOf = async (name: string) => (await d(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name])).trim();

    // No --subnet: the IPAM driver answers with the node's pod subnet.
    await d(['network', 'create', `--driver=${plugin}`, `--ipam-driver=${plugin}`, 'vnet']).catch((e) => {
      throw new Error(`${(e as Error).message}${diag()}`);
    });
    const subnet = JSON.parse(await d(['network', 'inspect', 'vnet']))[0].IPAM.Config[0].Subnet;
    t.is(subnet, node.agent!.addresses.nodeNetwork()!.podSubnet);

    await d(['run', '-d', '--name', 'c1', '--net=vnet', 'podvnet-test/busybox:1', 'sleep', '600']);
    await d(['run', '-d', '--name', 'c2', '--net=vnet', 'podvnet-test/busybox:1', 'sleep', '600']);
    const ip1 = await ipOf('c1');
    const ip2 = await ipOf('c2');
    t.deepEqual([ip1, ip2].sort(), [...node.podIPs].sort(), 'the two containers hold the NIC\'s two secondary IPs');
    t.deepEqual(cnmAllocations().map((a) => a.ip).sort(), [ip1, ip2].sort(), 'the agent records them as CNM allocations');

    // The pool is full: the agent's explanation reaches the user.
    const full = await docker.cli(['run', '--name', 'c3', '--net=vnet', 'podvnet-test/busybox:1', 'true']);
    t.not(full.code, 0);
    t.log(`docker run on a full pool: ${full.stderr.trim()}`);
    t.regex(full.stderr, /no free IP for this container/);
    t.regex(full.stderr, /node vm1/, 'names the node');
    t.regex(full.stderr, /NodeIPPool/, 'says what to check');
    await removeByName(docker, 'c3');

    // Restart the agent (and with it the CNM driver) while the containers run.
    const before = cnmAllocations().map((a) => `${a.containerId}=${a.ip}`).sort();
    await node.agent!.close();
    await node.startAgent({ cnmSocket });
    t.deepEqual(cnmAllocations().map((a) => `${a.containerId}=${a.ip}`).sort(), before, 'allocations survive the restart');
    const ping = await pingFrom(docker, 'c1', ip2);
    t.is(ping.code, 0, `c1 -> c2 after the restart: ${ping.stdout}${ping.stderr}`);

    // Docker releases through the restarted driver; the freed IP serves the next container.
    await d(['rm', '-f', 'c1']);
    t.deepEqual(cnmAllocations().map((a) => a.ip), [ip2]);
    await d(['run', '-d', '--name', 'c4', '--net=vnet', 'podvnet-test/busybox:1', 'sleep', '600']);
    t.is(await ipOf('c4'), ip1);
    const ping4 = await pingFrom(docker, 'c4', ip2);
    t.is(ping4.code, 0, `c4 -> c2: ${ping4.stdout}${ping4.stderr}`);

    await d(['rm', '-f', 'c2', 'c4']);
    await d(['network', 'rm', 'vnet']);
    t.deepEqual(cnmAllocations(), []);
    t.deepEqual(await datapath.listAttachments(node.agent!.addresses.nodeNetwork()!), []);
  });
}
