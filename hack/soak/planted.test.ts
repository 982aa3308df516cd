import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runSoak } from './soak.js';

/**
 * The soak can fail: a corruption planted into a running system is reported by name. Here a duplicate
 * allocation is written into an agent's state (its agent stopped first, so nothing rewrites the file
 * while the soak looks), as a double hand-out of one IP would leave it. Root only (network namespaces).
 */
test.serial('a duplicate allocation planted into an agent\'s state is reported as duplicate-ip, naming the IP and both holders', async (t) => {
  t.timeout(600_000);
  let planted: { node: string; ip: string; holder: string } | undefined;
  const r = await runSoak({
    seed: 11, durationMs: 25_000, faults: false, settleTimeoutMs: 30_000,
    plant: {
      atMs: 8000,
      run: async (soak) => {
        const deadline = Date.now() + 60_000;
        while (!soak.livePods().length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
        const victim = soak.livePods()[0];
        if (!victim) throw new Error('no live pod to plant a duplicate next to');
        const node = soak.sandbox.node(victim.node);
        await node.agent.kill('SIGKILL');
        const file = path.join(node.stateDir, 'allocations.json');
        const original = await readFile(file, 'utf8');
        const state = JSON.parse(original);
        state.allocations.push({ ...state.allocations.find((a: { containerId: string }) => a.containerId === victim.containerId), containerId: 'planted-duplicate' });
        await writeFile(file, JSON.stringify(state));
        planted = { node: victim.node, ip: victim.ip, holder: victim.containerId };
        await soak.nextCheck();
        await soak.nextCheck();
        // put the agent back as it was, so the rest of the run is the ordinary one
        await writeFile(file, original);
        node.agent.start();
      },
    },
  });
  t.truthy(planted, 'the corruption was planted');
  const dup = r.violations.filter((v) => v.kind === 'duplicate-ip');
  t.true(dup.some((v) => v.detail === `${planted!.node}: the agent's state allocates ${planted!.ip} to both ${planted!.holder} and planted-duplicate`),
    `reported: ${JSON.stringify(dup)}`);
});
