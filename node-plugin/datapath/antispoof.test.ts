/**
 * Anti-spoofing between pods of one node, against the real kernel (root): a pod sending with a
 * neighbour's IP reaches neither another pod, the node nor a VNet host; its own IP still works; a pod's
 * ARP for a neighbour's IP does not divert the node's traffic; detach, GC and teardown leave nothing.
 *
 * "Reaches" is observed at the receiver (a UDP sink printing what it got): a spoofed packet's reply
 * goes to the owner of the spoofed IP, so a ping or TCP connect from the spoofer would fail either way.
 */
import test, { type ExecutionContext } from 'ava';
import { runRaw } from './exec.js';
import { createFabric, type Fabric } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { podMACs } from './names.js';
import { spoofArrives, udpSink, sendUdp } from './testing/spoofing.js';
import { pingEventually } from './testing/testkit.js';

const VNET = ['10.30.0.0/16'];
const POD_SUBNET = '10.30.8.0/22';

async function setUp(t: ExecutionContext, podIPs: string[], backend: 'nft' | 'legacy' = 'nft') {
  const f: Fabric = await createFabric({ vnetPrefixes: VNET, subnets: ['10.30.0.0/24', POD_SUBNET] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:30:00:04', primaryIP: '10.30.0.4' });
  // kubelet's hint chain says which backend kube-proxy uses (iptables.ts); nft is the default.
  if (backend === 'legacy') await runRaw(vm.netns, ['iptables-legacy', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
  await f.setNicIPs('n1', podIPs);
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  await dp.ensureNode(net);
  const pods = await Promise.all(podIPs.map(async (ip, i) => {
    const ns = await f.addNetns(`as${i}`);
    const spec: dp.PodInterface = { containerId: `spoof-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 };
    await dp.attachPod(net, spec);
    return { ns, spec };
  }));
  return { f, vm, net, pods };
}

const rawChain = async (ns: string, backend = 'nft'): Promise<string[]> =>
  (await runRaw(ns, [`iptables-${backend}`, '-t', 'raw', '-S', 'PODVNET-SRC'])).stdout.split('\n').filter((l) => l.startsWith('-A '));
const bridgeNeighs = async (ns: string) =>
  JSON.parse((await runRaw(ns, ['ip', '-j', '-4', 'neigh', 'show', 'dev', 'podvnet0'])).stdout || '[]') as Array<{ dst: string; lladdr?: string; state?: string[] }>;

test('a pod sending with a neighbour\'s IP reaches no other pod, not the node, not a VNet host; its own IP works', async (t) => {
  const { f, vm, net, pods } = await setUp(t, ['10.30.8.10', '10.30.8.11', '10.30.8.12']);
  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  const host = await f.addVnetHost({ name: 'vh', ip: '10.30.0.50' });
  // Pod a takes b's IP as a second address and sends from it.
  await runRaw(a.ns, ['ip', 'addr', 'add', `${b.spec.ip}/32`, 'dev', 'eth0']);
  const targets = [
    { what: 'another pod on the node', ns: c.ns, ip: c.spec.ip },
    { what: 'the node', ns: vm.netns, ip: '10.30.0.4' },
    { what: 'a VNet host', ns: host.netns, ip: host.ip },
  ];
  const sinks = targets.map((x) => udpSink(t, x.ns, 9999));
  await new Promise((r) => setTimeout(r, 200));
  for (const [i, x] of targets.entries()) {
    const r = await spoofArrives(a.ns, b.spec.ip, a.spec.ip, sinks[i]!, x.ip, 9999, `${i}a`);
    t.true(r.own, `${x.what}: the pod's own IP gets through`);
    t.false(r.spoofed, `${x.what}: the spoofed source is dropped`);
  }
  t.true(await pingEventually(b.ns, c.spec.ip), 'the real owner of the IP is unaffected');

  // The same probe detects spoofing when the rules are gone (flushed by other software), and
  // nodeDiagnostics says so; a forced ensureNode restores every pod's rule.
  await runRaw(vm.netns, ['iptables-nft', '-t', 'raw', '-F', 'PODVNET-SRC']);
  const problems = (await dp.nodeDiagnostics(net)).problems.join('\n');
  t.regex(problems, /no anti-spoofing rule/);
  const flushed = await spoofArrives(a.ns, b.spec.ip, a.spec.ip, sinks[0]!, c.spec.ip, 9999, 'flushed');
  t.true(flushed.spoofed, 'without the rules the spoofed packet arrives (the probe can fail)');
  await dp.ensureNode(net, { force: true });
  t.is((await rawChain(vm.netns)).length, 3, 'one rule per pod again');
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
  const again = await spoofArrives(a.ns, b.spec.ip, a.spec.ip, sinks[1]!, '10.30.0.4', 9999, 'repaired');
  t.true(again.own);
  t.false(again.spoofed);
});

test('a pod\'s gratuitous ARP or ARP reply for a neighbour\'s IP does not divert the node\'s traffic', async (t) => {
  const { f, vm, pods } = await setUp(t, ['10.30.8.20', '10.30.8.21']);
  const [a, b] = pods as [typeof pods[0], typeof pods[0]];
  const host = await f.addVnetHost({ name: 'vh', ip: '10.30.0.50' });
  const macA = podMACs(a.spec.containerId, 'eth0').container;
  t.true(await pingEventually(vm.netns, a.spec.ip), 'the node reaches a');
  await runRaw(b.ns, ['ip', 'addr', 'add', `${a.spec.ip}/32`, 'dev', 'eth0']);
  for (const mode of ['-U', '-A']) {
    const r = await runRaw(b.ns, ['busybox', 'arping', mode, '-c', '2', '-I', 'eth0', '-s', a.spec.ip, a.spec.ip]);
    t.log(`arping ${mode}: exit ${r.code}`);
  }
  await new Promise((r) => setTimeout(r, 300));
  const entry = (await bridgeNeighs(vm.netns)).find((n) => n.dst === a.spec.ip);
  t.is(entry?.lladdr, macA, 'the node still sends a\'s traffic to a\'s MAC');
  t.true(entry?.state?.includes('PERMANENT'));
  // Traffic for a's IP from the VNet lands in a, not in b (which also holds the IP now).
  const sinkA = udpSink(t, a.ns, 9998);
  const sinkB = udpSink(t, b.ns, 9998);
  await new Promise((r) => setTimeout(r, 200));
  for (const deadline = Date.now() + 8000; !sinkA.got().includes('X') && Date.now() < deadline;) {
    await sendUdp(host.netns, host.ip, a.spec.ip, 9998, 'X\n');
    await new Promise((r) => setTimeout(r, 150));
  }
  t.true(sinkA.got().includes('X'), 'a receives its traffic');
  t.false(sinkB.got().includes('X'), 'b does not');
});

test('detach, GC and teardown remove the rules and neighbour entries; a re-attach repairs a missing rule', async (t) => {
  const { vm, net, pods } = await setUp(t, ['10.30.8.30', '10.30.8.31', '10.30.8.32']);
  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  t.is((await rawChain(vm.netns)).length, 3);
  t.is((await bridgeNeighs(vm.netns)).filter((n) => n.state?.includes('PERMANENT')).length, 3);

  // Re-attach repairs: a's rule removed by hand, the retried ADD puts it back (once).
  const [ruleA] = (await rawChain(vm.netns)).filter((l) => l.includes(a.spec.ip));
  await runRaw(vm.netns, ['sh', '-c', `iptables-nft -t raw ${ruleA!.replace(/^-A /, '-D ')}`]);
  await t.throwsAsync(dp.checkPod(net, a.spec), { message: /anti-spoofing rule/ });
  await dp.attachPod(net, a.spec);
  await t.notThrowsAsync(dp.checkPod(net, a.spec));
  t.is((await rawChain(vm.netns)).filter((l) => l.includes(a.spec.ip)).length, 1);
  await dp.attachPod(net, a.spec);
  t.is((await rawChain(vm.netns)).length, 3, 'a retried ADD adds no duplicate');

  // Detach with and without the IP.
  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.detachPod(net, { containerId: b.spec.containerId, ifName: 'eth0' });
  // The veths are retired at once (their entries unpinned); their rules go when they are deleted, shortly after.
  await dp.retiredVethsDeleted(net);
  t.deepEqual((await rawChain(vm.netns)).map((l) => /! -s (\S+)/.exec(l)?.[1]), [`${c.spec.ip}/32`]);
  t.deepEqual((await bridgeNeighs(vm.netns)).filter((n) => n.state?.includes('PERMANENT')).map((n) => n.dst), [c.spec.ip]);

  // An orphan: c's namespace goes without a DEL; GC removes its rule and neighbour entry.
  await runRaw(undefined, ['ip', 'netns', 'del', c.ns]);
  // The kernel destroys the namespace (and the veth pair) later, from a work queue.
  const vethC = dp.hostVethName(c.spec.containerId, 'eth0');
  for (const deadline = Date.now() + 10_000; (await runRaw(vm.netns, ['ip', 'link', 'show', 'dev', vethC])).code === 0;) {
    if (Date.now() > deadline) return t.fail(`${vethC} still exists 10 s after its namespace was deleted`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await dp.pruneOrphanRoutes(net);
  t.deepEqual(await rawChain(vm.netns), []);
  t.deepEqual((await bridgeNeighs(vm.netns)).filter((n) => n.state?.includes('PERMANENT')), []);

  await dp.teardownNode(net);
  for (const b2 of ['nft', 'legacy']) {
    t.false((await runRaw(vm.netns, [`iptables-${b2}-save`])).stdout.includes('PODVNET'), `${b2}: no chains, no jumps`);
  }
});

test('iptables-legacy node: the same rules drop a spoofed source to a pod and to the node', async (t) => {
  const { vm, net, pods } = await setUp(t, ['10.30.8.40', '10.30.8.41', '10.30.8.42'], 'legacy');
  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  t.is((await rawChain(vm.netns, 'legacy')).length, 3, 'the rules are in the legacy tables');
  t.deepEqual(await rawChain(vm.netns, 'nft'), []);
  await runRaw(a.ns, ['ip', 'addr', 'add', `${b.spec.ip}/32`, 'dev', 'eth0']);
  for (const [i, x] of [{ ns: c.ns, ip: c.spec.ip }, { ns: vm.netns, ip: '10.30.0.4' }].entries()) {
    const sink = udpSink(t, x.ns, 9997);
    await new Promise((r) => setTimeout(r, 200));
    const r = await spoofArrives(a.ns, b.spec.ip, a.spec.ip, sink, x.ip, 9997, `legacy${i}`);
    t.true(r.own, `${x.ip}: own IP gets through`);
    t.false(r.spoofed, `${x.ip}: spoofed source dropped`);
  }
  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.retiredVethsDeleted(net);
  t.is((await rawChain(vm.netns, 'legacy')).length, 2);
  await dp.teardownNode(net);
  t.false((await runRaw(vm.netns, ['iptables-legacy-save'])).stdout.includes('PODVNET'));
});
