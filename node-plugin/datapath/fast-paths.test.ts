/**
 * The per-pod fast paths (root): in the steady state an ADD and a DEL change the pod's anti-spoofing rule
 * and neighbour entry without reading the chain (`iptables -S`) or the neighbour table first, because
 * this process knows what it wrote; when that knowledge is wrong (the chain flushed, an entry or rule
 * removed by hand, a retried ADD) they read the kernel as before and still end exact: one rule per live
 * pod, no rule or entry left by a removed one. Both iptables backends. Serial: the command observer is
 * process-wide.
 */
import test, { type ExecutionContext } from 'ava';
import { observeCommands, runRaw } from './exec.js';
import { createFabric } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { chainNames, podMACs } from './names.js';

async function node(t: ExecutionContext, backend: 'nft' | 'legacy') {
  const f = await createFabric({ vnetPrefixes: ['10.31.0.0/16'], subnets: ['10.31.0.0/24', '10.31.8.0/22'] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'fp', mac: '00:0d:3a:31:00:04', primaryIP: '10.31.0.4' });
  if (backend === 'legacy') await runRaw(vm.netns, ['iptables-legacy', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
  const ips = ['10.31.8.10', '10.31.8.11', '10.31.8.12'];
  await f.setNicIPs('fp', ips);
  const net = vm.nodeNetwork({ podSubnet: '10.31.8.0/22' });
  await dp.ensureNode(net);
  const pods = await Promise.all(ips.map(async (ip, i) => {
    const ns = await f.addNetns(`fp${i}`);
    return { containerId: `fast-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 } satisfies dp.PodInterface;
  }));
  const { antispoof } = chainNames(net.bridgeName);
  const ipt = `iptables-${backend}`;
  const rules = async () => (await runRaw(vm.netns, [ipt, '-w', '5', '-t', 'raw', '-S', antispoof])).stdout.split('\n').filter((l) => l.startsWith('-A '));
  const rulesFor = async (p: dp.PodInterface) => (await rules()).filter((l) => l.includes(dp.hostVethName(p.containerId, p.ifName)) && l.includes(`${p.ip}/32`)).length;
  const entry = async (p: dp.PodInterface) =>
    (await runRaw(vm.netns, ['ip', '-4', 'neigh', 'show', 'to', p.ip, 'dev', net.bridgeName])).stdout.includes(podMACs(p.containerId, p.ifName).container);
  return { vm, net, pods, antispoof, ipt, rules, rulesFor, entry };
}

/** Counts the reads the fast paths avoid while `fn` runs. */
async function countReads(fn: () => Promise<void>): Promise<{ chainListings: number; neighbourDumps: number }> {
  const seen = { chainListings: 0, neighbourDumps: 0 };
  observeCommands((argv) => {
    if (argv[0]?.startsWith('iptables') && argv.includes('-S')) seen.chainListings++;
    if (argv[0] === 'ip' && argv.includes('neigh') && argv.includes('show')) seen.neighbourDumps++;
  });
  try {
    await fn();
  } finally {
    observeCommands(undefined);
  }
  return seen;
}

for (const backend of ['nft', 'legacy'] as const) {
  test.serial(`${backend}: ADD and DEL read neither the chain nor the neighbour table when nothing surprised them, and end exact when something did`, async (t) => {
    const { vm, pods: [a, b, c], antispoof, ipt, rulesFor, entry, net } = await node(t, backend);

    const steady = await countReads(async () => {
      await dp.attachPod(net, a!);
      await dp.attachPod(net, b!);
      await dp.detachPod(net, { containerId: a!.containerId, ifName: a!.ifName, ip: a!.ip });
      await dp.retiredVethsDeleted(net); // the rule goes with the retired veth
    });
    t.deepEqual(steady, { chainListings: 0, neighbourDumps: 0 });
    t.is(await rulesFor(a!), 0);
    t.false(await entry(a!));
    t.is(await rulesFor(b!), 1);
    t.true(await entry(b!));

    // Surprises: the chain flushed and b's entry deleted by others. b's DEL still succeeds and leaves
    // nothing; c's ADD gets its rule; a retried ADD of c does not duplicate it.
    await runRaw(vm.netns, [ipt, '-w', '5', '-t', 'raw', '-F', antispoof]);
    await runRaw(vm.netns, ['ip', 'neigh', 'del', b!.ip, 'dev', net.bridgeName]);
    await dp.detachPod(net, { containerId: b!.containerId, ifName: b!.ifName, ip: b!.ip });
    await dp.retiredVethsDeleted(net);
    t.is(await rulesFor(b!), 0);
    t.false(await entry(b!));
    await dp.attachPod(net, c!);
    await dp.attachPod(net, c!);
    t.is(await rulesFor(c!), 1);
    t.true(await entry(c!));

    // c's rule removed by hand: the DEL's removal fails against the model, reads the chain, and succeeds.
    await runRaw(vm.netns, [ipt, '-w', '5', '-t', 'raw', '-F', antispoof]);
    await dp.detachPod(net, { containerId: c!.containerId, ifName: c!.ifName, ip: c!.ip });
    await dp.retiredVethsDeleted(net);
    t.is(await rulesFor(c!), 0);
    t.false(await entry(c!));
    t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
  });
}
