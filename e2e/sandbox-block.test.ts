import test from 'ava';
import { pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { cidrContains, parseCIDR } from '../crds/ipv4.js';
import { burstOn, podsOnEveryNode, startVmAndScaleSet, waitForEveryRecord } from './testing/sandbox.js';

/**
 * Block mode across the whole system, as `bash hack/sandbox.sh --block` runs it: the compiled controller
 * puts /28 blocks on a standalone VM's NIC and a scale-set instance's VM model, the real agents hand out
 * their addresses to real pods (the fullest block first), the fabric delivers every address of a block to
 * the NIC holding it, and a burst grows and then gives back whole blocks only. Root only.
 */

const BLOCK_POOL = { allocation: 'Block', ipsPerNode: { min: 16, max: 64 }, scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 } };
const inBlocks = (ip: string, blocks: string[]) => blocks.some((b) => cidrContains(parseCIDR(b), ip));

test.serial('Block pool: /28 blocks per node, pods from blocks across nodes, growth and release by whole block', async (t) => {
  t.timeout(240_000);
  const { sandbox, vm } = await startVmAndScaleSet(t, { pool: BLOCK_POOL });
  const blocksOf = async (node: string): Promise<string[]> => ((await sandbox.record(node)).status?.blocks ?? []).map((b: { prefix: string }) => b.prefix);

  await waitForEveryRecord(sandbox, 'both records to hold a block', (s) => (s?.blocks ?? []).length >= 1, 90_000);
  for (const n of sandbox.nodes) {
    const rec = await sandbox.record(n.name);
    t.deepEqual(rec.status.ips, [], `${n.name}: no single ip-configs`);
    t.is(rec.status.allocatedIPs, 16 * rec.status.blocks.length);
    for (const b of await blocksOf(n.name)) {
      t.regex(b, /\.(0|16|32|48|64|80|96|112|128|144|160|176|192|208|224|240)\/28$/, 'an aligned /28');
      const first = b.split('/')[0]!;
      t.is(sandbox.azure.ipOwner(first)?.nodeName, n.name, `${b}: Azure holds its addresses for ${n.name}`);
    }
  }

  const pods = await podsOnEveryNode(sandbox, 2, (k, i) => `k${k}${i}`);
  t.is(new Set(pods.map((p) => p.ip)).size, pods.length, 'no address is handed out twice');
  for (const p of pods) t.true(inBlocks(p.ip, await blocksOf(p.node.name)), `${p.name}'s ${p.ip} is in a block of ${p.node.name}`);
  const [a, b, c] = [pods[0]!, pods[1]!, pods[2]!];
  t.true(await pingEventually(a.netns, b.ip), 'same node');
  t.true(await pingEventually(a.netns, c.ip), 'across the VNet, VM to scale-set instance: the fabric delivers a block address');
  t.true(await pingEventually(c.netns, a.ip), 'and back');

  // A burst of 20 pods on the VM: 22 pods need a second block (grow at fewer than 8 free of 16).
  const before = await blocksOf(vm.name);
  const burst = await burstOn(t, sandbox, vm, Array.from({ length: 20 }, (_, i) => `bb${i}`));
  const grown = await blocksOf(vm.name);
  t.true(grown.length > before.length, `grew from ${before.length} to ${grown.length} blocks`);
  t.true(before.every((x) => grown.includes(x)), 'the first block stays');
  for (const p of [...burst, ...pods.filter((x) => x.node === vm)]) t.true(inBlocks(p.ip, grown), `${p.name}'s ${p.ip} is in a block of the VM`);
  t.true(await pingEventually(c.netns, burst.at(-1)!.ip), 'a pod in the new block is reachable from the other node');

  for (const p of burst) await sandbox.deletePod(p.name);
  await sandbox.waitFor('a whole block to go', async () => (await blocksOf(vm.name)).length < grown.length, 90_000);
  const after = await blocksOf(vm.name);
  for (const p of pods.filter((x) => x.node === vm)) t.true(inBlocks(p.ip, after), `${p.name}'s ${p.ip} keeps its block: only blocks without a pod are given back`);
  // The agent hears of the shrunk status through its own watch and rewrites its spec after that: the
  // handshake ends a moment after the block leaves the status, not in the same instant.
  await sandbox.waitFor('the agent to stop listing the block it gave back', async () => ((await sandbox.record(vm.name)).spec.releasedBlocks ?? []).length === 0, 30_000).catch(() => undefined);
  t.deepEqual((await sandbox.record(vm.name)).spec.releasedBlocks ?? [], [], 'the handshake ends: the agent lists nothing the NIC no longer holds');
  t.true(await pingEventually(a.netns, c.ip), 'pods that stayed still talk');
});
