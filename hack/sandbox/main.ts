import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';
import { Sandbox, SANDBOX_NETWORK, type Pod, type SandboxNode } from './sandbox.js';
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inBlocks = (ip: string, blocks: string[]) => blocks.some((b) => cidrContains(parseCIDR(b), ip));

/** What every step of the walk-through shares: the sandbox, the mode, the record reads, the tally of checks. */
class Walk {
  failures = 0;
  constructor(readonly sandbox: Sandbox, readonly block: boolean, readonly podSubnet: string | undefined) {}

  /** Prints a check's verdict; a failed one is counted, the walk goes on. */
  expect(ok: boolean, what: string): void {
    info(`${ok ? '\x1b[32mok\x1b[0m  ' : '\x1b[31mFAIL\x1b[0m'} ${what}`);
    if (!ok) this.failures++;
  }

  /** Addresses a node holds for pods: its single IPs, or the addresses of its /28 blocks. */
  async held(node: string): Promise<number> {
    const s = (await this.sandbox.record(node)).status;
    return this.block ? (s?.blocks ?? []).length * BLOCK_SIZE : (s?.ips ?? []).length;
  }

  async blocksOf(node: string): Promise<string[]> {
    return ((await this.sandbox.record(node)).status?.blocks ?? []).map((b: { prefix: string }) => b.prefix);
  }

  async printRecords(): Promise<void> {
    console.log(indent(await this.sandbox.kubectl(['get', 'nodeipallocations'])));
  }
}

async function main(): Promise<number> {
  step('Starting the sandbox');
  const podSubnet = flags['pod-subnet'];
  // Block mode: min, max and batch in whole /28s (16 addresses): one block to start, up to four per node.
  const pool = flags.block ? { allocation: 'Block', ipsPerNode: { min: 16, max: 64 }, scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 } } : undefined;
  const sandbox = await Sandbox.start({ vms: flags.vms, scaleSetInstances: flags['scale-set-instances'], podSubnet, say: info, ...(pool ? { pool } : {}) });
  const walk = new Walk(sandbox, flags.block, podSubnet);
  let timeline: string | undefined;
  const onSignal = () => { void sandbox.close().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const [n1, n2] = sandbox.nodes;
    if (!n1 || !n2) throw new Error('the sandbox needs at least two nodes');
    await poolMinimum(walk);
    const pods = await podsGetIPs(walk);
    const { a, c } = await reachability(walk, pods);
    // a picture of it: allocated / target / used / pending per node, from the records the controller works from
    const sampler = new TimelineSampler(sandbox.recordsSource(), 200).start();
    const grown = await burstGrows(walk, n1, sampler);
    await burstEnds(walk, n1, sampler, grown, () => pingEventually(a.netns, c.ip));
    await sleep(3000);
    await sampler.stop();
    timeline = await writeTimeline(sandbox, sampler, n1.name);
    await eventsTell(walk);
    leastPrivilege(walk);
    if (flags.keep) await keepRunning(sandbox);
  } catch (e) {
    walk.failures++;
    console.error(`\n\x1b[31msandbox failed:\x1b[0m ${(e as Error).message}`);
    console.error(`logs: ${sandbox.logDir}`);
  } finally {
    step('Cleaning up (every namespace, process and emulator)');
    await sandbox.close();
  }
  if (timeline) info(`timeline of the burst and the release (allocated / target / used / pending per node): ${timeline}`);
  step(walk.failures === 0 ? 'All good' : `${walk.failures} check(s) failed`);
  return walk.failures === 0 ? 0 : 1;
}

async function poolMinimum(walk: Walk): Promise<void> {
  const { sandbox, block } = walk;
  step(block
    ? 'The controller gives every selected node its minimum in /28 blocks (one ip-config with privateIPAddressPrefixLength 28 = 16 addresses)'
    : 'The controller gives every selected node its minimum of VNet IPs (secondary ip-configs on its NIC)');
  await sandbox.waitFor('every node record to hold its minimum IPs', async () => {
    for (const n of sandbox.nodes) if ((await walk.held(n.name)) < 4) return false;
    return true;
  }, 60_000);
  if (block) {
    for (const n of sandbox.nodes) {
      const bs = await walk.blocksOf(n.name);
      info(`${n.name.padEnd(22)} blocks ${bs.join(', ')}`);
      walk.expect(bs.length >= 1 && bs.every((b) => /\.(\d+)\/28$/.test(b) && Number(/\.(\d+)\/28$/.exec(b)![1]) % BLOCK_SIZE === 0), `${n.name}: whole aligned /28 blocks from Azure`);
      const single = ((await sandbox.record(n.name)).status?.ips ?? []).length;
      walk.expect(single === 0, `${n.name}: no single ip-configs (${single})`);
    }
  }
  await sandbox.waitFor('the pool to report Ready', async () =>
    (await sandbox.kubectl(['get', 'nodeippool', 'sandbox', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])) === 'True');
  console.log(indent(await sandbox.kubectl(['get', 'nodeippools'])));
  await walk.printRecords();
}

