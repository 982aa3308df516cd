import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FORWARDER, invokePlugin, startTestNode, type TestNode } from '../agent/testing/test-node.js';
import { hostVethName } from '../datapath/index.js';
import { startPeerServer, peerAddressSeen, pingEventually } from '../datapath/testing/testkit.js';

/**
 * End to end through the real C forwarder, the agent and the real datapath, with network namespaces as
 * pods on a simulated VM on a simulated VNet. Needs root.
 */

async function withNode(t: { teardown(fn: () => Promise<void>): void }, podIPCount: number, cooldownMs = 0): Promise<TestNode> {
  const node = await startTestNode({ podIPCount, cooldownMs });
  t.teardown(() => node.close());
  return node;
}

const ipOf = (r: { json: { ips: Array<{ address: string }> } }) => r.json.ips[0]!.address.split('/')[0]!;

async function linkExists(node: TestNode, ns: string | undefined, name: string): Promise<boolean> {
  const r = await node.fabric.execRaw(ns ?? node.vm.netns, ['ip', 'link', 'show', 'dev', name]);
  return r.code === 0;
}

test('two pods on a node get VNet IPs and talk; results carry interfaces, ips, routes', async (t) => {
  const node = await withNode(t, 4);
  const [p1, p2] = [await node.pod('a'), await node.pod('b')];
  const r1 = await node.cni('ADD', { containerId: 'pod-a', netns: p1, args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=a;IgnoreUnknown=1' });
  const r2 = await node.cni('ADD', { containerId: 'pod-b', netns: p2 });
  t.is(r1.code, 0, r1.stdout);
  t.is(r2.code, 0, r2.stdout);
  t.is(r1.json.cniVersion, '1.1.0');
  t.not(ipOf(r1), ipOf(r2));
  t.true(node.podIPs.includes(ipOf(r1)) && node.podIPs.includes(ipOf(r2)));
  t.deepEqual(r1.json.ips[0], { address: `${ipOf(r1)}/22`, gateway: '10.40.4.1', interface: 1 });
  t.is(r1.json.interfaces[1].name, 'eth0');
  t.is(r1.json.interfaces[1].sandbox, p1);
  t.is(r1.json.interfaces[0].name, hostVethName('pod-a', 'eth0'));
  t.deepEqual(r1.json.routes, [{ dst: '0.0.0.0/0', gw: '10.40.4.1' }]);
  // the address really is on the pod's eth0, and the pods reach each other
  const addr = await node.fabric.exec(p1, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  t.regex(addr, new RegExp(`${ipOf(r1).replace(/\./g, '\\.')}/22`));
  t.true(await pingEventually(p1, ipOf(r2)), 'a -> b');
  t.true(await pingEventually(p2, ipOf(r1)), 'b -> a');
  // ADD again for the same container and interface is idempotent: same address
  const again = await node.cni('ADD', { containerId: 'pod-a', netns: p1 });
  t.is(again.code, 0, again.stdout);
  t.is(ipOf(again), ipOf(r1));
});

test('older spec versions get results in their own shape through the executable', async (t) => {
  const node = await withNode(t, 4);
  const p = await node.pod('v');
  const r031 = await node.cni('ADD', { containerId: 'old-031', netns: p, conf: node.conf({ cniVersion: '0.3.1' }) });
  t.is(r031.code, 0, r031.stdout);
  t.is(r031.json.cniVersion, '0.3.1');
  t.is(r031.json.ips[0].version, '4');
  const p2 = await node.pod('v');
  const r020 = await node.cni('ADD', { containerId: 'old-020', netns: p2, conf: node.conf({ cniVersion: '0.2.0' }) });
  t.is(r020.code, 0, r020.stdout);
  t.is(r020.json.cniVersion, '0.2.0');
  t.regex(r020.json.ip4.ip, /^10\.40\.4\.\d+\/22$/);
  t.is(r020.json.ip4.gateway, '10.40.4.1');
  const del = await node.cni('DEL', { containerId: 'old-020', netns: p2, conf: node.conf({ cniVersion: '0.2.0' }) });
  t.is(del.code, 0);
  const ver = await node.cni('VERSION', { conf: node.conf({ cniVersion: '0.4.0' }) });
  t.deepEqual(ver.json, { cniVersion: '0.4.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
});

test('DEL removes everything ADD made, and succeeds twice, for unknown containers and after the netns is gone', async (t) => {
  const node = await withNode(t, 4);
  const p = await node.pod('d');
  const add = await node.cni('ADD', { containerId: 'del-me', netns: p });
  t.is(add.code, 0, add.stdout);
  const veth = hostVethName('del-me', 'eth0');
  t.true(await linkExists(node, undefined, veth));
  const d1 = await node.cni('DEL', { containerId: 'del-me', netns: p });
  t.is(d1.code, 0, d1.stdout);
  t.is(d1.stdout, '');
  t.false(await linkExists(node, p, 'eth0'), 'the pod\'s interface name is free at once');
  await node.retiredVethsDeleted(); // the host veth is retired at once and deleted shortly after
  t.false(await linkExists(node, undefined, veth));
  t.is(node.agent!.addresses.lookup({ containerId: 'del-me', ifName: 'eth0' }), undefined);
  const routes = await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show']);
  t.false(routes.includes(ipOf(add)), routes);
  const d2 = await node.cni('DEL', { containerId: 'del-me', netns: p });
  t.is(d2.code, 0, d2.stdout);
  t.is((await node.cni('DEL', { containerId: 'never-added' })).code, 0);

  // the runtime deleted the namespace first: DEL without CNI_NETNS still frees the IP and the route
  const p2 = await node.pod('d');
  const add2 = await node.cni('ADD', { containerId: 'ns-gone', netns: p2 });
  t.is(add2.code, 0);
  await node.fabric.exec(node.vm.netns, ['true']);
  const { runRaw } = await import('../datapath/exec.js');
  await runRaw(undefined, ['ip', 'netns', 'del', path.basename(p2)]);
  const d3 = await node.cni('DEL', { containerId: 'ns-gone' });
  t.is(d3.code, 0, d3.stdout);
  t.is(node.agent!.addresses.lookup({ containerId: 'ns-gone', ifName: 'eth0' }), undefined);
  await node.retiredVethsDeleted();
  t.false(await linkExists(node, undefined, hostVethName('ns-gone', 'eth0')));
  const routes2 = await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show']);
  t.false(routes2.includes(`${ipOf(add2)} `), routes2);
});

test('CHECK passes on a healthy pod, detects a removed interface (100), and knows no unknown container (3)', async (t) => {
  const node = await withNode(t, 4);
  const p = await node.pod('c');
  const add = await node.cni('ADD', { containerId: 'chk', netns: p });
  t.is(add.code, 0);
  const ok = await node.cni('CHECK', { containerId: 'chk', netns: p, conf: node.conf({ prevResult: add.json }) });
  t.is(ok.code, 0, ok.stdout);
  t.is(ok.stdout, '');
  await node.fabric.exec(p, ['ip', 'link', 'del', 'eth0']);
  const broken = await node.cni('CHECK', { containerId: 'chk', netns: p, conf: node.conf({ prevResult: add.json }) });
  t.is(broken.code, 1);
  t.is(broken.json.code, 100);
  t.regex(broken.json.msg, /eth0|interface|veth/i);
  const unknown = await node.cni('CHECK', { containerId: 'nobody', netns: p, conf: node.conf({ prevResult: add.json }) });
  t.is(unknown.json.code, 3);
  const wrongPrev = await node.cni('CHECK', { containerId: 'chk', netns: p, conf: node.conf({ prevResult: { ...add.json, ips: [{ address: '10.9.9.9/22' }] } }) });
  t.is(wrongPrev.json.code, 100);
});

test('GC removes attachments missing from valid-attachments and keeps the valid ones working', async (t) => {
  const node = await withNode(t, 6);
  const pods = await Promise.all(['g1', 'g2', 'g3'].map((n) => node.pod(n)));
  const adds = [];
  for (const [i, p] of pods.entries()) adds.push(await node.cni('ADD', { containerId: `gc-${i}`, netns: p }));
  t.true(adds.every((a) => a.code === 0));
  const gc = await node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': [{ containerID: 'gc-0', ifname: 'eth0' }] }) });
  t.is(gc.code, 0, gc.stdout);
  t.truthy(node.agent!.addresses.lookup({ containerId: 'gc-0', ifName: 'eth0' }));
  for (const i of [1, 2]) {
    t.is(node.agent!.addresses.lookup({ containerId: `gc-${i}`, ifName: 'eth0' }), undefined);
    t.false(await linkExists(node, undefined, hostVethName(`gc-${i}`, 'eth0')));
  }
  t.true(await linkExists(node, undefined, hostVethName('gc-0', 'eth0')));
  t.true(await pingEventually(pods[0]!, node.vm.primaryIP), 'the valid pod still reaches its node');
  // a pod whose namespace vanished without any DEL: GC frees its IP and its route
  const { runRaw } = await import('../datapath/exec.js');
  await runRaw(undefined, ['ip', 'netns', 'del', path.basename(pods[1]!)]);
  const p4 = await node.pod('g4');
  const a4 = await node.cni('ADD', { containerId: 'gc-4', netns: p4 });
  t.is(a4.code, 0);
  await runRaw(undefined, ['ip', 'netns', 'del', path.basename(p4)]);
  const gc2 = await node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': [{ containerID: 'gc-0', ifname: 'eth0' }] }) });
  t.is(gc2.code, 0, gc2.stdout);
  t.is(node.agent!.addresses.lookup({ containerId: 'gc-4', ifName: 'eth0' }), undefined);
  const routes = await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show']);
  t.false(routes.includes(`${a4.json.ips[0].address.split('/')[0]} `), routes);
  // GC before 1.1.0 is refused with code 1
  const old = await node.cni('GC', { conf: node.conf({ cniVersion: '1.0.0' }) });
  t.is(old.json.code, 1);
});

test('STATUS is ready while an IP is free, 50 when the pool is empty; ADD then says try again later (11)', async (t) => {
  const node = await withNode(t, 1);
  t.is((await node.cni('STATUS', {})).code, 0);
  const p = await node.pod('s');
  t.is((await node.cni('ADD', { containerId: 's1', netns: p })).code, 0);
  const status = await node.cni('STATUS', {});
  t.is(status.code, 1);
  t.is(status.json.code, 50);
  t.regex(status.json.msg, /no free VNet IP/);
  const full = await node.cni('ADD', { containerId: 's2', netns: await node.pod('s') });
  t.is(full.json.code, 11);
  t.regex(full.json.msg, /no free VNet IP on node vm1.*demand raised/);
  t.is(node.agent!.addresses.demand().pendingIPs, 1);
  // demand is written back (coalesced) to the record's spec: nominally within 300 ms, later when loaded
  const spec = async () => { try { return JSON.parse(await readFile(`${node.recordPath}.spec.json`, 'utf8')); } catch { return undefined; } };
  for (const deadline = Date.now() + 20_000; (await spec())?.demand?.pendingIPs !== 1 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual((await spec())?.demand, { usedIPs: 1, pendingIPs: 1 });
  t.is((await node.cni('STATUS', { conf: node.conf({ cniVersion: '1.0.0' }) })).json.code, 1);
});

test('the executable answers 11 (try again later) when the agent is unreachable, and bad input gets specific codes', async (t) => {
  const node = await withNode(t, 2);
  const down = await invokePlugin(FORWARDER, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' }, JSON.stringify(node.conf({ agentSocket: path.join(node.dir, 'nobody.sock'), cniVersion: '1.0.0' })));
  t.is(down.code, 1);
  t.is(down.json.code, 11);
  t.is(down.json.cniVersion, '1.0.0');
  t.regex(down.json.msg, /unreachable.*try again later/);
  const viaEnv = await invokePlugin(FORWARDER, { CNI_COMMAND: 'STATUS' }, '{"cniVersion":"1.1.0","name":"n","type":"podvnet-cni"}', { PODVNET_AGENT_SOCKET: node.socket });
  t.is(viaEnv.code, 0, viaEnv.stdout);
  // VERSION needs no agent (libcni validates configurations with it) and matches the agent's answer exactly
  for (const stdin of ['{"cniVersion":"0.3.1"}', '{"cniVersion":"1.0.0"}', '{"cniVersion":"7.7.7"}', '']) {
    const local = await invokePlugin(FORWARDER, { CNI_COMMAND: 'VERSION' }, stdin, { PODVNET_AGENT_SOCKET: '/nonexistent.sock' });
    t.is(local.code, 0, local.stdout);
    const agentAnswer = await node.agent!.handler.handle({ CNI_COMMAND: 'VERSION' }, stdin);
    t.deepEqual(local.json, JSON.parse(agentAnswer.stdout), stdin);
  }
  const garbage = await invokePlugin(FORWARDER, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' }, `{"agentSocket":"${node.socket}", not json`);
  t.is(garbage.json.code, 6);
  const noEnv = await invokePlugin(FORWARDER, { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }, JSON.stringify(node.conf()));
  t.is(noEnv.json.code, 4);
  t.regex(noEnv.json.msg, /CNI_CONTAINERID/);
  const ipam = await node.cni('ADD', { containerId: 'x', netns: '/run/netns/x', conf: node.conf({ ipam: { type: 'host-local' } }) });
  t.is(ipam.json.code, 2);
  const badVersion = await node.cni('ADD', { containerId: 'x', netns: '/run/netns/x', conf: node.conf({ cniVersion: '3.0.0' }) });
  t.is(badVersion.json.code, 1);
});

test('chaining: portmap gets our result as prevResult and forwards a host port to the pod', async (t) => {
  t.timeout(30_000);
  const node = await withNode(t, 2);
  const p = await node.pod('pm');
  // Debian's portmap speaks up to 1.0.0, so the chain is configured at 1.0.0
  const add = await node.cni('ADD', { containerId: 'pm-pod', netns: p, conf: node.conf({ cniVersion: '1.0.0' }) });
  t.is(add.code, 0, add.stdout);
  const client = await node.fabric.addVnetHost({ name: 'client', ip: '10.40.0.50' });
  const portmapConf = (prevResult: unknown) =>
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podvnet',
      type: 'portmap',
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] },
      snat: true,
      prevResult,
    });
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'pm-pod', CNI_NETNS: p, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  // portmap works in the node's namespace (the simulated VM), as it would on a real node
  const pm = await invokePlugin('/usr/lib/cni/portmap', env, portmapConf(add.json), {}, ['ip', 'netns', 'exec', node.vm.netns]);
  t.is(pm.code, 0, pm.stdout + pm.stderr);
  t.deepEqual(pm.json.ips, add.json.ips, 'portmap passes our result through');
  const server = startPeerServer(path.basename(p), 8080);
  t.teardown(() => server.stop());
  // (peerAddressSeen names the failure instead of returning nothing, so compare with the client's address)
  t.is(await peerAddressSeen(client.netns, node.vm.primaryIP, 18080), '10.40.0.50', 'connection through the mapped host port reached the pod');
  const pmDel = await invokePlugin('/usr/lib/cni/portmap', { ...env, CNI_COMMAND: 'DEL' }, portmapConf(add.json), {}, ['ip', 'netns', 'exec', node.vm.netns]);
  t.is(pmDel.code, 0, pmDel.stdout + pmDel.stderr);
  t.is((await node.cni('DEL', { containerId: 'pm-pod', netns: p, conf: node.conf({ cniVersion: '1.0.0', prevResult: add.json }) })).code, 0);
});

test('agent restart keeps allocations; reconciliation frees only pods whose namespace is provably gone', async (t) => {
  const node = await withNode(t, 4);
  const [p1, p2] = [await node.pod('r'), await node.pod('r')];
  const a1 = await node.cni('ADD', { containerId: 'keep', netns: p1 });
  const a2 = await node.cni('ADD', { containerId: 'gone', netns: p2 });
  t.is(a1.code + a2.code, 0);
  await node.agent!.close();
  const state = JSON.parse(await readFile(path.join(node.dir, 'state', 'allocations.json'), 'utf8'));
  t.deepEqual(state.allocations.map((a: { ip: string }) => a.ip).sort(), [ipOf(a1), ipOf(a2)].sort());
  // while the agent is down, the runtime removes pod 2's namespace (its veth dies with it)
  const { runRaw } = await import('../datapath/exec.js');
  await runRaw(undefined, ['ip', 'netns', 'del', path.basename(p2)]);
  t.false(existsSync(p2));
  // The kernel destroys a deleted namespace (and the veth pair with it) asynchronously: the model is a
  // pod gone for good, so wait until its host veth is gone too (reconciliation keeps it while it is not).
  for (const deadline = Date.now() + 10_000; (await linkExists(node, undefined, hostVethName('gone', 'eth0'))) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 25));
  t.false(await linkExists(node, undefined, hostVethName('gone', 'eth0')), 'the pod\'s host veth died with its namespace');
  const down = await node.cni('ADD', { containerId: 'x', netns: p1 });
  t.is(down.json.code, 11);
  await node.startAgent();
  t.is(node.agent!.addresses.lookup({ containerId: 'keep', ifName: 'eth0' })?.ip, ipOf(a1));
  t.is(node.agent!.addresses.lookup({ containerId: 'gone', ifName: 'eth0' }), undefined);
  const routes = await node.fabric.exec('vm1', ['ip', '-4', 'route', 'show']);
  t.false(routes.includes(`${ipOf(a2)} `), `the freed pod's route is gone too: ${routes}`);
  t.true(routes.includes(`${ipOf(a1)} `), routes);
  t.true(await pingEventually(p1, node.vm.primaryIP), 'the kept pod still reaches its node');
  // the health endpoint reports ready, and metrics count the CNI requests
  const [host, port] = node.agent!.healthAddress.split(':');
  const ready = await fetch(`http://${host}:${port}/readyz`);
  t.is(ready.status, 200);
  const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text();
  t.regex(metrics, /podvnet_agent_allocated_ips 1/);
});
