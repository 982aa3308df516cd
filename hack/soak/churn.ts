/**
 * The workload: a target population that moves at random (now and then to anywhere from 0 to 90 pods),
 * ADDs and DELs with up to 12 under way, and 1 in 100 steps a burst of 8 to 20 ADDs on one node (a
 * Deployment scaled up). Every choice comes from the workload's seeded stream.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { sleep, type PodRuntime } from './pods.js';
import type { Prng } from './prng.js';

export async function churn(sandbox: Sandbox, runtime: PodRuntime, rng: Prng, o: {
  churnEnd: number; maxPodsPerNode: number; log: (line: string) => void; sinceStart: () => number;
}): Promise<void> {
  let target = rng.int(4, 30);
  while (Date.now() < o.churnEnd) {
    if (rng.chance(0.02)) target = rng.int(0, Math.min(90, o.maxPodsPerNode * sandbox.nodes.length - 10));
    const present = runtime.present();
    const busy = runtime.busy();
    if (rng.chance(0.01)) {
      // a burst: a Deployment scaled up on one node
      const node = rng.pick(sandbox.nodes);
      const n = Math.max(0, Math.min(rng.int(8, 20), o.maxPodsPerNode - runtime.onNode(node)));
      o.log(`burst at ${(o.sinceStart() / 1000).toFixed(1)} s: ${n} pods on ${node.name}`);
      for (let i = 0; i < n; i++) runtime.track(runtime.add(node));
    } else if (busy < 12 && present < target) {
      const free = sandbox.nodes.filter((n) => runtime.onNode(n) < o.maxPodsPerNode);
      if (free.length) runtime.track(runtime.add(rng.pick(free)));
    } else if (busy < 12 && present > target) {
      const up = runtime.live();
      if (up.length) runtime.track(runtime.delete(rng.pick(up)));
    }
    await sleep(rng.int(30, 250));
  }
}

/** The end of the workload: every pod still up deleted, 8 at a time. */
export async function deleteAll(runtime: PodRuntime, log: (line: string) => void): Promise<void> {
  const rest = runtime.live();
  log(`deleting the ${rest.length} remaining pods`);
  for (let i = 0; i < rest.length; i += 8) await Promise.all(rest.slice(i, i + 8).map((p) => runtime.delete(p)));
}
