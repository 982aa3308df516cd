import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import * as datapath from '../datapath/index.js';
import { chainNames } from '../datapath/names.js';
import { startAgent, type RunningAgent } from './agent.js';
import type { PoolSettings } from './address-service.js';
import { KubeRecordSource } from './record-source.js';
import { FileRecordSource } from './file-source.js';
import { awaitingVethTeardown } from './reconcile.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { callCniSocket } from './cni-socket.js';
import { until } from './testing/poll.js';
import { startTestNode, type TestNode } from './testing/test-node.js';
import { emulatorTarget, kubeWithCrds } from './testing/kube.js';

/**
 * Node agent hardening: readiness on nodes no pool selects, the periodic node resync and /readyz's view
 * of a broken node network, and GC racing with ADD. Real namespaces on the datapath's simulated VNet.
 */

const group = { group: 'podvnet.io', version: 'v1alpha1' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readyz(agent: RunningAgent): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${agent.healthAddress}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function withNode(t: { teardown(fn: () => Promise<void>): void }, podIPCount = 4): Promise<TestNode> {
  const node = await startTestNode({ podIPCount, startAgent: false });
  t.teardown(() => node.close());
  return node;
}


test('a node no NodeIPPool selects: /readyz ready with the reason, ADD 11 naming nodeSelector, STATUS 50; a record later works, its deletion keeps DEL working', async (t) => {
  t.timeout(60_000);
  const { emu, co } = await kubeWithCrds(t);
  const node = await withNode(t);
  const kubeconfig = path.join(node.dir, 'kubeconfig');
  await writeFile(kubeconfig, await readFile(emu.kubeconfigPath, 'utf8'));
  // another node's record exists; ours does not
  await co.createClusterCustomObject({ ...group, plural: 'nodeipallocations', body: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name: 'other-node' }, spec: { poolName: 'p' } } });

  const agent = await startAgent({ ...node.config, recordFile: undefined, kubeconfig }, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  t.is(agent.addresses.recordPresence(), 'absent', 'the first list said there is no record');
  const r = await readyz(agent);
  t.is(r.status, 200, r.body);
  t.regex(r.body, /^ok: node vm1 has no NodeIPAllocation: no NodeIPPool selects it \(check the pools' nodeSelector/);
  const add = await node.cni('ADD', { containerId: 'early', netns: await node.pod('n') });
  t.is(add.json.code, 11, add.stdout);
  t.regex(add.json.msg, /node vm1 has no NodeIPAllocation: no NodeIPPool selects it \(check the pools' nodeSelector/);
  const status = await node.cni('STATUS', {});
  t.is(status.json.code, 50, status.stdout);
  t.regex(await (await fetch(`http://${agent.healthAddress}/metrics`)).text(), /^podvnet_agent_record_present 0$/m);
  t.regex(status.json.msg, /no NodeIPAllocation/);
  t.is((await node.cni('DEL', { containerId: 'never', netns: await node.pod('n') })).code, 0, 'DEL of something never added is fine');

  // A pool starts selecting the node: the record appears without status (not ready), then with it.
  const fileRecord = JSON.parse(await readFile(node.recordPath, 'utf8')).record;
  await co.createClusterCustomObject({ ...group, plural: 'nodeipallocations', body: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name: 'vm1' }, spec: { poolName: 'p' } } });
  t.true(await until(() => agent.addresses.recordPresence() === 'present'));
  const noStatus = await readyz(agent);
  t.is(noStatus.status, 503, noStatus.body);
  t.regex(noStatus.body, /has no status yet/);
  const cur = (await co.getClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'vm1' })) as Record<string, unknown>;
  await co.replaceClusterCustomObjectStatus({ ...group, plural: 'nodeipallocations', name: 'vm1', body: { ...cur, status: fileRecord.status } });
  t.true(await until(() => agent.addresses.isReady()));
  await agent.reconciled;
  const ready = await readyz(agent);
  t.deepEqual(ready, { status: 200, body: 'ok\n' });
  const pod = await node.pod('n');
  const added = await node.cni('ADD', { containerId: 'pod1', netns: pod });
  t.is(added.code, 0, added.stdout);
  const ip = added.json.ips[0].address.split('/')[0] as string;

  // The node leaves every pool: the record is deleted while the pod still holds its IP. Ready again
  // (with the reason), and the pod's DEL still tears it down with the last known node network.
  await co.deleteClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'vm1' });
  t.true(await until(() => agent.addresses.recordPresence() === 'absent'));
  t.is((await readyz(agent)).status, 200);
  const del = await node.cni('DEL', { containerId: 'pod1', netns: pod });
  t.is(del.code, 0, del.stdout);
  t.is(agent.addresses.lookup({ containerId: 'pod1', ifName: 'eth0' }), undefined, 'IP released');
  t.false((await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show'])).includes(`${ip} `), 'route gone');
  await node.retiredVethsDeleted();
  t.is((await node.fabric.execRaw('vm1', ['ip', 'link', 'show', 'dev', datapath.hostVethName('pod1', 'eth0')])).code !== 0, true, 'veth gone');
});

