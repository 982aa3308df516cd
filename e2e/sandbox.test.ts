import test from 'ava';
import { SANDBOX_NETWORK } from '../hack/sandbox/sandbox.js';
import { peerAddressSeen, pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { cidrContains, parseCIDR } from '../crds/ipv4.js';
import { burstOn, podsOnEveryNode, startVmAndScaleSet, waitForEveryRecord, withPeers } from './testing/sandbox.js';

/**
 * The whole product at once, as the sandbox runs it: emulated Azure and API server, the real controller and
 * one real agent per simulated VM (a standalone VM and a scale-set instance), the C forwarder as the
 * runtime's plugin, the real datapath, a fabric that delivers only to the NIC that holds an IP. Root only.
 */

test.serial('pools, pods, reachability, SNAT, growth and release across the whole system', async (t) => {
  t.timeout(240_000);
  const { sandbox, vm } = await startVmAndScaleSet(t);

  // The controller gives each node the pool's minimum (4), rounded to a batch (8), from Azure.
  await waitForEveryRecord(sandbox, 'both records to hold IPs', (s) => (s?.ips ?? []).length >= 4, 90_000);
  for (const n of sandbox.nodes) {
    const rec = await sandbox.record(n.name);
    const azureIPs = sandbox.fabric.nicIPs(n.name).sort();
    t.deepEqual(rec.status.ips.map((x: { ip: string }) => x.ip).sort(), azureIPs, `${n.name}: the record lists exactly what Azure delivers to the NIC`);
    t.is(rec.status.nic.macAddress.toLowerCase().replaceAll('-', ':'), n.vm.mac);
  }

  const pods = await podsOnEveryNode(sandbox, 2, (k, i) => `p${k}${i}`);
  t.is(new Set(pods.map((p) => p.ip)).size, pods.length, 'no address is handed out twice');
  for (const p of pods) t.true(sandbox.fabric.nicIPs(p.node.name).includes(p.ip), `${p.name}'s ${p.ip} is an ip-config of its node's NIC`);

  const [a, b, c] = [pods[0]!, pods[1]!, pods[2]!];
  t.true(await pingEventually(a.netns, b.ip), 'same node');
  t.true(await pingEventually(a.netns, c.ip), 'across the VNet, VM to scale-set instance');

  await withPeers(sandbox, 8081, async ({ vnetIP, outsideIP }) => {
    t.is(await peerAddressSeen(c.netns, vnetIP, 8081), c.ip, 'no SNAT inside the VNet');
    t.is(await peerAddressSeen(c.netns, outsideIP, 8081), c.node.azure.primaryIP, 'SNAT to the node IP outside it');
  });

  // A burst grows the pool in batches; the end of it shrinks the pool through the release handshake.
  const before = (await sandbox.record(vm.name)).status.ips.length;
  const burst = await burstOn(t, sandbox, vm, Array.from({ length: 14 }, (_, i) => `b${i}`));
  const grown = (await sandbox.record(vm.name)).status.ips.length;
  t.true(grown > before, `grew from ${before} to ${grown}`);
  t.is(grown % 8, 0, 'grows in whole batches');
  for (const p of burst) await sandbox.deletePod(p.name);
  await sandbox.waitFor('the pool to shrink', async () => (await sandbox.record(vm.name)).status.ips.length < grown, 90_000);
  const after = await sandbox.record(vm.name);
  for (const p of pods.filter((x) => x.node === vm)) {
    t.true(after.status.ips.some((x: { ip: string }) => x.ip === p.ip), `${p.name}'s IP stays: only released IPs are removed`);
  }
  t.true(await pingEventually(a.netns, c.ip), 'pods that stayed still talk');
});

test.serial('pods in a subnet other than the nodes\': addresses from the pod subnet, across nodes, into the VNet without SNAT, out with it', async (t) => {
  t.timeout(300_000); // a loaded 2-core machine takes about a minute to start the agents
  const { sandbox } = await startVmAndScaleSet(t, { podSubnet: SANDBOX_NETWORK.podSubnet });
  t.is(sandbox.podSubnet, SANDBOX_NETWORK.podSubnet);
  const inPods = (ip: string) => cidrContains(parseCIDR(SANDBOX_NETWORK.podSubnet), ip);
  const inNodes = (ip: string) => cidrContains(parseCIDR(SANDBOX_NETWORK.nodeSubnet), ip);

  await waitForEveryRecord(sandbox, 'both records to hold IPs', (s) => (s?.ips ?? []).length >= 4, 60_000);
  for (const n of sandbox.nodes) {
    const rec = await sandbox.record(n.name);
    t.true(inNodes(n.azure.primaryIP), `${n.name}'s NIC is in the nodes' subnet`);
    t.like(rec.status.subnet, { id: sandbox.podSubnetID, addressPrefix: SANDBOX_NETWORK.podSubnet, gatewayIP: '10.240.16.1' });
    t.deepEqual(rec.status.ips.map((x: { ip: string }) => x.ip).sort(), sandbox.fabric.nicIPs(n.name).sort(), `${n.name}: the record lists what Azure delivers to the NIC`);
    t.true(rec.status.ips.every((x: { ip: string }) => inPods(x.ip)), `${n.name}: every ip-config is in the pod subnet`);
  }

  const pods = await podsOnEveryNode(sandbox, 1, (k) => `s${k}`);
  const [a, c] = [pods[0]!, pods[1]!];
  t.not(a.node, c.node);
  for (const p of pods) t.true(inPods(p.ip), `${p.name}'s ${p.ip} is in ${SANDBOX_NETWORK.podSubnet}`);
  t.true(await pingEventually(a.netns, c.ip), 'pod to pod across nodes, VM to scale-set instance');
  t.true(await pingEventually(c.netns, a.ip), 'and back');

  await withPeers(sandbox, 8082, async ({ vnetIP, outsideIP }) => {
    for (const p of pods) {
      t.is(await peerAddressSeen(p.netns, vnetIP, 8082), p.ip, `${p.name}: a host in the nodes' subnet sees the pod's own address`);
      t.is(await peerAddressSeen(p.netns, outsideIP, 8082), p.node.azure.primaryIP, `${p.name}: SNAT to the node IP outside the VNet`);
    }
  });
});
