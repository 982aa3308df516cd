import test from 'ava';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { distPath, ensureBuilt } from '../../hack/dist.js';
import { createPool, kubeForAgent, nodeRecord } from './testing/kube.js';
import { until } from './testing/poll.js';
import { startTestNode } from './testing/test-node.js';

/**
 * What the node agent process loads in API-server mode, as deployed (the compiled dist/ agent, its own
 * process): its own small API client, and never @kubernetes/client-node (most of its memory when it
 * did). Every module the process resolves is logged by a loader hook (testing/record-modules.mjs);
 * a control run shows the hook does see client-node when something loads it.
 */

const RECORDER = fileURLToPath(new URL('./testing/record-modules.mjs', import.meta.url));

function run(args: string[], env: Record<string, string>): { exited: Promise<number | null>; kill(signal: NodeJS.Signals): void; stderr(): string } {
  const child = spawn(process.execPath, ['--import', RECORDER, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { exited, kill: (s) => child.kill(s), stderr: () => stderr };
}

test('the agent in API-server mode talks to the API server without loading @kubernetes/client-node', async (t) => {
  t.timeout(120_000);
  ensureBuilt();
  const node = await startTestNode({ podIPCount: 4, startAgent: false });
  t.teardown(() => node.close());
  const { co, kubeconfig } = await kubeForAgent(t, node.dir);
  await createPool(co, 'general', { ipsPerNode: { min: 0, max: 250 }, scaling: { batchSize: 4 }, snat: { enabled: true, excludeCIDRs: [] } });
  const record = nodeRecord(co, 'vm1');
  await record.create('general');
  await record.setStatus(JSON.parse(await readFile(node.recordPath, 'utf8')).record.status);

  const log = path.join(node.dir, 'modules.log');
  const agent = run([distPath('agent'), '--node-name=vm1', `--socket=${node.socket}`, '--cnm-socket=', `--state-dir=${path.join(node.dir, 'state')}`, `--kubeconfig=${kubeconfig}`,
    '--host-interface=eth0', `--host-netns=${node.vm.netnsPath}`, '--cooldown-ms=0', '--sync-interval-ms=100', '--metrics-address=127.0.0.1:0', '--log-level=warn'], { PODVNET_MODULE_LOG: log });
  let exited = false;
  void agent.exited.then(() => (exited = true));
  t.teardown(() => agent.kill('SIGKILL'));
  // the agent read its record (watch) and wrote its demand (patch): it did talk to the API server
  t.true(await until(async () => exited || (await record.get()).spec.demand !== undefined, 60_000), agent.stderr());
  t.false(exited, `the agent is running: ${agent.stderr()}`);
  agent.kill('SIGTERM');
  t.is(await agent.exited, 0, agent.stderr());

  const loaded = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  t.true(loaded.some((u) => u.endsWith('/dist/node-plugin/agent/kube/informer.js')), 'the recorder saw the agent\'s own client load');
  t.true(loaded.some((u) => u.includes('/node_modules/pino/')), 'and packages from node_modules');
  t.deepEqual(loaded.filter((u) => u.includes('/node_modules/@kubernetes/')), [], 'nothing of @kubernetes/client-node');

  // control: the same recorder on a process that does load client-node sees it
  const controlLog = path.join(node.dir, 'control.log');
  const control = run(['--input-type=module', '-e', "await import('@kubernetes/client-node')"], { PODVNET_MODULE_LOG: controlLog });
  t.is(await control.exited, 0, control.stderr());
  t.true((await readFile(controlLog, 'utf8')).includes('/node_modules/@kubernetes/client-node/'));
});