test('a record source that is waiting (nothing read yet) is not ready; a record file with "record": null is a node no pool selects', async (t) => {
  const node = await withNode(t);
  await writeFile(node.recordPath, 'not json yet');
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  const waiting = await readyz(agent);
  t.is(waiting.status, 503);
  t.regex(waiting.body, /has not been read yet/);
  await writeFile(node.recordPath, JSON.stringify({ record: null }));
  t.true(await until(() => agent.addresses.recordPresence() === 'absent'));
  t.is((await readyz(agent)).status, 200);
});

/** Runs iptables in the VM's namespace with the backend the datapath chose. */
async function iptables(node: TestNode, args: string[]): Promise<void> {
  const net = node.agent!.addresses.nodeNetwork()!;
  const { iptablesBackend } = await datapath.nodeDiagnostics(net);
  await node.fabric.exec('vm1', [`iptables-${iptablesBackend}`, '-w', '5', ...args]);
}

test('/readyz lists node network problems (flushed chain, lost jump); the resync puts them back', async (t) => {
  t.timeout(60_000);
  const node = await withNode(t);
  const agent = await node.startAgent({ resyncIntervalMs: 0 });
  t.deepEqual(await readyz(agent), { status: 200, body: 'ok\n' }, 'the node network was set up at start, before any pod');
  const { snat, forward } = chainNames('podvnet0');
  await iptables(node, ['-t', 'nat', '-F', snat]);
  await iptables(node, ['-t', 'filter', '-D', 'FORWARD', '-m', 'comment', '--comment', 'podvnet: forward pod traffic', '-j', forward]);
  const broken = await readyz(agent);
  t.is(broken.status, 503);
  t.regex(broken.body, /not ready: the node network is broken: /);
  t.regex(broken.body, new RegExp(`nat/${snat} is empty`));
  t.regex(broken.body, new RegExp(`filter/FORWARD -j ${forward} is missing`));
  const metrics = async () => (await fetch(`http://${agent.healthAddress}/metrics`)).text();
  t.regex(await metrics(), /^podvnet_agent_node_network_problems 2$/m);
  t.regex(await metrics(), /^podvnet_agent_record_present 1$/m);
  // a pod event would not repair it (ensureNode is memoized); the resync does
  const add = await node.cni('ADD', { containerId: 'p', netns: await node.pod('r') });
  t.is(add.code, 0, add.stdout);
  t.is((await readyz(agent)).status, 503, 'still broken after an ADD');
  await agent.resyncNode();
  t.deepEqual(await readyz(agent), { status: 200, body: 'ok\n' });
  t.regex(await metrics(), /^podvnet_agent_node_network_problems 0$/m);
});