async function podsGetIPs(walk: Walk): Promise<Pod[]> {
  const { sandbox, block, podSubnet } = walk;
  step('Pods get IPs of the VNet through the CNI plugin (the real forwarder, agent and datapath)');
  const pods: Pod[] = [];
  for (const [k, n] of sandbox.nodes.entries()) for (const i of [1, 2]) pods.push(await sandbox.addPod(n.name, `web-${k}${i}`));
  for (const p of pods) info(`${p.name.padEnd(10)} on ${p.node.name.padEnd(22)} ${p.ip}`);
  walk.expect(new Set(pods.map((p) => p.ip)).size === pods.length, 'every pod has an address of its own');
  const inSubnet = (ip: string) => cidrContains(parseCIDR(sandbox.podSubnet), ip);
  walk.expect(pods.every((p) => inSubnet(p.ip)), `every pod's address is in the pool's subnet ${sandbox.podSubnet}${podSubnet ? ` (the nodes are in ${SANDBOX_NETWORK.nodeSubnet})` : ''}`);
  if (block) {
    let fromBlocks = true;
    for (const p of pods) fromBlocks &&= inBlocks(p.ip, await walk.blocksOf(p.node.name));
    walk.expect(fromBlocks, 'every pod\'s address is in one of its node\'s /28 blocks');
  }
  return pods;
}

/** Pings on the node and across the VNet; which source address a VNet host and an outside host see. */
async function reachability(walk: Walk, pods: Pod[]): Promise<{ a: Pod; c: Pod }> {
  const { sandbox } = walk;
  step('Who can reach whom (the fabric delivers a packet only to the NIC holding the IP)');
  const [a, b] = [pods[0]!, pods[1]!];
  const c = pods.find((p) => p.node !== a.node)!;
  walk.expect(await pingEventually(a.netns, b.ip), `${a.name} -> ${b.name} (same node, over the bridge)`);
  walk.expect(await pingEventually(a.netns, c.ip), `${a.name} -> ${c.name} (another node, over the VNet)`);
  const port = 8080;
  const vnetPeer = startPeerServer(sandbox.vnetHost.netns, port);
  const outsidePeer = startPeerServer(sandbox.outsideHost.netns, port);
  try {
    const seenInVnet = await peerAddressSeen(a.netns, SANDBOX_NETWORK.vnetHostIP, port);
    walk.expect(seenInVnet === a.ip, `a VNet host sees the pod's own address (${seenInVnet}): no SNAT inside the VNet`);
    const seenOutside = await peerAddressSeen(a.netns, SANDBOX_NETWORK.outsideHostIP, port);
    walk.expect(seenOutside === a.node.azure.primaryIP, `a host outside the VNet sees the node's address (${seenOutside}): SNAT on the way out`);
  } finally {
    vnetPeer.stop();
    outsidePeer.stop();
  }
  return { a, c };
}

interface Grown { burst: Pod[]; held: number; blocks: string[] }

async function burstGrows(walk: Walk, n1: SandboxNode, sampler: TimelineSampler): Promise<Grown> {
  const { sandbox, block } = walk;
  step(`A burst of pods on ${n1.name}: the agent raises its demand, the controller adds IPs in batches`);
  await sleep(1500);
  sampler.mark(`burst: 20 pods on ${n1.name}`);
  const before = await walk.held(n1.name);
  const burst: Pod[] = [];
  for (let i = 0; i < 20; i++) burst.push(await sandbox.addPodRetrying(n1.name, `burst-${i}`));
  const grown = await walk.held(n1.name);
  info(`${n1.name}: ${before} IPs before, ${grown} now, ${burst.length + 2} pods`);
  walk.expect(grown > before, 'the node\'s pool grew with demand');
  const grownBlocks = block ? await walk.blocksOf(n1.name) : [];
  if (block) {
    info(`${n1.name}: blocks ${grownBlocks.join(', ')}`);
    walk.expect(grown % BLOCK_SIZE === 0, `it grew by whole /28 blocks (${before / BLOCK_SIZE} -> ${grown / BLOCK_SIZE})`);
    const onNode = [...sandbox.pods.values()].filter((p) => p.node.name === n1.name);
    walk.expect(onNode.every((p) => inBlocks(p.ip, grownBlocks)), `all ${onNode.length} pods on ${n1.name} have addresses of its blocks`);
  }
  await walk.printRecords();
  return { burst, held: grown, blocks: grownBlocks };
}

