/**
 * The datapath against the real kernel: simulated Azure VMs (network namespaces) joined by the
 * simulated fabric, pods as further namespaces. Needs root. Every test builds its own fabric with a
 * unique prefix and destroys it in t.teardown, so tests run concurrently.
 */
import test, { type ExecutionContext } from 'ava';
import { runRaw } from './exec.js';
import { createFabric, type Fabric, type SimVM } from './testing/fabric-sim.js';
import * as dp from './index.js';
import { peerAddressSeen, ping, pingEventually, startPeerServer } from './testing/testkit.js';

const VNET = ['10.20.0.0/16'];
const NODE_SUBNET = '10.20.0.0/24';
const POD_SUBNET = '10.20.8.0/22';

async function fabric(t: ExecutionContext, mtu?: number): Promise<Fabric> {
  const f = await createFabric({ vnetPrefixes: VNET, subnets: [NODE_SUBNET, POD_SUBNET], ...(mtu ? { mtu } : {}) });
  t.teardown(() => f.destroy());
  return f;
}

async function node(f: Fabric, name: string, primaryIP: string, podIPs: string[], overrides: Partial<dp.NodeNetwork> = {}) {
  const mac = `00:0d:3a:${primaryIP.split('.').slice(1).map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
  const vm = await f.addVM({ name, mac, primaryIP });
  await f.setNicIPs(name, podIPs);
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET, ...overrides });
  await dp.ensureNode(net);
  return { vm, net };
}

let seq = 0;
async function pod(f: Fabric, net: dp.NodeNetwork, ip: string, prefixLength = 22) {
  const ns = await f.addNetns(`p${seq++}`);
  const spec: dp.PodInterface = { containerId: `ctr-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength };
  const result = await dp.attachPod(net, spec);
  return { ns, spec, result };
}