test('/readyz names the pods whose pinned neighbour entry was flushed (anti-ARP-spoofing); the resync re-pins them', async (t) => {
  t.timeout(60_000);
  const node = await withNode(t);
  const agent = await node.startAgent({ resyncIntervalMs: 0 });
  for (const id of ['pin-a', 'pin-b']) {
    const add = await node.cni('ADD', { containerId: id, netns: await node.pod(id) });
    t.is(add.code, 0, add.stdout);
  }
  t.deepEqual(await readyz(agent), { status: 200, body: 'ok\n' });
  await node.fabric.exec('vm1', ['ip', 'neigh', 'flush', 'dev', 'podvnet0', 'nud', 'all']);
  const broken = await readyz(agent);
  t.is(broken.status, 503);
  for (const id of ['pin-a', 'pin-b']) t.regex(broken.body, new RegExp(`pod ${id}/eth0 \\(10\\.40\\.4\\.\\d+, pvn\\w+\\): the node's neighbour entry`));
  await agent.resyncNode();
  t.deepEqual(await readyz(agent), { status: 200, body: 'ok\n' });
  // And the resync itself (ensureNode again on an existing bridge) flushes nothing.
  await agent.resyncNode();
  t.deepEqual(await readyz(agent), { status: 200, body: 'ok\n' });
});

test('the periodic resync (--resync-interval-ms) repairs the node network by itself', async (t) => {
  t.timeout(60_000);
  const node = await withNode(t);
  const agent = await node.startAgent({ resyncIntervalMs: 200 });
  const { snat } = chainNames('podvnet0');
  await iptables(node, ['-t', 'nat', '-F', 'POSTROUTING']);
  await iptables(node, ['-t', 'nat', '-F', snat]);
  t.true(await until(async () => (await readyz(agent)).status === 200), 'repaired by the periodic resync');
  const net = agent.addresses.nodeNetwork()!;
  t.deepEqual((await datapath.nodeDiagnostics(net)).problems, []);
});

test('GC racing with an ADD: an interface attached while GC lists the kernel is not taken for an orphan', async (t) => {
  t.timeout(60_000);
  const node = await withNode(t);
  let hold: Promise<void> | undefined;
  let listing!: () => void;
  const listed = new Promise<void>((r) => (listing = r));
  const slowList = {
    ...datapath,
    listAttachments: async (net: datapath.NodeNetwork) => {
      if (hold) {
        listing();
        await hold; // the kernel is read only after the ADD below is done
      }
      return datapath.listAttachments(net);
    },
  };
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }), datapath: slowList });
  node.agent = agent;
  await agent.reconciled;
  let release!: () => void;
  hold = new Promise<void>((r) => (release = r));
  // The runtime garbage-collects with an empty valid list, then (before GC is done) sets up a new pod.
  const gc = node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': [] }) });
  await listed;
  hold = undefined;
  const pod = await node.pod('g');
  const add = await node.cni('ADD', { containerId: 'fresh', netns: pod });
  t.is(add.code, 0, add.stdout);
  release();
  t.is((await gc).code, 0);
  const check = await node.cni('CHECK', { containerId: 'fresh', netns: pod, conf: node.conf({ prevResult: add.json }) });
  t.is(check.code, 0, `the new pod's interface survived GC: ${check.stdout}`);
});