async function burstEnds(walk: Walk, n1: SandboxNode, sampler: TimelineSampler, grown: Grown, stayedTalk: () => Promise<boolean>): Promise<void> {
  const { sandbox, block } = walk;
  step('The burst ends: the agent releases what it does not need, the controller removes exactly those');
  sampler.mark('the 20 burst pods deleted');
  for (const p of grown.burst) await sandbox.deletePod(p.name);
  await sandbox.waitFor('the node to shrink back', async () => (await walk.held(n1.name)) < grown.held, 60_000);
  const shrunk = await walk.held(n1.name);
  info(`${n1.name}: ${shrunk} IPs after release`);
  walk.expect(shrunk < grown.held, 'the node\'s pool shrank after release');
  if (block) {
    const left = await walk.blocksOf(n1.name);
    info(`${n1.name}: blocks ${left.join(', ')} (gave back ${grown.blocks.filter((b) => !left.includes(b)).join(', ')})`);
    const stayed = [...sandbox.pods.values()].filter((p) => p.node.name === n1.name);
    walk.expect(stayed.every((p) => inBlocks(p.ip, left)), `released whole blocks only: the ${stayed.length} pods that stayed keep their blocks`);
  }
  walk.expect(await stayedTalk(), 'pods that stayed keep talking');
  await walk.printRecords();
}

/** The burst's picture, as an SVG beside the logs; returns its path. */
async function writeTimeline(sandbox: Sandbox, sampler: TimelineSampler, burstNode: string): Promise<string> {
  const pool = JSON.parse(await sandbox.kubectl(['get', 'nodeippool', 'sandbox', '-o', 'json'])) as { spec: { ipsPerNode: { min: number; max: number }; scaling: { batchSize: number; requestThresholdPercent?: number; releaseThresholdPercent?: number } } };
  const { ipsPerNode, scaling } = pool.spec;
  const dir = path.resolve(sandbox.logDir, '..');
  mkdirSync(dir, { recursive: true });
  const timeline = path.join(dir, `timeline-${new Date().toISOString().replace(/[:.]/g, '-')}.svg`);
  writeFileSync(timeline, sampler.svg({ title: `PodVNet sandbox: IPs per node through a burst of 20 pods on ${burstNode} and its release`, max: ipsPerNode.max,
    subtitle: `pool sandbox: ${ipsPerNode.min} to ${ipsPerNode.max} IPs per node, in batches of ${scaling.batchSize}; grows when fewer than ${scaling.requestThresholdPercent ?? '?'}% of a batch are free, gives back above ${scaling.releaseThresholdPercent ?? '?'}%. Sampled every 200 ms from the NodeIPAllocations.` }));
  return timeline;
}

async function eventsTell(walk: Walk): Promise<void> {
  const { sandbox } = walk;
  step('What an operator reads: the events of the pool and the records (kubectl get events)');
  await sandbox.waitFor('the release to be told in events', async () =>
    (await sandbox.kubectl(['get', 'events', '-n', 'default', '--field-selector', 'reason=IPsReleased', '-o', 'name'])).trim() !== '', 30_000).catch(() => undefined);
  const events = await sandbox.kubectl(['get', 'events', '-n', 'default', '--sort-by', '.eventTime']);
  console.log(indent(events));
  walk.expect(/IPsAdded/.test(events) && /IPsReleased/.test(events), 'the growth and the release are told as Normal events');
}

function leastPrivilege(walk: Walk): void {
  step('Least privilege: the controller and the agents ran with their own service accounts (deploy/base RBAC)');
  const denied = walk.sandbox.kube.denials.filter((d) => d.user.startsWith('system:serviceaccount:podvnet-system:'));
  for (const d of denied.slice(0, 5)) info(d.message);
  walk.expect(denied.length === 0, 'the API server refused none of their requests');
}

async function keepRunning(sandbox: Sandbox): Promise<never> {
  step('Left running (Ctrl-C to stop and clean up)');
  info(`kubectl --kubeconfig ${sandbox.kube.kubeconfigPath} get nipp,nipa`);
  info(`pods: ${[...sandbox.pods.values()].map((p) => `${p.name}=${p.ip} (ip netns exec ${p.netns} ...)`).join(', ')}`);
  info(`logs: ${sandbox.logDir}`);
  return new Promise(() => undefined);
}

process.exitCode = await main();
