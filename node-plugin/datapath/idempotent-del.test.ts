/**
 * DEL is idempotent whatever raced it (CNI spec: DEL succeeds when what it would remove is already gone),
 * against the real kernel (root): the neighbour entry taken by a carrier loss or a flush, a concurrent DEL
 * of the same pod, things removed by hand, and many ADDs and DELs at once on one node while resyncs and
 * flushes run. Every DEL succeeds and nothing of a pod remains.
 */
import test, { type ExecutionContext } from 'ava';
import { runRaw } from './exec.js';
import { createFabric, type Fabric, type SimVM } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { podMACs } from './names.js';
import { pingEventually } from './testing/testkit.js';

const VNET = ['10.30.0.0/16'];
const POD_SUBNET = '10.30.8.0/22';
const ipOf = (i: number) => `10.30.${8 + Math.floor(i / 250)}.${10 + (i % 250)}`;

async function setUp(t: ExecutionContext, nicIPs: number) {
  const f: Fabric = await createFabric({ vnetPrefixes: VNET, subnets: ['10.30.0.0/24', POD_SUBNET] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:30:00:04', primaryIP: '10.30.0.4' });
  await f.setNicIPs('n1', Array.from({ length: nicIPs }, (_, i) => ipOf(i)));
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  await dp.ensureNode(net);
  let n = 0;
  const newPod = async (ip: string) => {
    const ns = await f.addNetns(`d${n++}`);
    const spec: dp.PodInterface = { containerId: `del-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 };
    return { ns, spec };
  };
  return { f, vm, net, newPod };
}

const del = (net: dp.NodeNetwork, s: dp.PodInterface, withIP = true) =>
  dp.detachPod(net, { containerId: s.containerId, ifName: 'eth0', ...(withIP ? { ip: s.ip } : {}) });

/** What a pod left on the node: its veth, its /32 route, any neighbour entry with its MAC, its anti-spoofing rule. */
async function leftovers(vm: SimVM, net: dp.NodeNetwork, specs: dp.PodInterface[]): Promise<string[]> {
  // DELs retire veths at once (unpinning their entries) and delete them (then their rules) shortly after.
  await dp.retiredVethsDeleted(net);
  const [links, routes, neighs, rules] = await Promise.all([
    runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'type', 'veth']),
    runRaw(vm.netns, ['ip', '-j', '-4', 'route', 'show', 'dev', 'podvnet0']),
    runRaw(vm.netns, ['ip', '-j', '-4', 'neigh', 'show', 'dev', 'podvnet0']),
    runRaw(vm.netns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC']),
  ]);
  const veths = new Set((JSON.parse(links.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname));
  const routeIPs = new Set((JSON.parse(routes.stdout || '[]') as Array<{ dst: string }>).map((r) => r.dst));
  const macs = new Set((JSON.parse(neighs.stdout || '[]') as Array<{ lladdr?: string }>).map((e) => e.lladdr));
  const out: string[] = [];
  for (const s of specs) {
    const v = dp.hostVethName(s.containerId, 'eth0');
    if (veths.has(v)) out.push(`veth ${v}`);
    if (routeIPs.has(s.ip)) out.push(`route ${s.ip}`);
    if (macs.has(podMACs(s.containerId, 'eth0').container)) out.push(`neighbour ${s.ip}`);
    if (rules.stdout.includes(`--physdev-in ${v} `)) out.push(`rule ${v}`);
  }
  return out;
}

test('DEL of the only pod on a bridge succeeds when its neighbour entry was learned, flushed or taken by carrier loss', async (t) => {
  const { vm, net, newPod } = await setUp(t, 4);
  for (const [i, how] of ['learned', 'flushed', 'twice'].entries()) {
    const p = await newPod(ipOf(i));
    await dp.attachPod(net, p.spec);
    // The entry the node learned by ARP after a flush (not permanent): the DEL's own port removal drops the
    // bridge's carrier, and the kernel flushes such entries, racing the DEL's removal of it.
    await runRaw(vm.netns, ['ip', 'neigh', 'flush', 'dev', 'podvnet0', 'nud', 'all']);
    if (how !== 'flushed') t.true(await pingEventually(vm.netns, p.spec.ip));
    const dels = how === 'twice' ? [del(net, p.spec), del(net, p.spec)] : [del(net, p.spec)];
    await t.notThrowsAsync(Promise.all(dels), how);
    t.deepEqual(await leftovers(vm, net, [p.spec]), [], how);
  }
});

test('DEL after someone removed the veth, the route, the neighbour entry or the rule by hand succeeds and leaves nothing', async (t) => {
  const { vm, net, newPod } = await setUp(t, 6);
  const pods = await Promise.all([0, 1, 2, 3, 4].map(async (i) => { const p = await newPod(ipOf(i)); await dp.attachPod(net, p.spec); return p; }));
  const [a, b, c, d, e] = pods as [typeof pods[0], typeof pods[0], typeof pods[0], typeof pods[0], typeof pods[0]];
  const v = (p: typeof a) => dp.hostVethName(p.spec.containerId, 'eth0');
  await runRaw(vm.netns, ['ip', 'link', 'del', 'dev', v(a)]);
  await runRaw(vm.netns, ['ip', 'route', 'flush', `${b.spec.ip}/32`, 'dev', 'podvnet0']);
  await runRaw(vm.netns, ['ip', 'neigh', 'del', c.spec.ip, 'dev', 'podvnet0']);
  const rule = (await runRaw(vm.netns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC'])).stdout.split('\n').find((l) => l.includes(v(d)))!;
  await runRaw(vm.netns, ['sh', '-c', `iptables-nft -t raw ${rule.replace(/^-A /, '-D ')}`]);
  // e: its namespace deleted by the runtime (the veth goes with it), then a DEL without the IP.
  await runRaw(undefined, ['ip', 'netns', 'del', e.ns]);
  for (const p of [a, b, c, d]) await t.notThrowsAsync(del(net, p.spec), p.spec.containerId);
  await t.notThrowsAsync(del(net, e.spec, false));
  await t.notThrowsAsync(del(net, e.spec), 'with the IP, after its veth died with its namespace');
  // And again: a retried DEL of anything already removed.
  for (const p of pods) await t.notThrowsAsync(del(net, p.spec));
  t.deepEqual(await leftovers(vm, net, pods.map((p) => p.spec)), []);
});

test('concurrent DELs of the same pods (a runtime retrying while the first runs) all succeed', async (t) => {
  const { vm, net, newPod } = await setUp(t, 20);
  const pods = await Promise.all(Array.from({ length: 20 }, async (_, i) => { const p = await newPod(ipOf(i)); await dp.attachPod(net, p.spec); return p; }));
  const results = await Promise.allSettled(pods.flatMap((p) => [del(net, p.spec), del(net, p.spec), del(net, p.spec, false)]));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  t.deepEqual(failed, [], `${failed.length} of ${results.length} DELs failed`);
  t.deepEqual(await leftovers(vm, net, pods.map((p) => p.spec)), []);
});

test('many concurrent ADDs and DELs on one node while resyncs and flushes run: every ADD and DEL succeeds, nothing is left', async (t) => {
  const { vm, net, newPod } = await setUp(t, 120);
  let stop = false;
  // Other software and our own resync at work meanwhile: neighbour flushes, forced ensureNode, GC.
  const background = (async () => {
    let rounds = 0;
    while (!stop) {
      await runRaw(vm.netns, ['ip', 'neigh', 'flush', 'dev', 'podvnet0', 'nud', 'all']);
      await dp.ensureNode(net, { force: true });
      if (++rounds % 3 === 0) await dp.pruneOrphanRoutes(net);
    }
    return rounds;
  })();
  const all: dp.PodInterface[] = [];
  const failures: string[] = [];
  const note = (what: string) => (e: Error) => { failures.push(`${what}: ${e.message}`); };
  for (let round = 0; round < 3; round++) {
    const batch = await Promise.all(Array.from({ length: 40 }, (_, i) => newPod(ipOf(round * 40 + i))));
    all.push(...batch.map((p) => p.spec));
    await Promise.all(batch.map(async (p, i) => {
      await dp.attachPod(net, p.spec).catch(note(`ADD ${p.spec.containerId}`));
      // Half of them deleted twice at once, some without the IP.
      const dels = [del(net, p.spec, i % 5 !== 0), ...(i % 2 ? [del(net, p.spec)] : [])];
      await Promise.all(dels.map((d) => d.catch(note(`DEL ${p.spec.containerId}`))));
    }));
  }
  stop = true;
  const rounds = await background;
  t.log(`${all.length} pods added and deleted, ${rounds} background flush + resync rounds`);
  t.deepEqual(failures, []);
  t.deepEqual(await leftovers(vm, net, all), []);
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
});

test('listings under heavy link churn on the node (dumps interrupted by concurrent changes) are read again, exact and never an error', async (t) => {
  const { vm, net, newPod } = await setUp(t, 10);
  const pods = await Promise.all(Array.from({ length: 10 }, async (_, i) => { const p = await newPod(ipOf(i)); await dp.attachPod(net, p.spec); return p; }));
  // Many other veths make the link dump span several netlink messages; a loop adds and deletes more.
  await runRaw(vm.netns, ['ip', '-batch', '-'], Array.from({ length: 300 }, (_, i) => `link add zz${i} type veth peer name zy${i}`).join('\n') + '\n');
  const churn = runRaw(vm.netns, ['sh', '-c', 'end=$(($(date +%s) + 8)); i=0; while [ $(date +%s) -lt $end ]; do ip link add zc$i type veth peer name zd$i; ip link del zc$i; i=$((i+1)); done; echo $i']);
  const want = pods.map((p) => p.spec.containerId).sort();
  let reads = 0;
  const wrong: string[] = [];
  for (const deadline = Date.now() + 7000; Date.now() < deadline; reads++) {
    const got = (await dp.listAttachments(net)).map((a) => a.containerId).sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${got.length} pods`);
  }
  const churned = (await churn).stdout.trim();
  t.log(`${reads} listings while ${churned} veths came and went`);
  t.deepEqual(wrong, []);
});