test('GC prunes orphan pod routes even while an ADD is in flight, and leaves the in-flight pod\'s route alone', async (t) => {
  t.timeout(60_000);
  const node = await withNode(t);
  let attaching!: () => void;
  const attachStarted = new Promise<void>((r) => (attaching = r));
  let proceed!: () => void;
  const go = new Promise<void>((r) => (proceed = r));
  const slowAttach = {
    ...datapath,
    attachPod: async (...a: Parameters<typeof datapath.attachPod>) => {
      attaching();
      await go;
      return datapath.attachPod(...a);
    },
  };
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }), datapath: slowAttach });
  node.agent = agent;
  t.teardown(() => proceed()); // never leave the ADD hanging, even when an assertion fails
  await agent.reconciled;
  // a route to a pod whose veth vanished without a DEL naming its IP
  await node.fabric.exec('vm1', ['ip', 'route', 'add', '10.40.4.200/32', 'dev', 'podvnet0', 'metric', '4242']);
  const pod = await node.pod('f');
  const add = callCniSocket(node.socket, { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'inflight', CNI_NETNS: pod, CNI_IFNAME: 'eth0' }, stdin: JSON.stringify(node.conf()) });
  await attachStarted;
  const gc = await node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': [{ containerID: 'inflight', ifname: 'eth0' }] }) });
  t.is(gc.code, 0, gc.stdout);
  t.false((await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show'])).includes('10.40.4.200'), 'orphan route pruned');
  proceed();
  const res = await add;
  t.is(res.exitCode, 0, res.stdout);
  const ip = (JSON.parse(res.stdout) as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
  t.true((await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show'])).includes(`${ip} `), 'the in-flight pod has its route');
});

test('record source: a slow read of the pool never brings back an older version of the record, nor a deleted one', async (t) => {
  t.timeout(30_000);
  const { emu, co } = await kubeWithCrds(t);
  const source = new KubeRecordSource(emulatorTarget(emu), 'n1', pino({ level: 'silent' }));
  t.teardown(() => source.stop());
  // The pool read is scripted: each call waits until the test lets it answer.
  const gates: Array<() => void> = [];
  (source as unknown as { poolSettings: (name: string) => Promise<PoolSettings | undefined> }).poolSettings = () =>
    new Promise((resolve) => gates.push(() => resolve(undefined)));
  const seen: Array<string | undefined> = [];
  await source.start((record: NodeIPAllocation | undefined) => seen.push(record?.spec.poolName));
  t.deepEqual(seen, [undefined], 'the first list says: no record');
  const body = (poolName: string) => ({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name: 'n1' }, spec: { poolName } });
  await co.createClusterCustomObject({ ...group, plural: 'nodeipallocations', body: body('first') });
  t.true(await until(() => gates.length === 1));
  const cur = (await co.getClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1' })) as { metadata: Record<string, unknown> };
  await co.replaceClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1', body: { ...body('second'), metadata: cur.metadata } });
  t.true(await until(() => gates.length === 2));
  gates[1]!(); // the newer version's pool read answers first
  gates[0]!();
  await sleep(50);
  t.deepEqual(seen, [undefined, 'second'], 'the older version, answered later, is dropped');
  // the record is deleted while a version is waiting for its pool: it must stay deleted
  const cur2 = (await co.getClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1' })) as { metadata: Record<string, unknown> };
  await co.replaceClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1', body: { ...body('third'), metadata: cur2.metadata } });
  t.true(await until(() => gates.length === 3));
  await co.deleteClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1' });
  t.true(await until(() => seen.length === 3));
  gates[2]!();
  await sleep(50);
  t.deepEqual(seen, [undefined, 'second', undefined]);
});

test('spec writes: none while the node has no record; a record deleted and created again gets the demand written anew', async (t) => {
  t.timeout(30_000);
  const node = await withNode(t);
  const full = JSON.parse(await readFile(node.recordPath, 'utf8')) as { record: NodeIPAllocation; pool: PoolSettings };
  const put = (record: NodeIPAllocation | null) => writeFile(node.recordPath, JSON.stringify({ record, pool: full.pool }));
  await put(null);
  const source = new FileRecordSource(node.recordPath, pino({ level: 'silent' }), 20);
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }), source });
  node.agent = agent;
  await sleep(300);
  t.deepEqual(source.writes, [], 'nothing to patch while there is no record');

  await put({ ...full.record, metadata: { name: 'vm1', uid: 'u1' } });
  t.true(await until(() => source.writes.length === 1));
  t.deepEqual(source.writes[0]!.demand, { usedIPs: 0, pendingIPs: 0 });
  await agent.reconciled;
  const add = await node.cni('ADD', { containerId: 'w', netns: await node.pod('w') });
  t.is(add.code, 0, add.stdout);
  t.true(await until(() => source.writes.at(-1)?.demand.usedIPs === 1));
  const before = source.writes.length;

  await put(null);
  t.true(await until(() => agent.addresses.recordPresence() === 'absent'));
  await put({ ...full.record, metadata: { name: 'vm1', uid: 'u2' } }); // spec without demand, as the controller creates it
  t.true(await until(() => source.writes.length > before), 'the new record is told the demand');
  t.deepEqual(source.writes.at(-1)!.demand, { usedIPs: 1, pendingIPs: 0 });
});

