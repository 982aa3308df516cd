import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, startTestNode, type CniCall, type TestNode } from '../agent/testing/test-node.js';
import { pingEventually } from '../datapath/testing/testkit.js';

/**
 * Load and crash tests through the real C forwarder, agent and datapath: 250 concurrent ADDs on one
 * node, and an agent killed with SIGKILL in the middle of ADD/DEL churn. Needs root.
 */

const ipOf = (r: CniCall) => (r.json.ips[0].address as string).split('/')[0]!;

async function podIPInKernel(node: TestNode, netns: string): Promise<string | undefined> {
  const r = await node.fabric.execRaw(netns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return /inet (\d+\.\d+\.\d+\.\d+)\//.exec(r.stdout)?.[1];
}

test.serial('250 concurrent ADDs get 250 distinct IPs that are really configured; then 250 DELs clean up', async (t) => {
  t.timeout(110_000);
  const node = await startTestNode({ podIPCount: 250 });
  t.teardown(() => node.close());
  const pods = await Promise.all(Array.from({ length: 250 }, (_, i) => node.pod(`s${i}-`)));
  const started = Date.now();
  const adds = await Promise.all(pods.map((netns, i) => node.cni('ADD', { containerId: `scale-${i}`, netns })));
  const wall = Date.now() - started;
  const failed = adds.filter((a) => a.code !== 0);
  t.deepEqual(failed.map((f) => f.stdout), []);
  const ips = adds.map(ipOf);
  t.is(new Set(ips).size, 250, 'no IP handed out twice');
  t.true(ips.every((ip) => node.podIPs.includes(ip)));
  t.log(`250 concurrent ADDs: ${wall} ms wall`);
  // every pod has exactly the address its result names (sampled widely, all would take long)
  for (const i of [0, 1, 49, 100, 173, 249]) t.is(await podIPInKernel(node, pods[i]!), ips[i]);
  t.true(await pingEventually(pods[0]!, ips[249]!), 'the first pod reaches the last');
  t.is((await node.cni('STATUS', {})).json.code, 50, 'pool exhausted: not ready');
  const dels = await Promise.all(pods.map((netns, i) => node.cni('DEL', { containerId: `scale-${i}`, netns })));
  t.true(dels.every((d) => d.code === 0));
  t.is(node.agent!.addresses.listAllocations().length, 0);
  t.is((await node.fabric.exec('vm1', ['ip', '-o', 'link', 'show', 'master', 'podvnet0', 'up'])).trim(), '', 'every pod veth off the bridge\'s network at once');
  await node.retiredVethsDeleted();
  const links = await node.fabric.exec('vm1', ['ip', '-o', 'link', 'show', 'master', 'podvnet0']);
  t.is(links.trim(), '', 'no pod veth left on the bridge');
});

function agentArgs(node: TestNode): string[] {
  const c = node.config;
  return [
    `--node-name=${c.nodeName}`, `--socket=${c.socket}`, '--cnm-socket=', `--state-dir=${c.stateDir}`,
    `--record-file=${c.recordFile}`, `--host-interface=${c.hostInterface}`, `--host-netns=${c.hostNetns}`,
    '--cooldown-ms=0', '--sync-interval-ms=50', '--metrics-address=127.0.0.1:0', '--log-level=warn',
  ];
}

function spawnAgent(node: TestNode): ChildProcess {
  return spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', path.join(REPO_ROOT, 'node-plugin/agent/main.ts'), ...agentArgs(node)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function waitReady(node: TestNode, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await node.cni('STATUS', {});
    if (s.code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('agent did not become ready');
}

test.serial('agent SIGKILLed in the middle of churn loses and duplicates nothing', async (t) => {
  t.timeout(110_000);
  const node = await startTestNode({ podIPCount: 40, startAgent: false });
  let agent = spawnAgent(node);
  t.teardown(async () => {
    agent.kill('SIGKILL');
    await node.close();
  });
  await waitReady(node);

  const podCount = 30;
  const pods = await Promise.all(Array.from({ length: podCount }, (_, i) => node.pod(`k${i}-`)));
  const believed = new Map<number, string>(); // what the runtime believes: pod -> IP
  let retries = 0;

  // The runtime's behaviour: retry on "try again later"; after a failed ADD, DEL before trying again.
  const del = async (i: number) => {
    for (;;) {
      const r = await node.cni('DEL', { containerId: `churn-${i}`, netns: pods[i]! });
      if (r.code === 0) return;
      retries++;
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const add = async (i: number) => {
    for (;;) {
      const r = await node.cni('ADD', { containerId: `churn-${i}`, netns: pods[i]! });
      if (r.code === 0) {
        believed.set(i, ipOf(r));
        addsDone++;
        return;
      }
      if (r.json?.code !== 11 && r.json?.code !== 101) throw new Error(`unexpected ADD failure: ${r.stdout}`);
      retries++;
      await del(i);
    }
  };

  let killed = false;
  let addsDone = 0;
  const churn = Promise.all(
    pods.map(async (_, i) => {
      const rounds = 4 + (i % 3);
      for (let k = 0; k < rounds; k++) {
        await add(i);
        if (k === rounds - 1 && i % 2 === 0) return; // even pods end up running
        await del(i);
        believed.delete(i);
      }
    }),
  );
  // Kill the agent while the churn is in full swing (a third of the 150 ADDs done: by the clock, 400 ms,
  // a loaded machine may not have got going yet), then start a new one on the same state.
  for (const deadline = Date.now() + 60_000; addsDone < 50 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
  agent.kill('SIGKILL');
  killed = true;
  await new Promise((r) => agent.once('exit', r));
  agent = spawnAgent(node);
  await churn;
  t.true(killed);
  t.log(`retries during the outage: ${retries}`);
  t.true(retries > 0, 'the kill happened while requests were in flight');

  // Nothing duplicated: running pods hold distinct IPs, each really configured in its namespace.
  const running = [...believed.entries()];
  t.is(running.length, podCount / 2);
  t.is(new Set(running.map(([, ip]) => ip)).size, running.length);
  for (const [i, ip] of running) t.is(await podIPInKernel(node, pods[i]!), ip, `pod ${i}`);

  // Nothing lost or leaked: after a graceful stop, the agent's state is exactly the running pods.
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  const state = JSON.parse(await readFile(path.join(node.config.stateDir, 'allocations.json'), 'utf8')) as { allocations: Array<{ containerId: string; ip: string }> };
  t.deepEqual(
    state.allocations.map((a) => `${a.containerId}=${a.ip}`).sort(),
    running.map(([i, ip]) => `churn-${i}=${ip}`).sort(),
  );
  // and the kernel has a veth for exactly those pods
  const links = await node.fabric.exec('vm1', ['ip', '-o', 'link', 'show', 'master', 'podvnet0']);
  t.is(links.trim().split('\n').filter(Boolean).length, running.length);
});
