/**
 * The node's permanent neighbour entry per pod (anti-ARP-spoofing) holds at all times, against the real
 * kernel (root): an agent restart and the periodic resync (ensureNode again) do not flush it, whatever
 * flushes it (another program, a MAC change of the bridge) is reported by nodeDiagnostics pod by pod and
 * re-pinned by the next resync or GC, and pods leaving (the last one too) leave no entry behind.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runRaw } from './exec.js';
import { createFabric } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { bridgeMAC, podMACs } from './names.js';
import { pingEventually } from './testing/testkit.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const VNET = ['10.30.0.0/16'];
const POD_SUBNET = '10.30.8.0/22';

async function setUp(t: ExecutionContext, podIPs: string[]) {
  const f = await createFabric({ vnetPrefixes: VNET, subnets: ['10.30.0.0/24', POD_SUBNET] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:30:00:04', primaryIP: '10.30.0.4' });
  await f.setNicIPs('n1', podIPs);
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  await dp.ensureNode(net);
  const pods = await Promise.all(podIPs.map(async (ip, i) => {
    const ns = await f.addNetns(`np${i}`);
    const spec: dp.PodInterface = { containerId: `pin-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 };
    await dp.attachPod(net, spec);
    return { ns, spec, mac: podMACs(spec.containerId, 'eth0').container };
  }));
  return { f, vm, net, pods };
}

type Entry = { dst: string; lladdr?: string; state?: string[] };
const entries = async (ns: string): Promise<Entry[]> =>
  JSON.parse((await runRaw(ns, ['ip', '-j', '-4', 'neigh', 'show', 'dev', 'podvnet0'])).stdout || '[]') as Entry[];
const pinned = async (ns: string): Promise<string[]> =>
  (await entries(ns)).filter((e) => e.state?.includes('PERMANENT')).map((e) => `${e.dst} ${e.lladdr}`).sort();
const expected = (pods: Array<{ spec: dp.PodInterface; mac: string }>) => pods.map((p) => `${p.spec.ip} ${p.mac}`).sort();
const bridgeAddress = async (ns: string): Promise<string> =>
  (JSON.parse((await runRaw(ns, ['ip', '-j', 'link', 'show', 'dev', 'podvnet0'])).stdout) as Array<{ address: string }>)[0]!.address;

/** ensureNode from a fresh process, as a restarted agent runs it (unprivileged.fixture.ts, without the container). */
async function ensureNodeInNewProcess(net: dp.NodeNetwork): Promise<void> {
  const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', join(HERE, 'testing', 'unprivileged.fixture.ts')], {
    cwd: join(HERE, '..', '..'), stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const reply = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', () => reject(new Error(`the fixture exited: ${stderr.trim()}`)));
  });
  child.stdin.write(`${JSON.stringify({ op: 'ensureNode', net })}\n`);
  const r = JSON.parse(await reply) as { ok: boolean; message?: string };
  child.stdin.end();
  if (!r.ok) throw new Error(`ensureNode in a new process: ${r.message}`);
}

test('an agent restart and periodic resyncs (ensureNode again) keep every pod\'s pinned entry and the bridge\'s MAC', async (t) => {
  const { vm, net, pods } = await setUp(t, ['10.30.8.10', '10.30.8.11']);
  const mac = await bridgeAddress(vm.netns);
  t.is(mac, bridgeMAC('podvnet0'));
  t.deepEqual(await pinned(vm.netns), expected(pods));
  await ensureNodeInNewProcess(net);
  t.deepEqual(await pinned(vm.netns), expected(pods), 'a restarted agent\'s ensureNode flushed nothing');
  for (let i = 0; i < 3; i++) await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), expected(pods), 'resyncs flushed nothing');
  t.is(await bridgeAddress(vm.netns), mac);
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
});

test('entries flushed by hand: diagnostics name each pod, a resync re-pins them, traffic is unaffected', async (t) => {
  const { vm, net, pods } = await setUp(t, ['10.30.8.20', '10.30.8.21']);
  const [a, b] = pods as [typeof pods[0], typeof pods[0]];
  await runRaw(vm.netns, ['ip', 'neigh', 'flush', 'dev', 'podvnet0', 'nud', 'all']);
  t.deepEqual(await pinned(vm.netns), []);
  const d = await dp.nodeDiagnostics(net);
  t.deepEqual(d.podsWithoutPinnedNeighbour.sort(), [a, b].map((p) => dp.hostVethName(p.spec.containerId, 'eth0')).sort());
  for (const p of [a, b]) {
    t.true(d.problems.some((x) => x.includes(`pod ${p.spec.containerId}/eth0 (${p.spec.ip}`) && /not permanent/.test(x)), `names ${p.spec.containerId}: ${d.problems.join(' | ')}`);
  }
  await t.throwsAsync(dp.checkPod(net, a.spec), { message: /neighbour entry/ });
  await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), expected(pods), 'the resync re-pinned both');
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
  await t.notThrowsAsync(dp.checkPod(net, a.spec));
  t.true(await pingEventually(a.ns, b.spec.ip));
  t.true(await pingEventually(vm.netns, a.spec.ip));

  // A MAC change of the bridge (someone else's) also flushes: the resync puts the MAC and the entries back.
  await runRaw(vm.netns, ['ip', 'link', 'set', 'dev', 'podvnet0', 'address', '02:00:00:aa:bb:cc']);
  t.deepEqual(await pinned(vm.netns), []);
  await dp.ensureNode(net, { force: true });
  t.is(await bridgeAddress(vm.netns), bridgeMAC('podvnet0'));
  t.deepEqual(await pinned(vm.netns), expected(pods));

  // A spoofer's (learned) entry in place of a pod's is replaced too.
  await runRaw(vm.netns, ['ip', 'neigh', 'replace', a.spec.ip, 'lladdr', b.mac, 'dev', 'podvnet0', 'nud', 'stale']);
  t.regex((await dp.nodeDiagnostics(net)).problems.join('\n'), new RegExp(`${a.spec.ip}.*${b.mac} STALE`));
  await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), expected(pods));
});