test('restarted on a node that left every pool, the agent still tears down the pods it holds (the node network is kept in its state)', async (t) => {
  t.timeout(30_000);
  const node = await withNode(t);
  await node.startAgent();
  const pod = await node.pod('left');
  const add = await node.cni('ADD', { containerId: 'left', netns: pod });
  t.is(add.code, 0, add.stdout);
  const ip = add.json.ips[0].address.split('/')[0] as string;
  await node.agent!.close();
  // while the agent is down (a DaemonSet update), the controller deletes the node's record
  const full = JSON.parse(await readFile(node.recordPath, 'utf8')) as { pool: PoolSettings };
  await writeFile(node.recordPath, JSON.stringify({ record: null, pool: full.pool }));
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  t.is(agent.addresses.recordPresence(), 'absent');
  const del = await node.cni('DEL', { containerId: 'left', netns: pod });
  t.is(del.code, 0, del.stdout);
  t.is(agent.addresses.lookup({ containerId: 'left', ifName: 'eth0' }), undefined);
  t.false((await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show'])).includes(`${ip} `), 'route gone');
  await node.retiredVethsDeleted();
  t.not((await node.fabric.execRaw('vm1', ['ip', 'link', 'show', 'dev', datapath.hostVethName('left', 'eth0')])).code, 0, 'veth gone');
});

test('store: a stored node network that no longer parses is forgotten, never fatal', async (t) => {
  const node = await withNode(t);
  const { mkdir } = await import('node:fs/promises');
  const { FileStore } = await import('./ipam/store.js');
  await mkdir(node.config.stateDir, { recursive: true });
  const alloc = { containerId: 'c', ifName: 'eth0', runtime: 'cni', ip: '10.40.4.10', assignedAt: 1 };
  await writeFile(path.join(node.config.stateDir, 'allocations.json'), JSON.stringify({ version: 1, allocations: [alloc], released: [], cooldown: {}, nodeNetwork: { bridgeName: 'x' } }));
  const store = new FileStore(node.config.stateDir);
  const state = await store.lock();
  t.teardown(() => store.unlock());
  t.deepEqual(state.allocations, [alloc]);
  t.is(state.nodeNetwork, undefined);
});

test('reconcile: an allocation whose namespace is gone but whose veth is still listed is awaited, not kept for good', async (t) => {
  const a = (id: string, netnsPath: string, runtime: 'cni' | 'cnm' = 'cni') => ({ containerId: id, ifName: 'eth0', runtime, ip: '10.0.0.1', assignedAt: 1, netnsPath });
  const input = {
    allocations: [a('dying', '/run/netns/d'), a('alive', '/run/netns/a'), a('gone', '/run/netns/g'), a('docker', '/run/netns/x', 'cnm')],
    attachments: [{ containerId: 'dying', ifName: 'eth0' }, { containerId: 'alive', ifName: 'eth0' }, { containerId: 'docker', ifName: 'eth0' }],
    netnsExists: new Map([['/run/netns/d', false], ['/run/netns/a', true], ['/run/netns/g', false], ['/run/netns/x', false]]),
    poolIPs: [],
    now: 0,
  };
  t.deepEqual(awaitingVethTeardown(input).map((x) => x.containerId), ['dying']);

  // through the agent: the first look at the kernel still shows the dead pod's veth, a later one does not
  const node = await withNode(t);
  await node.startAgent();
  const pod = await node.pod('dying');
  const add = await node.cni('ADD', { containerId: 'dying', netns: pod });
  t.is(add.code, 0, add.stdout);
  await node.agent!.close();
  await node.fabric.exec('vm1', ['ip', 'link', 'del', datapath.hostVethName('dying', 'eth0')]);
  const { runRaw } = await import('../datapath/exec.js');
  await runRaw(undefined, ['ip', 'netns', 'del', path.basename(pod)]);
  let looks = 0;
  const lingering = {
    ...datapath,
    listAttachments: async (net: datapath.NodeNetwork) => {
      const found = await datapath.listAttachments(net);
      return looks++ < 2 ? [...found, { hostVeth: datapath.hostVethName('dying', 'eth0'), containerId: 'dying', ifName: 'eth0', ip: add.json.ips[0].address.split('/')[0] }] : found;
    },
  };
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }), datapath: lingering });
  node.agent = agent;
  await agent.reconciled;
  t.true(looks >= 3);
  t.is(agent.addresses.lookup({ containerId: 'dying', ifName: 'eth0' }), undefined, 'freed once its veth was gone');
});

