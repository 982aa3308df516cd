/**
 * A DEL retires the pod's veth (off the network at once, its neighbour entry unpinned) and the node
 * deletes the veth shortly after, then its rule (retired-veths.ts), against the real kernel (root).
 */
import test, { type ExecutionContext } from 'ava';
import { runRaw } from './exec.js';
import { createFabric, type Fabric } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { podMACs, retiredGroup } from './names.js';
import { ping, pingEventually } from './testing/testkit.js';

const POD_SUBNET = '10.30.8.0/22';
const ipOf = (i: number) => `10.30.8.${10 + i}`;

async function setUp(t: ExecutionContext, nicIPs: number) {
  const f: Fabric = await createFabric({ vnetPrefixes: ['10.30.0.0/16'], subnets: ['10.30.0.0/24', POD_SUBNET] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:30:00:04', primaryIP: '10.30.0.4' });
  await f.setNicIPs('n1', Array.from({ length: nicIPs }, (_, i) => ipOf(i)));
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  let n = 0;
  const newPod = async (ip: string, containerId?: string) => {
    const ns = await f.addNetns(`r${n++}`);
    const spec: dp.PodInterface = { containerId: containerId ?? `ret-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 };
    return { ns, spec };
  };
  const veth = async (name: string) => {
    const r = await runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'dev', name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Array<{ flags: string[]; group: string }>)[0] : undefined;
  };
  const rules = async () => (await runRaw(vm.netns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC'])).stdout;
  const neighMACs = async () => (JSON.parse((await runRaw(vm.netns, ['ip', '-j', '-4', 'neigh', 'show', 'dev', 'podvnet0'])).stdout || '[]') as Array<{ dst: string; lladdr?: string }>);
  return { f, vm, net, newPod, veth, rules, neighMACs };
}

test.afterEach.always(() => dp.configureDatapath({ retiredVeths: { quietMs: 100, maxWaitMs: 5_000 } }));

test.serial('DEL: the pod is off the network at once, its veth deleted shortly after without being asked, then its rule', async (t) => {
  const { f, vm, net, newPod, veth, rules, neighMACs } = await setUp(t, 2);
  await dp.ensureNode(net);
  const host = await f.addVnetHost({ name: 'vh', ip: '10.30.0.50' });
  const a = await newPod(ipOf(0));
  const r = await dp.attachPod(net, a.spec);
  t.true(await pingEventually(a.ns, '10.30.0.50'), 'reachable before');

  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  const retired = await veth(r.hostVeth.name);
  t.truthy(retired, 'not deleted yet: retired');
  t.false(retired!.flags.includes('UP'), 'down');
  t.is(retired!.group, String(retiredGroup('podvnet0')));
  t.deepEqual(await dp.listAttachments(net), [], 'no pod any more for GC, CHECK or reconciliation');
  t.is((await runRaw(vm.netns, ['ip', 'route', 'show', `${a.spec.ip}/32`])).stdout.trim(), '', 'route gone');
  t.false(await ping(a.ns, '10.30.0.50'), 'the pod cannot send');
  t.false(await ping(host.netns, a.spec.ip), 'nothing reaches the pod');
  await t.throwsAsync(dp.checkPod(net, a.spec), { instanceOf: dp.DatapathCheckError });

  // Nobody asks: the timer deletes it.
  const t0 = Date.now();
  for (const deadline = t0 + 5_000; (await veth(r.hostVeth.name)) && Date.now() < deadline;) await new Promise((res) => setTimeout(res, 20));
  t.is(await veth(r.hostVeth.name), undefined, 'deleted within 5 s');
  t.log(`deleted ${Date.now() - t0} ms after the DEL returned`);
  await dp.retiredVethsDeleted(net);
  t.false((await rules()).includes(r.hostVeth.name), 'its rule went after it');
  t.false((await neighMACs()).some((e) => e.lladdr === podMACs(a.spec.containerId, 'eth0').container), 'and its neighbour entry');
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
});

test.serial('a new pod takes the IP while the old veth waits retired; the same container coming back (a restart) gets its veth name at once', async (t) => {
  dp.configureDatapath({ retiredVeths: { quietMs: 60_000, maxWaitMs: 600_000 } }); // nothing is deleted by the timer here
  const { net, newPod, veth, rules, neighMACs } = await setUp(t, 2);
  await dp.ensureNode(net);
  const old = await newPod(ipOf(0));
  const r = await dp.attachPod(net, old.spec);
  await dp.detachPod(net, { containerId: old.spec.containerId, ifName: 'eth0', ip: old.spec.ip });
  t.truthy(await veth(r.hostVeth.name));
  // The neighbour entry goes with the DEL itself: an agent that died now would leave nothing that
  // outlives the pod (the retired veth and its rule go with the next agent's first ensureNode).
  t.false((await neighMACs()).some((e) => e.lladdr === podMACs(old.spec.containerId, 'eth0').container), 'unpinned at once');
  t.true((await rules()).includes(r.hostVeth.name), 'the rule waits for the veth');

  // Another pod on the same IP: its own veth, rule and entry, the retired one untouched.
  const young = await newPod(ipOf(0));
  const ry = await dp.attachPod(net, young.spec);
  await t.notThrowsAsync(dp.checkPod(net, young.spec));
  t.truthy(await veth(r.hostVeth.name), 'the retired veth still waits');
  t.true(await pingEventually(young.ns, '10.30.0.4'));

  // The first container again (podman restart: same container ID and interface), new namespace, other IP.
  const again = await newPod(ipOf(1), old.spec.containerId);
  const ra = await dp.attachPod(net, again.spec);
  t.is(ra.hostVeth.name, r.hostVeth.name);
  await t.notThrowsAsync(dp.checkPod(net, again.spec));
  t.true(await pingEventually(again.ns, '10.30.0.4'), 'reachable: the old rule (other IP) is gone, not doubled');
  const listing = await rules();
  const ruleLines = listing.split('\n').filter((l) => l.includes(r.hostVeth.name));
  t.is(ruleLines.length, 1, 'one rule for the name');
  t.true(ruleLines[0]!.includes(`${ipOf(1)}/32`), 'for the new IP');
  const macs = await neighMACs();
  t.is(macs.find((e) => e.dst === ipOf(0))?.lladdr, podMACs(young.spec.containerId, 'eth0').container, 'the young pod keeps its entry');
  t.is(macs.find((e) => e.dst === ipOf(1))?.lladdr, podMACs(old.spec.containerId, 'eth0').container);
  t.deepEqual((await dp.listAttachments(net)).map((x) => x.hostVeth).sort(), [ry.hostVeth.name, ra.hostVeth.name].sort());
});

test.serial('DELs that never pause still get their veths deleted (at the latest maxWaitMs after the first)', async (t) => {
  dp.configureDatapath({ retiredVeths: { quietMs: 200, maxWaitMs: 400 } });
  const { vm, net, newPod } = await setUp(t, 30);
  await dp.ensureNode(net);
  const pods = [];
  for (let i = 0; i < 30; i++) { const p = await newPod(ipOf(i)); await dp.attachPod(net, p.spec); pods.push(p); }
  // (`ip -j link show group G` prints {} for every other link: filter by the field instead.)
  const retiredNow = async () => (JSON.parse((await runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout || '[]') as Array<{ group?: string }>)
    .filter((l) => l.group === String(retiredGroup('podvnet0'))).length;
  // One DEL every 50 ms, never 200 ms quiet: the deletions still happen while they go on.
  let maxRetired = 0;
  let sawDeletion = false;
  for (const p of pods) {
    await dp.detachPod(net, { containerId: p.spec.containerId, ifName: 'eth0', ip: p.spec.ip });
    const n = await retiredNow();
    if (n < maxRetired) sawDeletion = true;
    maxRetired = Math.max(maxRetired, n);
    await new Promise((res) => setTimeout(res, 50));
  }
  t.true(sawDeletion, 'retired veths were deleted while the DELs went on');
  t.true(maxRetired < 30, `at most ${maxRetired} waited at once`);
  await dp.retiredVethsDeleted(net);
  t.is(await retiredNow(), 0);
});

test.serial('veths an earlier agent retired and never deleted are deleted by the first ensureNode, and never listed as pods', async (t) => {
  const { vm, net } = await setUp(t, 1);
  const group = String(retiredGroup('podvnet0'));
  // What a crash leaves: a veth labelled as a pod's, down, in the retired group (the bridge comes with ensureNode).
  await runRaw(vm.netns, ['ip', '-batch', '-'], [
    'link add pvnleft0000001 type veth peer name pvnleftpeer01',
    `link set dev pvnleft0000001 alias podvnet/podvnet0/left/eth0/${ipOf(0)} group ${group}`, '',
  ].join('\n'));
  t.deepEqual(await dp.listAttachments(net), [], 'a retired veth is no pod');
  await dp.ensureNode(net);
  t.not((await runRaw(vm.netns, ['ip', 'link', 'show', 'dev', 'pvnleft0000001'])).code, 0, 'deleted');
});