const links = async (ns: string): Promise<string[]> => {
  const r = await runRaw(ns, ['ip', '-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
};
const ipSave = async (ns: string): Promise<string> => (await runRaw(ns, ['iptables-save'])).stdout;

/**
 * The kernel destroys a deleted namespace (and with it the veth pair) from a work queue, later; on a
 * loaded machine that takes well over 100 ms. Waits for the host end to go, as a real orphan's would;
 * false if it is still there after 10 s.
 */
async function hostVethGone(ns: string, name: string): Promise<boolean> {
  for (const deadline = Date.now() + 10_000; (await links(ns)).includes(name);) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

test('two pods on one node talk; pod MTU, hairpin, MACs and the gateway ARP are as reported', async (t) => {
  const f = await fabric(t, 1400);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11']);
  t.is(net.mtu, 1400);
  const a = await pod(f, net, '10.20.8.10');
  const b = await pod(f, net, '10.20.8.11');
  t.true(await pingEventually(a.ns, '10.20.8.11'), 'a -> b');
  t.true(await pingEventually(b.ns, '10.20.8.10'), 'b -> a');
  const srv = startPeerServer(b.ns, 8080);
  t.teardown(() => srv.stop());
  t.is(await peerAddressSeen(a.ns, '10.20.8.11', 8080), '10.20.8.10', 'same node: no NAT');

  const [podLink] = JSON.parse((await runRaw(a.ns, ['ip', '-j', 'link', 'show', 'dev', 'eth0'])).stdout) as Array<{ mtu: number; address: string }>;
  t.is(podLink!.mtu, 1400);
  t.is(podLink!.address, a.result.container.mac);
  const [hostLink] = JSON.parse((await runRaw(vm.netns, ['ip', '-j', '-d', 'link', 'show', 'dev', a.result.hostVeth.name])).stdout) as
    Array<{ mtu: number; address: string; master: string; linkinfo: { info_slave_data: { hairpin: boolean } } }>;
  t.is(hostLink!.mtu, 1400);
  t.is(hostLink!.address, a.result.hostVeth.mac);
  t.is(hostLink!.master, 'podvnet0');
  t.true(hostLink!.linkinfo.info_slave_data.hairpin, 'hairpin on');
  t.deepEqual(a.result, {
    hostVeth: { name: dp.hostVethName(a.spec.containerId, 'eth0'), mac: a.result.hostVeth.mac },
    container: { name: 'eth0', mac: a.result.container.mac, sandbox: a.spec.netnsPath },
    ip: '10.20.8.10', prefixLength: 22, gateway: '10.20.8.1',
  });

  // The pod's gateway resolves to the bridge's MAC (answered by the node, not by Azure).
  t.true(await pingEventually(a.ns, '10.20.0.4'), 'pod -> its node');
  const neigh = JSON.parse((await runRaw(a.ns, ['ip', '-j', 'neigh', 'show', '10.20.8.1'])).stdout) as Array<{ lladdr?: string }>;
  const [br] = JSON.parse((await runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'dev', 'podvnet0'])).stdout) as Array<{ address: string }>;
  t.is(neigh[0]?.lladdr, br!.address);
  // The node's NIC is left alone: not enslaved, same address.
  const [nic] = JSON.parse((await runRaw(vm.netns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as Array<{ master?: string; address: string; addr_info: Array<{ local: string }> }>;
  t.is(nic!.master, undefined);
  t.is(nic!.address, vm.mac);
  t.deepEqual(nic!.addr_info.filter((x) => x.local.includes('.')).map((x) => x.local), ['10.20.0.4']);
});

test('SNAT only when leaving the VNet: an outside host sees the primary IP, a VNet host sees the pod IP', async (t) => {
  const f = await fabric(t);
  const { net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const outside = await f.addOutsideHost({ name: 'www', ip: '198.51.100.7' });
  const inVnet = await f.addVnetHost({ name: 'db', ip: '10.20.0.50' });
  const p = await pod(f, net, '10.20.8.10');
  const s1 = startPeerServer(outside.netns, 8080);
  const s2 = startPeerServer(inVnet.netns, 8080);
  t.teardown(() => { s1.stop(); s2.stop(); });
  t.is(await peerAddressSeen(p.ns, outside.ip, 8080), '10.20.0.4');
  t.is(await peerAddressSeen(p.ns, inVnet.ip, 8080), '10.20.8.10');
  // And the VNet host reaches the pod directly (inbound, no NAT).
  const s3 = startPeerServer(p.ns, 9090);
  t.teardown(() => s3.stop());
  t.is(await peerAddressSeen(inVnet.netns, '10.20.8.10', 9090), '10.20.0.50');
  // The outside cannot open a connection to the pod (the fabric, like Azure, forwards only replies).
  t.false(await ping(outside.netns, '10.20.8.10'));
});

test('SNAT disabled or the destination excluded: pod traffic leaves with the pod IP, which the fabric does not forward outside', async (t) => {
  const f = await fabric(t);
  const outside = await f.addOutsideHost({ name: 'www', ip: '198.51.100.7' });
  const srv = startPeerServer(outside.netns, 8080);
  t.teardown(() => srv.stop());
  const { net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10'], { snat: { enabled: true, excludeCIDRs: ['198.51.100.0/24'] } });
  const p = await pod(f, net, '10.20.8.10');
  t.false(await ping(p.ns, outside.ip), 'excluded prefix: not SNATed, dropped by the fabric');
  await dp.ensureNode({ ...net, snat: { enabled: true, excludeCIDRs: [] } });
  t.is(await peerAddressSeen(p.ns, outside.ip, 8080), '10.20.0.4', 'ensureNode rebuilt the chain');
  await dp.ensureNode({ ...net, snat: { enabled: false, excludeCIDRs: [] } });
  t.false((await ipSave(`/run/netns/${f.prefix}-n1`)).includes('--to-source'));
  // conntrack keeps NAT for existing flows: ping uses a new ICMP id each run, so it is a new flow.
  t.false(await ping(p.ns, outside.ip), 'SNAT disabled');
  const saved = await ipSave(`/run/netns/${f.prefix}-n1`);
  t.is(saved.match(/-j PODVNET-SNAT$/gm)?.length, 1, 'one jump after re-applying three times');
  t.is(saved.match(/-j PODVNET-FWD$/gm)?.length, 1);
});

test('pods on two nodes talk through the fabric (pod subnet other than the nodes\' and the node subnet itself)', async (t) => {
  const f = await fabric(t);
  const a = await node(f, 'na', '10.20.0.4', ['10.20.8.10']);
  const b = await node(f, 'nb', '10.20.0.5', ['10.20.9.20']);
  const pa = await pod(f, a.net, '10.20.8.10');
  const pb = await pod(f, b.net, '10.20.9.20');
  const srv = startPeerServer(pb.ns, 8080);
  t.teardown(() => srv.stop());
  t.is(await peerAddressSeen(pa.ns, '10.20.9.20', 8080), '10.20.8.10', 'A -> B, no NAT inside the VNet');
  t.true(await pingEventually(pb.ns, '10.20.8.10'), 'B -> A');
  t.true(await pingEventually(pa.ns, '10.20.0.5'), 'pod on A -> node B');

  // Pods in the node's own subnet (NodeNetwork with the node subnet as pod subnet), on a second bridge.
  const c = await node(f, 'nc', '10.20.0.6', ['10.20.0.60']);
  const d = await node(f, 'nd', '10.20.0.7', ['10.20.0.70']);
  const pc = await pod(f, c.vm.nodeNetwork(), '10.20.0.60', 24);
  const pd = await pod(f, d.vm.nodeNetwork(), '10.20.0.70', 24);
  t.true(await pingEventually(pc.ns, '10.20.0.70'), 'same-subnet pods across nodes');
  t.true(await pingEventually(pd.ns, '10.20.8.10'), 'node-subnet pod -> pod-subnet pod');
  t.true(await pingEventually(pc.ns, '10.20.0.7'), 'pod -> other node in its subnet');
});

test('a pod IP the NIC does not hold is not delivered, in either direction, until Azure adds it', async (t) => {
  const f = await fabric(t);
  const { net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const host = await f.addVnetHost({ name: 'vh', ip: '10.20.0.50' });
  const p = await pod(f, net, '10.20.8.99'); // never assigned to the NIC
  t.false(await ping(host.netns, '10.20.8.99'), 'VNet -> unassigned pod IP');
  t.false(await ping(p.ns, '10.20.0.50'), 'the fabric drops frames from a source IP the NIC does not hold');
  t.true(await pingEventually(p.ns, '10.20.0.4'), 'the node itself still reaches the pod');
  await f.setNicIPs('n1', ['10.20.8.10', '10.20.8.99']);
  t.true(await pingEventually(host.netns, '10.20.8.99'), 'delivered once the NIC holds it');
  await f.setNicIPs('n1', ['10.20.8.10']);
  t.false(await ping(host.netns, '10.20.8.99'), 'and no longer once Azure removed it');
});

test('Services: DNAT to a pod on the same bridge (br_netfilter) and to the pod itself (hairpin)', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11']);
  const diag = await dp.nodeDiagnostics(net);
  t.log(`kernel: loadable modules ${diag.moduleLoading ? 'yes' : 'no (built-in only)'}, br_netfilter ${diag.brNetfilter ? 'present' : 'absent'}, iptables ${diag.iptablesBackend}`);
  if (!diag.brNetfilter) {
    // This kernel has no br_netfilter: ensureNode must have refused with a clear message instead.
    t.log('br_netfilter unavailable here:', diag.problems.join('; '));
    t.fail('ensureNode succeeded without br_netfilter');
    return;
  }
  t.deepEqual(diag.problems, []);
  t.true(diag.bridgeNfCallIptables);
  const a = await pod(f, net, '10.20.8.10');
  const b = await pod(f, net, '10.20.8.11');
  // What kube-proxy (iptables mode) would program for two ClusterIPs: one backed by b, one by a.
  await f.exec(vm.netns, ['iptables-restore', '--noflush'], [
    '*nat',
    '-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.20.8.11:8080',
    '-A PREROUTING -d 10.96.0.11/32 -p tcp --dport 80 -j DNAT --to-destination 10.20.8.10:8080',
    // kube-proxy masquerades hairpin traffic (a pod reaching itself), else the pod drops its own source.
    '-A POSTROUTING -s 10.20.8.10/32 -d 10.20.8.10/32 -j MASQUERADE',
    'COMMIT', '',
  ].join('\n'));
  const sb = startPeerServer(b.ns, 8080);
  const sa = startPeerServer(a.ns, 8080);
  t.teardown(() => { sa.stop(); sb.stop(); });
  // The reply from b goes to a across the bridge; without br_netfilter it would skip the reverse DNAT
  // and a would reset the connection.
  t.is(await peerAddressSeen(a.ns, '10.96.0.10', 80), '10.20.8.10', 'ClusterIP -> pod on the same node');
  // Hairpin: DNATed back out of the port it came in on; masqueraded (bridge has no IP) to the node's IP.
  t.is(await peerAddressSeen(a.ns, '10.96.0.11', 80), '10.20.0.4', 'ClusterIP -> the pod itself (hairpin)');
});

test('checkPod passes on a good pod and names what is wrong: removed interface, wrong address, MTU, route', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11', '10.20.8.12']);
  const a = await pod(f, net, '10.20.8.10');
  await t.notThrowsAsync(dp.checkPod(net, a.spec));
  await t.throwsAsync(dp.checkPod(net, { ...a.spec, ip: '10.20.8.12' }), { instanceOf: dp.DatapathCheckError, message: /labelled/ });

  await f.exec(a.ns, ['ip', 'addr', 'flush', 'dev', 'eth0']);
  await f.exec(a.ns, ['ip', 'addr', 'add', '10.20.8.99/22', 'dev', 'eth0']);
  await t.throwsAsync(dp.checkPod(net, a.spec), { instanceOf: dp.DatapathCheckError, message: /does not have 10\.20\.8\.10\/22 \(has 10\.20\.8\.99\/22\)/ });

  const b = await pod(f, net, '10.20.8.11');
  await f.exec(b.ns, ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1300']);
  await t.throwsAsync(dp.checkPod(net, b.spec), { instanceOf: dp.DatapathCheckError, message: /eth0 has MTU 1300, expected 1500/ });
  await f.exec(b.ns, ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1500']);
  await t.notThrowsAsync(dp.checkPod(net, b.spec));
  await f.exec(vm.netns, ['ip', 'route', 'del', '10.20.8.11/32']);
  await t.throwsAsync(dp.checkPod(net, b.spec), { instanceOf: dp.DatapathCheckError, message: /no route to 10\.20\.8\.11\/32 via podvnet0/ });

  const c = await pod(f, net, '10.20.8.12');
  await f.exec(c.ns, ['ip', 'link', 'del', 'dev', 'eth0']); // removes the pair: both ends gone
  await t.throwsAsync(dp.checkPod(net, c.spec), { instanceOf: dp.DatapathCheckError, message: /does not exist/ });
  await t.throwsAsync(dp.checkPod(net, { ...c.spec, netnsPath: `/run/netns/${f.prefix}-nope` }), { instanceOf: dp.DatapathCheckError, message: /network namespace .* does not exist/ });
});

test('attach is idempotent on retry and repairs a half-made attachment; detach twice is fine', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const a = await pod(f, net, '10.20.8.10');
  t.deepEqual(await dp.attachPod(net, a.spec), a.result, 'retry returns the same result');
  // Half-made: the pod side lost its address (an earlier attempt died between the two steps).
  await f.exec(a.ns, ['ip', 'addr', 'flush', 'dev', 'eth0']);
  t.deepEqual(await dp.attachPod(net, a.spec), a.result);
  await t.notThrowsAsync(dp.checkPod(net, a.spec));
  t.true(await pingEventually(a.ns, '10.20.0.4'));

  // The pod namespace already has an eth0 that is not ours.
  const other = await f.addNetns('other');
  await f.exec(other, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
  await t.throwsAsync(dp.attachPod(net, { ...a.spec, containerId: 'intruder', netnsPath: `/run/netns/${other}` }),
    { instanceOf: dp.DatapathError, message: /eth0 already exists in .* and is not one PodVNet made/ });
  t.false((await links(vm.netns)).includes(dp.hostVethName('intruder', 'eth0')), 'nothing left behind');

  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.detachPod(net, { containerId: 'never-attached', ifName: 'eth0' });
  t.deepEqual(await dp.listAttachments(net), [], 'off the network at once');
  t.is((await runRaw(vm.netns, ['ip', 'route', 'show', 'dev', 'podvnet0'])).stdout.trim(), '', 'its route goes at once');
  await dp.retiredVethsDeleted(net);
  t.deepEqual(await links(vm.netns), ['eth0', 'lo', 'podvnet0']);
  t.deepEqual(await links(a.ns), ['lo']);
  const routes = (await runRaw(vm.netns, ['ip', 'route', 'show', 'dev', 'podvnet0'])).stdout.trim();
  t.is(routes, '');
});

test('a late DEL does not remove the route of a new pod that got the same IP; the route of a vanished pod is removed', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11']);
  const old = await pod(f, net, '10.20.8.10');
  // The runtime deletes the namespace before DEL: the veth pair goes, the node's /32 route stays.
  await runRaw(undefined, ['ip', 'netns', 'del', old.ns]);
  t.true(await hostVethGone(vm.netns, old.result.hostVeth.name), 'the kernel destroyed the deleted namespace\'s veth');
  const young = await pod(f, net, '10.20.8.10');
  await dp.detachPod(net, { containerId: old.spec.containerId, ifName: 'eth0', ip: '10.20.8.10' });
  await t.notThrowsAsync(dp.checkPod(net, young.spec), 'new pod untouched');

  const gone = await pod(f, net, '10.20.8.11');
  await runRaw(undefined, ['ip', 'netns', 'del', gone.ns]);
  t.true(await hostVethGone(vm.netns, gone.result.hostVeth.name), 'the kernel destroyed the deleted namespace\'s veth');
  t.regex((await runRaw(vm.netns, ['ip', 'route', 'show', '10.20.8.11/32'])).stdout, /podvnet0/);
  await dp.detachPod(net, { containerId: gone.spec.containerId, ifName: 'eth0', ip: '10.20.8.11' });
  t.is((await runRaw(vm.netns, ['ip', 'route', 'show', '10.20.8.11/32'])).stdout.trim(), '');
  t.deepEqual((await dp.listAttachments(net)).map((x) => x.containerId), [young.spec.containerId]);
});

test('GC: listAttachments finds pods from the kernel; detach of each and teardownNode leave nothing behind', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11', '10.20.8.12']);
  const before = await ipSave(vm.netnsPath);
  const pods = [await pod(f, net, '10.20.8.10'), await pod(f, net, '10.20.8.11'), await pod(f, net, '10.20.8.12')];
  const listed = await dp.listAttachments(net);
  t.deepEqual(listed.map((a) => a.containerId).sort(), pods.map((p) => p.spec.containerId).sort());
  for (const a of listed) {
    const p = pods.find((x) => x.spec.containerId === a.containerId)!;
    t.is(a.hostVeth, p.result.hostVeth.name);
    t.is(a.ifName, 'eth0');
    t.is(a.ip, p.spec.ip);
  }
  // A pod whose namespace vanished leaves a route that pruneOrphanRoutes finds.
  await runRaw(undefined, ['ip', 'netns', 'del', pods[2]!.ns]);
  t.true(await hostVethGone(vm.netns, pods[2]!.result.hostVeth.name), 'the kernel destroyed the deleted namespace\'s veth');
  t.deepEqual(await dp.pruneOrphanRoutes(net), ['10.20.8.12']);
  // GC: the runtime says only pods[0] is valid.
  for (const a of await dp.listAttachments(net)) {
    if (a.containerId !== pods[0]!.spec.containerId) await dp.detachPod(net, a);
  }
  t.deepEqual((await dp.listAttachments(net)).map((a) => a.containerId), [pods[0]!.spec.containerId]);
  await t.notThrowsAsync(dp.checkPod(net, pods[0]!.spec), 'the valid attachment survives GC');

  t.true(before.includes('PODVNET-SNAT'));
  await dp.teardownNode(net);
  await dp.teardownNode(net);
  t.deepEqual(await links(vm.netns), ['eth0', 'lo']);
  t.false((await ipSave(vm.netnsPath)).includes('PODVNET'), 'no chains, no jumps');
  t.deepEqual(await links(pods[0]!.ns), ['lo'], 'the remaining pod\'s interface went with the node');
  t.deepEqual((await dp.nodeDiagnostics(net)).problems.filter((p) => /missing/.test(p)).length, 4);
});

test('concurrent: 60 pods attach at once, all reachable, then detach at once leaving nothing', async (t) => {
  const f = await fabric(t);
  const ips = Array.from({ length: 60 }, (_, i) => `10.20.8.${20 + i}`);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ips);
  const host = await f.addVnetHost({ name: 'vh', ip: '10.20.0.50' });
  const nss = await Promise.all(ips.map((_, i) => f.addNetns(`c${i}`)));
  // ensureNode racing with itself and with the attaches is part of the test.
  const started = Date.now();
  const results = await Promise.all(ips.map((ip, i) => Promise.all([
    dp.ensureNode(net),
    dp.attachPod(net, { containerId: `conc-${i}`, netnsPath: `/run/netns/${nss[i]}`, ifName: 'eth0', ip, prefixLength: 22 }),
  ])));
  t.log(`60 concurrent attaches: ${Date.now() - started} ms`);
  t.is(new Set(results.map(([, r]) => r.hostVeth.name)).size, 60);
  const reach = await Promise.all(ips.map((ip) => pingEventually(host.netns, ip)));
  t.is(reach.filter(Boolean).length, 60, 'every pod reachable from the VNet');
  t.is((await dp.listAttachments(net)).length, 60);
  await Promise.all(ips.map((ip, i) => dp.detachPod(net, { containerId: `conc-${i}`, ifName: 'eth0', ip })));
  t.deepEqual(await dp.listAttachments(net), [], 'off the network at once');
  await dp.retiredVethsDeleted(net);
  t.deepEqual(await links(vm.netns), ['eth0', 'lo', 'podvnet0']);
  t.is((await runRaw(vm.netns, ['ip', 'route', 'show', 'dev', 'podvnet0'])).stdout.trim(), '');
});

test('ensureNode refuses a device that is not a bridge, and a missing node interface, with clear messages', async (t) => {
  const f = await fabric(t);
  const vm: SimVM = await f.addVM({ name: 'n1', mac: '00:0d:3a:00:00:04', primaryIP: '10.20.0.4' });
  await f.exec(vm.netns, ['ip', 'link', 'add', 'notabr', 'type', 'veth', 'peer', 'name', 'notabr-p']);
  await t.throwsAsync(dp.ensureNode(vm.nodeNetwork({ bridgeName: 'notabr' })), { message: /notabr exists and is not a bridge \(it is veth\)/ });
  await t.throwsAsync(dp.ensureNode(vm.nodeNetwork({ hostInterface: 'eth9' })), { message: /host interface eth9 does not exist/ });
  await t.throwsAsync(dp.ensureNode(vm.nodeNetwork({ nicMAC: '00:0d:3a:ff:ff:ff' })), { message: /eth0 has MAC 00:0d:3a:00:00:04, but the NIC that holds the pod IPs has 00:0d:3a:ff:ff:ff/ });
  t.is(await dp.hostInterfaceMTU('eth0', vm.netnsPath), 1500);
  // A pod namespace that does not exist: a clear error, nothing left on the node.
  const net0 = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  await t.throwsAsync(dp.attachPod(net0, { containerId: 'no-ns', netnsPath: `/run/netns/${f.prefix}-missing`, ifName: 'eth0', ip: '10.20.8.10', prefixLength: 22 }),
    { instanceOf: dp.DatapathError, message: /missing/ });
  t.deepEqual(await links(vm.netns), ['eth0', 'lo', 'notabr', 'notabr-p', 'podvnet0']);
  // The bridge is deleted behind our back: the next attach makes the node again.
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  await dp.ensureNode(net);
  await f.exec(vm.netns, ['ip', 'link', 'del', 'podvnet0']);
  await f.setNicIPs('n1', ['10.20.8.10']);
  const p = await pod(f, net, '10.20.8.10');
  await t.notThrowsAsync(dp.checkPod(net, p.spec));
});

test('attachHostVeth (Docker): host side as for a pod, container end left in the node namespace for the runtime to move', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const spec = { containerId: 'docker-ep-1', ifName: 'eth0', ip: '10.20.8.10', peerName: 'pvdtest0001' };
  const r = await dp.attachHostVeth(net, spec);
  t.deepEqual(await dp.attachHostVeth(net, spec), r, 'retry replaces the pair and reports the same');
  const [peer] = JSON.parse((await runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'dev', 'pvdtest0001'])).stdout) as Array<{ address: string; flags: string[]; mtu: number }>;
  t.is(peer!.address, r.peer.mac);
  t.false(peer!.flags.includes('UP'));
  t.is(peer!.mtu, net.mtu);
  t.deepEqual((await dp.listAttachments(net)).map((a) => [a.containerId, a.hostVeth, a.ip]), [['docker-ep-1', r.hostVeth.name, '10.20.8.10']]);
  // What libnetwork does at Join: move, rename, address, gateway.
  const ctr = await f.addNetns('ctr');
  await f.exec(vm.netns, ['ip', 'link', 'set', 'dev', 'pvdtest0001', 'netns', `/run/netns/${ctr}`]);
  await f.exec(ctr, ['ip', '-batch', '-'], ['link set dev pvdtest0001 name eth0', 'addr add 10.20.8.10/22 dev eth0', 'link set dev eth0 up', 'route add default via 10.20.8.1', ''].join('\n'));
  const host = await f.addVnetHost({ name: 'vh', ip: '10.20.0.50' });
  t.true(await pingEventually(ctr, '10.20.0.50'));
  t.true(await pingEventually(host.netns, '10.20.8.10'));
  await dp.detachPod(net, { containerId: 'docker-ep-1', ifName: 'eth0' });
  await dp.retiredVethsDeleted(net);
  t.deepEqual(await links(ctr), ['lo']);
  t.deepEqual(await links(vm.netns), ['eth0', 'lo', 'podvnet0']);
  t.is((await runRaw(vm.netns, ['ip', 'route', 'show', 'dev', 'podvnet0'])).stdout.trim(), '');
});

test('per-pod MTU: the bridge follows its smallest port and pods keep their own MTU', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10', '10.20.8.11']);
  const brMTU = async () => (JSON.parse((await runRaw(vm.netns, ['ip', '-j', 'link', 'show', 'dev', 'podvnet0'])).stdout) as Array<{ mtu: number }>)[0]!.mtu;
  const a = await pod(f, net, '10.20.8.10');
  t.is(await brMTU(), 1500);
  const b = await pod(f, { ...net, mtu: 1380 }, '10.20.8.11');
  t.is(await brMTU(), 1380);
  await t.notThrowsAsync(dp.checkPod({ ...net, mtu: 1380 }, b.spec));
  await t.notThrowsAsync(dp.checkPod(net, a.spec));
  t.true(await pingEventually(a.ns, '10.20.8.11'));
  await dp.detachPod(net, b.spec);
  // A retired port still counts for the bridge's MTU until it is deleted.
  await dp.retiredVethsDeleted(net);
  t.is(await brMTU(), 1500);
});

