import test from 'ava';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { startAgent } from '../agent/agent.js';
import { encodeRequest } from '../agent/cni-socket.js';
import { startTestNode, type TestNode } from '../agent/testing/test-node.js';
import { runRaw } from '../datapath/exec.js';
import { hostVethName } from '../datapath/index.js';

/**
 * DEL while the agent is down, end to end: the real C forwarder queues the DEL and answers success, and
 * the restarted agent applies it (detach + release through the normal DEL path) before it serves any ADD.
 * Real namespaces, the real datapath, a simulated VM. Needs root.
 */

const ipOf = (r: { json: { ips: Array<{ address: string }> } }) => r.json.ips[0]!.address.split('/')[0]!;

async function kernelTraces(node: TestNode, containerId: string, ip: string): Promise<string[]> {
  const ns = node.vm.netns;
  const found: string[] = [];
  if ((await runRaw(ns, ['ip', 'link', 'show', 'dev', hostVethName(containerId, 'eth0')])).code === 0) found.push('veth');
  if ((await runRaw(ns, ['ip', '-4', 'route', 'show', `${ip}/32`])).stdout.trim()) found.push('route');
  const neighs = JSON.parse((await runRaw(ns, ['ip', '-j', '-4', 'neigh', 'show', 'dev', 'podvnet0'])).stdout || '[]') as Array<{ dst: string }>;
  if (neighs.some((n) => n.dst === ip)) found.push('neighbour');
  const rules = (await runRaw(ns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC'])).stdout;
  if (rules.includes(`--physdev-in ${hostVethName(containerId, 'eth0')} `)) found.push('anti-spoofing rule');
  return found;
}

test('DEL with the agent down: queued by the forwarder (success), applied at start-up before the next ADD is served', async (t) => {
  t.timeout(120_000);
  const node = await startTestNode({ podIPCount: 1 });
  t.teardown(() => node.close());
  const queueDir = path.join(node.dir, 'state', 'del-queue');
  const p1 = await node.pod('q');
  const a1 = await node.cni('ADD', { containerId: 'queued-pod', netns: p1 });
  t.is(a1.code, 0, a1.stdout);
  const ip = ipOf(a1);
  t.deepEqual(await kernelTraces(node, 'queued-pod', ip), ['veth', 'route', 'neighbour', 'anti-spoofing rule'], 'what the ADD set up (and the check can see)');

  await node.agent!.close();
  node.agent = undefined;
  const del = await node.cni('DEL', { containerId: 'queued-pod', netns: p1 });
  t.is(del.code, 0, del.stdout + del.stderr);
  t.is(del.stdout, '');
  const queued = await readdir(queueDir);
  t.is(queued.length, 1, queued.join(' '));
  t.regex(queued[0]!, /-queued-pod\.del$/);
  // the other commands still say "try again later"
  const p2 = await node.pod('q');
  t.is((await node.cni('ADD', { containerId: 'next-pod', netns: p2 })).json.code, 11);

  // The agent comes back; an ADD sent the moment its socket answers must already find the IP free.
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  const a2 = await node.cni('ADD', { containerId: 'next-pod', netns: p2 });
  t.is(a2.code, 0, `the queued DEL was applied before this ADD was served: ${a2.stdout}`);
  t.is(ipOf(a2), ip, 'it got the IP the queued DEL freed (the node has one)');
  t.deepEqual(await readdir(queueDir), [], 'the applied file is gone');
  t.is(agent.addresses.lookup({ containerId: 'queued-pod', ifName: 'eth0' }), undefined);
  // the new pod has the same IP (so its own route and neighbour entry): the old pod's veth and rule are gone
  await node.retiredVethsDeleted();
  t.deepEqual(await kernelTraces(node, 'queued-pod', ip), ['route', 'neighbour'], 'only what the new pod with this IP needs');
  t.deepEqual(await kernelTraces(node, 'next-pod', ip), ['veth', 'route', 'neighbour', 'anti-spoofing rule']);
  t.is(agent.delQueue.totals.applied, 1);
  const metrics = await (await fetch(`http://${agent.healthAddress}/metrics`)).text();
  t.regex(metrics, /podvnet_agent_queued_dels_total\{result="applied"\} 1/);
});

test('queued DELs that appear while the agent runs are applied; a corrupt one is moved aside; a DEL older than the current ADD is dropped', async (t) => {
  t.timeout(120_000);
  const node = await startTestNode({ podIPCount: 4 });
  t.teardown(() => node.close());
  const agent = node.agent!;
  const queueDir = path.join(node.dir, 'state', 'del-queue');
  const p1 = await node.pod('w');
  const a1 = await node.cni('ADD', { containerId: 'raced', netns: p1 });
  t.is(a1.code, 0, a1.stdout);
  const p2 = await node.pod('w');
  const a2 = await node.cni('ADD', { containerId: 'readded', netns: p2 });
  t.is(a2.code, 0, a2.stdout);

  const request = (containerId: string, netns: string) =>
    encodeRequest({ env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }, stdin: JSON.stringify(node.conf()) });
  const name = (at: number, id: string) => `${Math.floor(at / 1000)}.${String((at % 1000) * 1e6).padStart(9, '0')}-1-${id}.del`;
  // as the forwarder writes them: complete files renamed into place
  await writeFile(path.join(queueDir, '.tmp-x'), request('raced', p1));
  await writeFile(path.join(queueDir, name(Date.now() - 60_000, 'readded')), request('readded', p2)); // queued before its ADD
  await writeFile(path.join(queueDir, name(Date.now(), 'torn')), request('torn', p1).subarray(0, 20));
  const { rename } = await import('node:fs/promises');
  await rename(path.join(queueDir, '.tmp-x'), path.join(queueDir, name(Date.now(), 'raced')));

  const deadline = Date.now() + 30_000;
  while ((await readdir(queueDir)).some((n) => n.endsWith('.del')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  t.deepEqual((await readdir(queueDir)).sort(), ['rejected']);
  t.is(agent.addresses.lookup({ containerId: 'raced', ifName: 'eth0' }), undefined, 'applied');
  await node.retiredVethsDeleted();
  t.deepEqual(await kernelTraces(node, 'raced', ipOf(a1)), [], 'veth, route, neighbour entry and rule all gone');
  t.deepEqual(await kernelTraces(node, 'readded', ipOf(a2)), ['veth', 'route', 'neighbour', 'anti-spoofing rule']);
  t.is(agent.addresses.lookup({ containerId: 'readded', ifName: 'eth0' })?.ip, ipOf(a2), 'a DEL queued before the current ADD does not take it away');
  const rejected = await readdir(path.join(queueDir, 'rejected'));
  t.is(rejected.length, 1);
  t.regex(rejected[0]!, /-torn\.del$/);
  t.like(agent.delQueue.totals, { applied: 1, superseded: 1, rejected: 1 });
  t.is((await readFile(path.join(queueDir, 'rejected', rejected[0]!))).length, 20, 'moved aside untouched');
  t.true((await node.cni('ADD', { containerId: 'after', netns: await node.pod('w') })).code === 0, 'the agent still serves');
});
