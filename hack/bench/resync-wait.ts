/**
 * How long a pod's ADD waits behind a periodic resync (ensureNode with force) on a node with 50 pods:
 * the ADD is started right after the resync, so its anti-spoofing rule change queues behind the resync's
 * turn in the node's serialized queue. Prints p50/p90 of the ADD and of the resync itself. Root.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/resync-wait.ts [--rounds 15]
 */
import { createFabric } from '../../node-plugin/datapath/testing/fabric-sim.js';
import * as dp from '../../node-plugin/datapath/index.js';

const rounds = Number(/--rounds[= ](\d+)/.exec(process.argv.slice(2).join(' '))?.[1] ?? 15);
const pct = (v: number[], p: number) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!; };
const f = await createFabric({ vnetPrefixes: ['10.32.0.0/16'], subnets: ['10.32.0.0/24', '10.32.8.0/22'] });
try {
  const vm = await f.addVM({ name: 'rw', mac: '00:0d:3a:32:00:04', primaryIP: '10.32.0.4' });
  const ips = Array.from({ length: 50 + rounds }, (_, i) => `10.32.8.${10 + i}`);
  await f.setNicIPs('rw', ips);
  const net = vm.nodeNetwork({ podSubnet: '10.32.8.0/22' });
  await dp.ensureNode(net);
  const pod = async (i: number): Promise<dp.PodInterface> => ({ containerId: `rw-${i}`, netnsPath: `/run/netns/${await f.addNetns(`rw${i}`)}`, ifName: 'eth0', ip: ips[i]!, prefixLength: 22 });
  const base = await Promise.all(Array.from({ length: 50 }, (_, i) => pod(i)));
  for (const p of base) await dp.attachPod(net, p);
  const add: number[] = [];
  const resync: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const p = await pod(50 + r);
    const t0 = performance.now();
    const sync = dp.ensureNode(net, { force: true }).then(() => resync.push(performance.now() - t0));
    const t1 = performance.now();
    await dp.attachPod(net, p);
    add.push(performance.now() - t1);
    await sync;
  }
  console.log(`ADD started right after a forced resync (50 pods on the node, ${rounds} rounds): p50 ${pct(add, 50).toFixed(1)} ms, p90 ${pct(add, 90).toFixed(1)} ms; the resync itself p50 ${pct(resync, 50).toFixed(1)} ms`);
} finally {
  await f.destroy();
}
