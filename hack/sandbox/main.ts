import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';
import { Sandbox, SANDBOX_NETWORK, type Pod } from './sandbox.js';
import { TimelineSampler } from './timeline-svg.js';
import { cidrContains, parseCIDR } from '../../crds/ipv4.js';
import { peerAddressSeen, pingEventually, startPeerServer } from '../../node-plugin/datapath/testkit.js';

/**
 * `bash hack/sandbox.sh`: starts the local sandbox and walks through what PodVNet does, printing what a
 * person would look at: kubectl output, pod IPs, who can reach whom and which source address arrives.
 * --keep leaves it running (until Ctrl-C) with a kubeconfig to poke at it. --pod-subnet CIDR (e.g.
 * 10.240.16.0/20) gives pods addresses of a second subnet of the VNet, not of the nodes' subnet.
 */

const Flags = z.strictObject({
  keep: z.boolean().default(false).describe('leave it running (until Ctrl-C) with a kubeconfig to poke at it'),
  'pod-subnet': z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be a CIDR such as 10.240.16.0/20').optional()
    .describe('give pods addresses of a second subnet of the VNet, not of the nodes\' subnet'),
  vms: z.coerce.number().int().min(2).max(64).default(2).describe('standalone VMs (nodes)'),
  'scale-set-instances': z.coerce.number().int().min(0).max(64).default(1).describe('scale-set instances (nodes)'),
});

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(renderHelp('sandbox: emulated Azure and API server, the compiled controller and node agents, simulated VMs; shows pods getting VNet IPs',
    'bash hack/sandbox.sh [--flag value]...', describeSettings(Flags.shape, { flag: (k) => `--${k}` }), ['No environment variables: flags only. Run as root.']));
  process.exit(0);
}
const parsedFlags = Flags.safeParse(parseArgs({
  options: { keep: { type: 'boolean' }, 'pod-subnet': { type: 'string' }, vms: { type: 'string' }, 'scale-set-instances': { type: 'string' } },
}).values);
if (!parsedFlags.success) {
  process.stderr.write(`sandbox: ${parsedFlags.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const flags = parsedFlags.data;

const step = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);
const info = (s: string) => console.log(`   ${s}`);
const indent = (text: string) => text.trimEnd().split('\n').map((l) => `   ${l}`).join('\n');

async function main(): Promise<number> {
  step('Starting the sandbox');
  const podSubnet = flags['pod-subnet'];
  const sandbox = await Sandbox.start({ vms: flags.vms, scaleSetInstances: flags['scale-set-instances'], podSubnet, say: info });
  let failures = 0;
  let timeline: string | undefined;
  const expect = (ok: boolean, what: string) => {
    info(`${ok ? '\x1b[32mok\x1b[0m  ' : '\x1b[31mFAIL\x1b[0m'} ${what}`);
    if (!ok) failures++;
  };
  const onSignal = () => { void sandbox.close().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const [n1, n2] = sandbox.nodes;
    if (!n1 || !n2) throw new Error('the sandbox needs at least two nodes');

    step('The controller gives every selected node its minimum of VNet IPs (secondary ip-configs on its NIC)');
    await sandbox.waitFor('every node record to hold its minimum IPs', async () => {
      for (const n of sandbox.nodes) if (((await sandbox.record(n.name)).status?.ips ?? []).length < 4) return false;
      return true;
    }, 60_000);
    await sandbox.waitFor('the pool to report Ready', async () =>
      (await sandbox.kubectl(['get', 'nodeippool', 'sandbox', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])) === 'True');
    console.log(indent(await sandbox.kubectl(['get', 'nodeippools'])));
    console.log(indent(await sandbox.kubectl(['get', 'nodeipallocations'])));

    step('Pods get IPs of the VNet through the CNI plugin (the real forwarder, agent and datapath)');
    const pods: Pod[] = [];
    for (const [k, n] of sandbox.nodes.entries()) for (const i of [1, 2]) pods.push(await sandbox.addPod(n.name, `web-${k}${i}`));
    for (const p of pods) info(`${p.name.padEnd(10)} on ${p.node.name.padEnd(22)} ${p.ip}`);
    expect(new Set(pods.map((p) => p.ip)).size === pods.length, 'every pod has an address of its own');
    const inSubnet = (ip: string) => cidrContains(parseCIDR(sandbox.podSubnet), ip);
    expect(pods.every((p) => inSubnet(p.ip)), `every pod's address is in the pool's subnet ${sandbox.podSubnet}${podSubnet ? ` (the nodes are in ${SANDBOX_NETWORK.nodeSubnet})` : ''}`);

    step('Who can reach whom (the fabric delivers a packet only to the NIC holding the IP)');
    const [a, b] = [pods[0]!, pods[1]!];
    const c = pods.find((p) => p.node !== a.node)!;
    expect(await pingEventually(a.netns, b.ip), `${a.name} -> ${b.name} (same node, over the bridge)`);
    expect(await pingEventually(a.netns, c.ip), `${a.name} -> ${c.name} (another node, over the VNet)`);
    const port = 8080;
    const vnetPeer = startPeerServer(sandbox.vnetHost.netns, port);
    const outsidePeer = startPeerServer(sandbox.outsideHost.netns, port);
    try {
      const seenInVnet = await peerAddressSeen(a.netns, SANDBOX_NETWORK.vnetHostIP, port);
      expect(seenInVnet === a.ip, `a VNet host sees the pod's own address (${seenInVnet}): no SNAT inside the VNet`);
      const seenOutside = await peerAddressSeen(a.netns, SANDBOX_NETWORK.outsideHostIP, port);
      expect(seenOutside === a.node.azure.primaryIP, `a host outside the VNet sees the node's address (${seenOutside}): SNAT on the way out`);
    } finally {
      vnetPeer.stop();
      outsidePeer.stop();
    }

    step(`A burst of pods on ${n1.name}: the agent raises its demand, the controller adds IPs in batches`);
    // a picture of it: allocated / target / used / pending per node, from the records the controller works from
    const sampler = new TimelineSampler(sandbox.recordsSource(), 200).start();
    await new Promise((r) => setTimeout(r, 1500));
    sampler.mark(`burst: 20 pods on ${n1.name}`);
    const before = (await sandbox.record(n1.name)).status?.ips?.length ?? 0;
    const burst: Pod[] = [];
    for (let i = 0; i < 20; i++) burst.push(await addPodWaiting(sandbox, n1.name, `burst-${i}`));
    const grown = (await sandbox.record(n1.name)).status?.ips?.length ?? 0;
    info(`${n1.name}: ${before} IPs before, ${grown} now, ${burst.length + 2} pods`);
    expect(grown > before, 'the node\'s pool grew with demand');
    console.log(indent(await sandbox.kubectl(['get', 'nodeipallocations'])));

    step('The burst ends: the agent releases what it does not need, the controller removes exactly those');
    sampler.mark('the 20 burst pods deleted');
    for (const p of burst) await sandbox.deletePod(p.name);
    await sandbox.waitFor('the node to shrink back', async () => ((await sandbox.record(n1.name)).status?.ips?.length ?? 0) < grown, 60_000);
    const shrunk = (await sandbox.record(n1.name)).status?.ips?.length ?? 0;
    info(`${n1.name}: ${shrunk} IPs after release`);
    expect(shrunk < grown, 'the node\'s pool shrank after release');
    expect(await pingEventually(a.netns, c.ip), 'pods that stayed keep talking');
    console.log(indent(await sandbox.kubectl(['get', 'nodeipallocations'])));
    await new Promise((r) => setTimeout(r, 3000));
    await sampler.stop();
    const pool = JSON.parse(await sandbox.kubectl(['get', 'nodeippool', 'sandbox', '-o', 'json'])) as { spec: { ipsPerNode: { min: number; max: number }; scaling: { batchSize: number; requestThresholdPercent?: number; releaseThresholdPercent?: number } } };
    const { ipsPerNode, scaling } = pool.spec;
    const dir = path.resolve(sandbox.logDir, '..');
    mkdirSync(dir, { recursive: true });
    timeline = path.join(dir, `timeline-${new Date().toISOString().replace(/[:.]/g, '-')}.svg`);
    writeFileSync(timeline, sampler.svg({ title: `PodVNet sandbox: IPs per node through a burst of 20 pods on ${n1.name} and its release`, max: ipsPerNode.max,
      subtitle: `pool sandbox: ${ipsPerNode.min} to ${ipsPerNode.max} IPs per node, in batches of ${scaling.batchSize}; grows when fewer than ${scaling.requestThresholdPercent ?? '?'}% of a batch are free, gives back above ${scaling.releaseThresholdPercent ?? '?'}%. Sampled every 200 ms from the NodeIPAllocations.` }));

    step('What an operator reads: the events of the pool and the records (kubectl get events)');
    await sandbox.waitFor('the release to be told in events', async () =>
      (await sandbox.kubectl(['get', 'events', '-n', 'default', '--field-selector', 'reason=IPsReleased', '-o', 'name'])).trim() !== '', 30_000).catch(() => undefined);
    const events = await sandbox.kubectl(['get', 'events', '-n', 'default', '--sort-by', '.eventTime']);
    console.log(indent(events));
    expect(/IPsAdded/.test(events) && /IPsReleased/.test(events), 'the growth and the release are told as Normal events');

    step('Least privilege: the controller and the agents ran with their own service accounts (deploy/base RBAC)');
    const denied = sandbox.kube.denials.filter((d) => d.user.startsWith('system:serviceaccount:podvnet-system:'));
    for (const d of denied.slice(0, 5)) info(d.message);
    expect(denied.length === 0, 'the API server refused none of their requests');

    if (flags.keep) {
      step('Left running (Ctrl-C to stop and clean up)');
      info(`kubectl --kubeconfig ${sandbox.kube.kubeconfigPath} get nipp,nipa`);
      info(`pods: ${[...sandbox.pods.values()].map((p) => `${p.name}=${p.ip} (ip netns exec ${p.netns} ...)`).join(', ')}`);
      info(`logs: ${sandbox.logDir}`);
      await new Promise(() => undefined);
    }
  } catch (e) {
    failures++;
    console.error(`\n\x1b[31msandbox failed:\x1b[0m ${(e as Error).message}`);
    console.error(`logs: ${sandbox.logDir}`);
  } finally {
    step('Cleaning up (every namespace, process and emulator)');
    await sandbox.close();
  }
  if (timeline) info(`timeline of the burst and the release (allocated / target / used / pending per node): ${timeline}`);
  step(failures === 0 ? 'All good' : `${failures} check(s) failed`);
  return failures === 0 ? 0 : 1;
}

/** A pod ADD may meet an empty pool; the plugin says "try again later" (code 11), as runtimes retry. */
async function addPodWaiting(sandbox: Sandbox, node: string, name: string): Promise<Pod> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await sandbox.addPod(node, name);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

process.exitCode = await main();
