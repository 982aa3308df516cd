import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';
import { Sandbox, SANDBOX_NETWORK, type Pod } from './sandbox.js';
import { TimelineSampler } from './timeline-svg.js';
import { cidrContains, parseCIDR } from '../../crds/ipv4.js';
import { BLOCK_SIZE } from '../../crds/api/group.js';
import { peerAddressSeen, pingEventually, startPeerServer } from '../../node-plugin/datapath/testing/testkit.js';

/**
 * `bash hack/sandbox.sh`: starts the local sandbox and walks through what PodVNet does, printing what a
 * person would look at: kubectl output, pod IPs, who can reach whom and which source address arrives.
 * --keep leaves it running (until Ctrl-C) with a kubeconfig to poke at it. --pod-subnet CIDR (e.g.
 * 10.240.16.0/20) gives pods addresses of a second subnet of the VNet, not of the nodes' subnet. --block runs
 * the pool in Block mode: /28 blocks on the NICs, pods packed into them, growth and release by whole block.
 */

const Flags = z.strictObject({
  keep: z.boolean().default(false).describe('leave it running (until Ctrl-C) with a kubeconfig to poke at it'),
  'pod-subnet': z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be a CIDR such as 10.240.16.0/20').optional()
    .describe('give pods addresses of a second subnet of the VNet, not of the nodes\' subnet'),
  vms: z.coerce.number().int().min(2).max(64).default(2).describe('standalone VMs (nodes)'),
  'scale-set-instances': z.coerce.number().int().min(0).max(64).default(1).describe('scale-set instances (nodes)'),
  block: z.boolean().default(false).describe('a Block pool: /28 blocks on each NIC (16 addresses per ip-config), grown and given back by whole block'),
}).refine((f) => !(f.block && f['pod-subnet'] !== undefined), {
  path: ['block'],
  message: 'cannot be combined with --pod-subnet: Azure refuses ip-configs of two subnets on a NIC that holds a /28 block',
});

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(renderHelp('sandbox: emulated Azure and API server, the compiled controller and node agents, simulated VMs; shows pods getting VNet IPs',
    'bash hack/sandbox.sh [--flag value]...', describeSettings(Flags.shape, { flag: (k) => `--${k}` }), ['No environment variables: flags only. Run as root.']));
  process.exit(0);
}
const parsedFlags = Flags.safeParse(parseArgs({
  options: { keep: { type: 'boolean' }, block: { type: 'boolean' }, 'pod-subnet': { type: 'string' }, vms: { type: 'string' }, 'scale-set-instances': { type: 'string' } },
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
  const block = flags.block;
  // Block mode: min, max and batch in whole /28s (16 addresses): one block to start, up to four per node.
  const pool = block ? { allocation: 'Block', ipsPerNode: { min: 16, max: 64 }, scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 } } : undefined;
  const sandbox = await Sandbox.start({ vms: flags.vms, scaleSetInstances: flags['scale-set-instances'], podSubnet, say: info, ...(pool ? { pool } : {}) });
  /** Addresses a node holds for pods: its single IPs, or the addresses of its /28 blocks. */
  const held = async (node: string): Promise<number> => {
    const s = (await sandbox.record(node)).status;
    return block ? (s?.blocks ?? []).length * BLOCK_SIZE : (s?.ips ?? []).length;
  };
  const blocksOf = async (node: string): Promise<string[]> => ((await sandbox.record(node)).status?.blocks ?? []).map((b: { prefix: string }) => b.prefix);
  const inBlocks = (ip: string, blocks: string[]) => blocks.some((b) => cidrContains(parseCIDR(b), ip));
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

    step(block
      ? 'The controller gives every selected node its minimum in /28 blocks (one ip-config with privateIPAddressPrefixLength 28 = 16 addresses)'
      : 'The controller gives every selected node its minimum of VNet IPs (secondary ip-configs on its NIC)');
    await sandbox.waitFor('every node record to hold its minimum IPs', async () => {
      for (const n of sandbox.nodes) if ((await held(n.name)) < 4) return false;
      return true;
    }, 60_000);
    if (block) {
      for (const n of sandbox.nodes) {
        const bs = await blocksOf(n.name);
        info(`${n.name.padEnd(22)} blocks ${bs.join(', ')}`);
        expect(bs.length >= 1 && bs.every((b) => /\.(\d+)\/28$/.test(b) && Number(/\.(\d+)\/28$/.exec(b)![1]) % BLOCK_SIZE === 0), `${n.name}: whole aligned /28 blocks from Azure`);
        const single = ((await sandbox.record(n.name)).status?.ips ?? []).length;
        expect(single === 0, `${n.name}: no single ip-configs (${single})`);
      }
    }
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
    if (block) {
      let fromBlocks = true;
      for (const p of pods) fromBlocks &&= inBlocks(p.ip, await blocksOf(p.node.name));
      expect(fromBlocks, 'every pod\'s address is in one of its node\'s /28 blocks');
    }

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
    const before = await held(n1.name);
    const burst: Pod[] = [];
    for (let i = 0; i < 20; i++) burst.push(await addPodWaiting(sandbox, n1.name, `burst-${i}`));
    const grown = await held(n1.name);
    info(`${n1.name}: ${before} IPs before, ${grown} now, ${burst.length + 2} pods`);
    expect(grown > before, 'the node\'s pool grew with demand');
    const grownBlocks = block ? await blocksOf(n1.name) : [];
    if (block) {
      info(`${n1.name}: blocks ${grownBlocks.join(', ')}`);
      expect(grown % BLOCK_SIZE === 0, `it grew by whole /28 blocks (${before / BLOCK_SIZE} -> ${grown / BLOCK_SIZE})`);
      const onNode = [...sandbox.pods.values()].filter((p) => p.node.name === n1.name);
      expect(onNode.every((p) => inBlocks(p.ip, grownBlocks)), `all ${onNode.length} pods on ${n1.name} have addresses of its blocks`);
    }
    console.log(indent(await sandbox.kubectl(['get', 'nodeipallocations'])));

    step('The burst ends: the agent releases what it does not need, the controller removes exactly those');
    sampler.mark('the 20 burst pods deleted');
    for (const p of burst) await sandbox.deletePod(p.name);
    await sandbox.waitFor('the node to shrink back', async () => (await held(n1.name)) < grown, 60_000);
    const shrunk = await held(n1.name);
    info(`${n1.name}: ${shrunk} IPs after release`);
    expect(shrunk < grown, 'the node\'s pool shrank after release');
    if (block) {
      const left = await blocksOf(n1.name);
      info(`${n1.name}: blocks ${left.join(', ')} (gave back ${grownBlocks.filter((b) => !left.includes(b)).join(', ')})`);
      const stayed = [...sandbox.pods.values()].filter((p) => p.node.name === n1.name);
      expect(stayed.every((p) => inBlocks(p.ip, left)), `released whole blocks only: the ${stayed.length} pods that stayed keep their blocks`);
    }
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
