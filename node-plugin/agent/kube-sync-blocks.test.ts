import test from 'ava';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { startAgent } from './agent.js';
import { until } from './testing/poll.js';
import { startTestNode } from './testing/test-node.js';
import { createPool, kubeForAgent, nodeRecord } from './testing/kube.js';
import { blockOf } from './ipam/block-policy.js';

/**
 * Block mode in the agent, against the Kubernetes API emulator with the real client: addresses come from
 * status.blocks (the fullest block first), and whole blocks go back through spec.releasedBlocks; a block
 * is listed only when no pod holds an address of it, and stays listed until the controller removed it.
 */


test('agent in Block mode: pods packed into the fullest /28, idle blocks released whole, the handshake per block', async (t) => {
  t.timeout(90_000);
  const node = await startTestNode({ podIPCount: 1, startAgent: false });
  t.teardown(() => node.close());
  const { co, kubeconfig } = await kubeForAgent(t, node.dir);
  await createPool(co, 'blocks', {
    allocation: 'Block',
    ipsPerNode: { min: 0, max: 64 },
    scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: [] },
  });
  const vm1 = nodeRecord(co, 'vm1');
  await vm1.create('blocks');
  const fileRecord = JSON.parse(await readFile(node.recordPath, 'utf8')).record;
  const blocks = ['10.40.6.0/28', '10.40.6.16/28', '10.40.6.32/28'];
  await node.fabric.setNicIPs('vm1', blocks.flatMap((b) => Array.from({ length: 16 }, (_, i) => `${b.split('.').slice(0, 3).join('.')}.${Number(b.split('.')[3]!.split('/')[0]) + i}`)));
  const setBlocks = (bs: string[]) =>
    vm1.setStatus({ ...fileRecord.status, ips: [], blocks: bs.map((prefix, i) => ({ prefix, ipConfigName: `podvnet-b${i + 1}` })), allocatedBlocks: bs.length });
  const spec = async () => (await vm1.get()).spec;
  await setBlocks(blocks);

  const agent = await startAgent({ ...node.config, recordFile: undefined, kubeconfig, syncIntervalMs: 100 }, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  await agent.reconciled;
  t.true(agent.addresses.blockMode());

  // Idle: the scaling math keeps one block (0 used, batch 16) and gives the two highest back whole.
  t.true(await until(async () => ((await spec()).releasedBlocks ?? []).length === 2), JSON.stringify(await spec()));
  t.deepEqual([...(await spec()).releasedBlocks].sort(), blocks.slice(1).sort());
  t.deepEqual((await spec()).releasedIPs ?? [], [], 'no single IP released in Block mode');

  // Pods get addresses of the one block kept, never of a released one.
  const pods = await Promise.all([0, 1, 2].map((i) => node.pod(`b${i}`)));
  const adds = [];
  for (const [i, netns] of pods.entries()) adds.push(await node.cni('ADD', { containerId: `blk-${i}`, netns }));
  t.true(adds.every((a) => a.code === 0), adds.map((a) => a.stdout).join('\n'));
  const held = adds.map((a) => a.json.ips[0].address.split('/')[0] as string);
  t.true(held.every((ip) => blockOf(ip, blocks) === blocks[0]), held.join(','));
  t.is(new Set(held).size, 3);
  t.true(await until(async () => (await spec()).demand?.usedIPs === 3), JSON.stringify(await spec()));

  // The controller removes the two released blocks: the list empties (the handshake is done).
  await setBlocks(blocks.slice(0, 1));
  t.true(await until(async () => ((await spec()).releasedBlocks ?? []).length === 0), JSON.stringify(await spec()));

  // A block with a held address is never listed, whatever the demand: the three pods stay, no release.
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual((await spec()).releasedBlocks ?? [], []);

  // After the pods go, the math still keeps one block (min 0, batch 16: target 16): nothing to give back.
  for (const [i, netns] of pods.entries()) t.is((await node.cni('DEL', { containerId: `blk-${i}`, netns })).code, 0);
  t.true(await until(async () => (await spec()).demand?.usedIPs === 0), JSON.stringify(await spec()));
  t.deepEqual((await spec()).releasedBlocks ?? [], []);
  await agent.close();
  node.agent = undefined;
});