test('pending demand: DEL and GC of a container that never got an IP take it out of pendingIPs; a valid one stays', async (t) => {
  const node = await withNode(t, 1);
  await node.startAgent({ pendingWindowMs: 600_000 });
  const agent = node.agent!;
  t.is((await node.cni('ADD', { containerId: 'holder', netns: await node.pod('h') })).code, 0);
  for (const id of ['w1', 'w2', 'w3']) t.is((await node.cni('ADD', { containerId: id, netns: await node.pod(id) })).json.code, 11);
  t.is(agent.addresses.demand().pendingIPs, 3);
  t.is((await node.cni('DEL', { containerId: 'w1', netns: '/run/netns/gone' })).code, 0);
  t.is(agent.addresses.demand().pendingIPs, 2);
  const gc = await node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': [{ containerID: 'holder', ifname: 'eth0' }, { containerID: 'w3', ifname: 'eth0' }] }) });
  t.is(gc.code, 0, gc.stdout);
  t.deepEqual(agent.addresses.pendingKeys(), ['w3/eth0']);
  t.deepEqual(agent.addresses.demand(), { usedIPs: 1, pendingIPs: 1 });
});

test('record source: a watch that failed (the emulator answers 503 for a moment) is back within a second, not after a fixed 2 s pause', async (t) => {
  t.timeout(60_000);
  const { emu, co } = await kubeWithCrds(t);
  const body = (poolName: string, metadata: Record<string, unknown> = { name: 'n1' }) => ({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata, spec: { poolName } });
  await co.createClusterCustomObject({ ...group, plural: 'nodeipallocations', body: body('first') });
  const source = new KubeRecordSource(emulatorTarget(emu), 'n1', pino({ level: 'silent' }));
  t.teardown(() => source.stop());
  (source as unknown as { poolSettings: () => Promise<PoolSettings | undefined> }).poolSettings = async () => undefined;
  const seen: Array<{ at: number; pool?: string }> = [];
  await source.start((record: NodeIPAllocation | undefined) => seen.push({ at: Date.now(), pool: record?.spec.poolName }));
  t.true(await until(() => seen.some((s) => s.pool === 'first')));
  // the watch ends and its restart meets a 503: the record source's informer reports an error
  emu.injectFault({ code: 503, forMs: 150 });
  emu.dropWatches();
  await sleep(300);
  const cur = (await co.getClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1' })) as { metadata: Record<string, unknown> };
  const changedAt = Date.now();
  await co.replaceClusterCustomObject({ ...group, plural: 'nodeipallocations', name: 'n1', body: body('second', cur.metadata) });
  t.true(await until(() => seen.some((s) => s.pool === 'second'), 20_000), 'the change is seen at all');
  const lag = seen.find((s) => s.pool === 'second')!.at - changedAt;
  t.log(`seen ${lag} ms after the change`);
  t.true(lag < 1200, `the record watch was back quickly (${lag} ms after the change; the old fixed pause was 2 s)`);
});
