import test from 'ava';
import { Sandbox, SANDBOX_NETWORK, type Pod } from '../hack/sandbox/sandbox.js';
import { peerAddressSeen, pingEventually, startPeerServer } from '../node-plugin/datapath/testkit.js';

/**
 * The whole product at once, as the sandbox runs it: emulated Azure and API server, the real controller and
 * one real agent per simulated VM (a standalone VM and a scale-set instance), the C forwarder as the
 * runtime's plugin, the real datapath, a fabric that delivers only to the NIC that holds an IP. Root only.
 */

test.serial('pools, pods, reachability, SNAT, growth and release across the whole system', async (t) => {
  t.timeout(240_000);
  const sandbox = await Sandbox.start({ vms: 1, scaleSetInstances: 1 });
  t.teardown(() => sandbox.close());
  const [vm, vmss] = sandbox.nodes;
  t.truthy(vm && vmss && vmss.azure.kind === 'vmss');

  // The controller gives each node the pool's minimum (4), rounded to a batch (8), from Azure.
  await sandbox.waitFor('both records to hold IPs', async () => {
    for (const n of sandbox.nodes) if (((await sandbox.record(n.name)).status?.ips ?? []).length < 4) return false;
    return true;
  }, 90_000);
  for (const n of sandbox.nodes) {
    const rec = await sandbox.record(n.name);
    const azureIPs = sandbox.fabric.nicIPs(n.name).sort();
    t.deepEqual(rec.status.ips.map((x: { ip: string }) => x.ip).sort(), azureIPs, `${n.name}: the record lists exactly what Azure delivers to the NIC`);
    t.is(rec.status.nic.macAddress.toLowerCase().replaceAll('-', ':'), n.vm.mac);
  }

  const pods: Pod[] = [];
  for (const [k, n] of sandbox.nodes.entries()) for (const i of [1, 2]) pods.push(await sandbox.addPod(n.name, `p${k}${i}`));
  t.is(new Set(pods.map((p) => p.ip)).size, pods.length, 'no address is handed out twice');
  for (const p of pods) t.true(sandbox.fabric.nicIPs(p.node.name).includes(p.ip), `${p.name}'s ${p.ip} is an ip-config of its node's NIC`);

  const [a, b, c] = [pods[0]!, pods[1]!, pods[2]!];
  t.true(await pingEventually(a.netns, b.ip), 'same node');
  t.true(await pingEventually(a.netns, c.ip), 'across the VNet, VM to scale-set instance');

  const vnetPeer = startPeerServer(sandbox.vnetHost.netns, 8081);
  const outsidePeer = startPeerServer(sandbox.outsideHost.netns, 8081);
  try {
    t.is(await peerAddressSeen(c.netns, SANDBOX_NETWORK.vnetHostIP, 8081), c.ip, 'no SNAT inside the VNet');
    t.is(await peerAddressSeen(c.netns, SANDBOX_NETWORK.outsideHostIP, 8081), c.node.azure.primaryIP, 'SNAT to the node IP outside it');
  } finally {
    vnetPeer.stop();
    outsidePeer.stop();
  }

  // A burst grows the pool in batches; the end of it shrinks the pool through the release handshake.
  const before = (await sandbox.record(vm!.name)).status.ips.length;
  const burst: Pod[] = [];
  for (let i = 0; i < 14; i++) {
    for (let attempt = 0; ; attempt++) {
      try {
        burst.push(await sandbox.addPod(vm!.name, `b${i}`));
        break;
      } catch (e) {
        t.regex((e as Error).message, /try again later|no free|"code": ?11/i, 'an empty pool answers "try again later"');
        if (attempt > 200) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
  const grown = (await sandbox.record(vm!.name)).status.ips.length;
  t.true(grown > before, `grew from ${before} to ${grown}`);
  t.is(grown % 8, 0, 'grows in whole batches');
  for (const p of burst) await sandbox.deletePod(p.name);
  await sandbox.waitFor('the pool to shrink', async () => (await sandbox.record(vm!.name)).status.ips.length < grown, 90_000);
  const after = await sandbox.record(vm!.name);
  for (const p of pods.filter((x) => x.node === vm)) {
    t.true(after.status.ips.some((x: { ip: string }) => x.ip === p.ip), `${p.name}'s IP stays: only released IPs are removed`);
  }
  t.true(await pingEventually(a.netns, c.ip), 'pods that stayed still talk');
});