test('the bridge losing carrier (every port down) and the last pod leaving: live pods stay pinned, leavers leave nothing', async (t) => {
  const { f, vm, net, pods } = await setUp(t, ['10.30.8.30', '10.30.8.31', '10.30.8.32']);
  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  const veth = (p: typeof a) => dp.hostVethName(p.spec.containerId, 'eth0');
  // Every port down: the bridge loses carrier (the kernel flushes what it learned); then up again.
  for (const p of pods) await runRaw(vm.netns, ['ip', 'link', 'set', 'dev', veth(p), 'down']);
  for (const p of pods) await runRaw(vm.netns, ['ip', 'link', 'set', 'dev', veth(p), 'up']);
  await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), expected(pods));
  t.deepEqual((await dp.nodeDiagnostics(net)).problems, []);
  // Pods leave one by one; the last one's DEL (its port's removal drops the bridge's carrier) too.
  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.retiredVethsDeleted(net); // the entry goes with the retired veth
  t.deepEqual(await pinned(vm.netns), expected([b, c]));
  await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), expected([b, c]), 'a resync does not bring back a pod that left');
  await dp.detachPod(net, { containerId: b.spec.containerId, ifName: 'eth0', ip: b.spec.ip });
  await dp.detachPod(net, { containerId: c.spec.containerId, ifName: 'eth0', ip: c.spec.ip });
  await dp.retiredVethsDeleted(net);
  t.deepEqual(await pinned(vm.netns), []);
  t.deepEqual((await entries(vm.netns)).filter((e) => pods.some((p) => p.mac === e.lladdr)), [], 'no entry of a pod that left');
  // A new pod on a bridge that had none: pinned at once, and kept by the resync.
  const ns = await f.addNetns('np9');
  const d: dp.PodInterface = { containerId: `pin-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip: a.spec.ip, prefixLength: 22 };
  await dp.attachPod(net, d);
  await dp.ensureNode(net, { force: true });
  t.deepEqual(await pinned(vm.netns), [`${d.ip} ${podMACs(d.containerId, 'eth0').container}`]);
});

test('GC (pruneOrphanRoutes) removes an entry no pod claims and re-pins a live pod\'s flushed one', async (t) => {
  const { vm, net, pods } = await setUp(t, ['10.30.8.40', '10.30.8.41']);
  const [a, b] = pods as [typeof pods[0], typeof pods[0]];
  await runRaw(vm.netns, ['ip', 'neigh', 'del', a.spec.ip, 'dev', 'podvnet0']);
  await runRaw(vm.netns, ['ip', 'neigh', 'replace', '10.30.8.99', 'lladdr', '02:00:00:00:00:99', 'dev', 'podvnet0', 'nud', 'permanent']);
  await dp.pruneOrphanRoutes(net);
  t.deepEqual(await pinned(vm.netns), expected([a, b]));
});

test('diagnostics polled while pods are added and deleted report no drift: a pod half made or half removed is not a problem', async (t) => {
  const ips = Array.from({ length: 30 }, (_, i) => `10.30.9.${10 + i}`);
  const { f, net } = await setUp(t, []);
  await f.setNicIPs('n1', ips);
  let stop = false;
  const seen: string[] = [];
  let polls = 0;
  const poller = (async () => {
    while (!stop) {
      const d = await dp.nodeDiagnostics(net);
      polls++;
      seen.push(...d.problems);
    }
  })();
  // Churn until the diagnostics have run a good number of times (each takes a while: iptables, sysctls).
  for (let round = 0, deadline = Date.now() + 60_000; round < 2 || (polls < 8 && Date.now() < deadline); round++) {
    const specs = await Promise.all(ips.map(async (ip, i) => {
      const ns = await f.addNetns(`dg${round}-${i}`);
      return { containerId: `diag-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 } as dp.PodInterface;
    }));
    await Promise.all(specs.map((s) => dp.attachPod(net, s)));
    await Promise.all(specs.map((s) => dp.detachPod(net, { containerId: s.containerId, ifName: 'eth0', ip: s.ip })));
  }
  stop = true;
  await poller;
  t.log(`${polls} diagnostics polls`);
  t.true(polls >= 3, `${polls} polls`);
  t.deepEqual([...new Set(seen)], []);
});