test('a pod namespace given as /proc/<pid>/ns/net works like a named one', async (t) => {
  const f = await fabric(t);
  const { net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const { spawn } = await import('node:child_process');
  const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
  t.teardown(() => { holder.kill('SIGKILL'); });
  const nsPath = `/proc/${holder.pid}/ns/net`;
  // Wait until unshare has exec'd sleep in its own namespace.
  const { readlinkSync } = await import('node:fs');
  for (let i = 0; i < 100 && readlinkSync(nsPath) === readlinkSync('/proc/self/ns/net'); i++) await new Promise((r) => setTimeout(r, 10));
  t.not(readlinkSync(nsPath), readlinkSync('/proc/self/ns/net'));
  const spec = { containerId: 'proc-ns', netnsPath: nsPath, ifName: 'eth0', ip: '10.20.8.10', prefixLength: 22 };
  const r = await dp.attachPod(net, spec);
  t.is(r.container.sandbox, nsPath);
  await t.notThrowsAsync(dp.checkPod(net, spec));
  t.true(await pingEventually(nsPath, '10.20.0.4'));
  await dp.detachPod(net, { containerId: 'proc-ns', ifName: 'eth0', netnsPath: nsPath });
  await dp.retiredVethsDeleted(net);
  t.deepEqual(await links(nsPath), ['lo']);
});

test('iptables backend follows kube-proxy: chains go where kubelet\'s hint chain is, and move when it moves', async (t) => {
  const f = await fabric(t);
  const { vm, net } = await node(f, 'n1', '10.20.0.4', ['10.20.8.10']);
  const saveOf = async (b: string) => (await runRaw(vm.netns, [`iptables-${b}-save`])).stdout;
  t.is((await dp.nodeDiagnostics(net)).iptablesBackend, 'nft');
  t.true((await saveOf('nft')).includes('PODVNET-SNAT'));
  // kubelet running with legacy iptables leaves its hint there.
  await f.exec(vm.netns, ['iptables-legacy', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
  await dp.ensureNode(net, { force: true });
  t.is((await dp.nodeDiagnostics(net)).iptablesBackend, 'legacy');
  t.true((await saveOf('legacy')).includes('-j PODVNET-SNAT'));
  t.false((await saveOf('nft')).includes('PODVNET'), 'moved, not copied');
  const p = await pod(f, net, '10.20.8.10');
  const outside = await f.addOutsideHost({ name: 'www', ip: '198.51.100.7' });
  const srv = startPeerServer(outside.netns, 8080);
  t.teardown(() => srv.stop());
  t.is(await peerAddressSeen(p.ns, outside.ip, 8080), '10.20.0.4', 'SNAT works from the legacy tables');
  await dp.teardownNode(net);
  t.false((await saveOf('legacy')).includes('PODVNET'));
  t.false((await saveOf('nft')).includes('PODVNET'));
});

test('two bridges on one node (two pod subnets) keep separate chains and tear down independently', async (t) => {
  const f = await createFabric({ vnetPrefixes: VNET, subnets: [NODE_SUBNET, POD_SUBNET, '10.20.16.0/24'] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:00:00:04', primaryIP: '10.20.0.4' });
  await f.setNicIPs('n1', ['10.20.8.10', '10.20.16.10']);
  const a = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  const b = vm.nodeNetwork({ podSubnet: '10.20.16.0/24', bridgeName: 'podvnet1' });
  await Promise.all([dp.ensureNode(a), dp.ensureNode(b)]);
  const pa = await pod(f, a, '10.20.8.10');
  const pb = await pod(f, b, '10.20.16.10', 24);
  t.true(await pingEventually(pa.ns, '10.20.16.10'), 'across the two bridges, routed by the node');
  t.deepEqual((await dp.listAttachments(a)).map((x) => x.ip), ['10.20.8.10']);
  t.deepEqual((await dp.listAttachments(b)).map((x) => x.ip), ['10.20.16.10']);
  const saved = await ipSave(vm.netnsPath);
  t.true(saved.includes(':PODVNET-SNAT-podvnet1'));
  t.true(saved.includes('-A PODVNET-SNAT-podvnet1 ! -s 10.20.16.0/24 -j RETURN'));
  await dp.teardownNode(b);
  t.deepEqual(await links(vm.netns), ['eth0', 'lo', 'podvnet0', pa.result.hostVeth.name].sort());
  t.false((await ipSave(vm.netnsPath)).includes('podvnet1'));
  await t.notThrowsAsync(dp.checkPod(a, pa.spec));
  t.deepEqual(await links(pb.ns), ['lo']);
});
