import test from 'ava';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import * as datapath from '../datapath/index.js';
import { startAgent } from './agent.js';
import { callCniSocket, decodeRequest, encodeRequest } from './cni-socket.js';
import { parseAgentConfig } from './config.js';
import { planReconcile } from './reconcile.js';
import { FileStore } from './ipam/store.js';
import { ipRange, makeRecord, startTestNode, DEFAULT_POOL } from './testing/test-node.js';

const alloc = (containerId: string, ip: string, extra: Record<string, unknown> = {}) => ({
  containerId, ifName: 'eth0', runtime: 'cni' as const, ip, assignedAt: 1, ...extra,
});

test('config: flags win over PODVNET_* env; bad values name the field', (t) => {
  const c = parseAgentConfig(['--node-name', 'n1', '--cooldown-ms=250', '--mtu=1400'], { PODVNET_NODE_NAME: 'env-node', PODVNET_SOCKET: '/run/x.sock' });
  t.is(c.nodeName, 'n1');
  t.is(c.socket, '/run/x.sock');
  t.is(c.cooldownMs, 250);
  t.is(c.mtu, 1400);
  t.is(c.stateDir, '/var/lib/podvnet');
  t.throws(() => parseAgentConfig([], {}), { message: /nodeName: is required/ });
  t.throws(() => parseAgentConfig(['--node-name=n', '--socket=relative'], {}), { message: /socket: must be an absolute path/ });
  t.throws(() => parseAgentConfig(['--node-name=n', '--bogus=1'], {}), { message: /unknown flag "--bogus=1"/ });
  t.throws(() => parseAgentConfig(['--node-name=n', '--kubeconfig=/k', '--record-file=/r'], {}), { message: /either kubeconfig or recordFile/ });
});

test('wire format: round trip, and malformed frames are rejected', (t) => {
  const req = { env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'A=1;B=2' }, stdin: '{"x":"ü"}' };
  t.deepEqual(decodeRequest(encodeRequest(req)), req);
  t.throws(() => decodeRequest(Buffer.from('HELLO\n')), { message: /not a PODVNET-CNI\/1 request/ });
  t.throws(() => decodeRequest(Buffer.from('PODVNET-CNI/1\nCNI_COMMAND=ADD')), { message: /truncated/ });
});

test('reconcile: frees only with proof (no attachment and netns gone); adopts unknown attachments; reports conflicts', (t) => {
  const plan = planReconcile({
    allocations: [
      alloc('alive', '10.0.0.10', { netnsPath: '/run/netns/a' }),
      alloc('gone', '10.0.0.11', { netnsPath: '/run/netns/g' }),
      alloc('gone-but-attached', '10.0.0.12', { netnsPath: '/run/netns/h' }),
      alloc('no-netns-known', '10.0.0.13'),
      { ...alloc('docker', '10.0.0.14', { netnsPath: '/run/netns/d' }), runtime: 'cnm' as const },
    ],
    attachments: [
      { containerId: 'alive', ifName: 'eth0', ip: '10.0.0.10' },
      { containerId: 'gone-but-attached', ifName: 'eth0', ip: '10.0.0.12' },
      { containerId: 'orphan', ifName: 'eth0', ip: '10.0.0.20' },
      { containerId: 'thief', ifName: 'eth0', ip: '10.0.0.10' },
      { containerId: 'foreign', ifName: 'eth0', ip: '192.168.9.9' },
      { containerId: 'noip', ifName: 'eth0' },
    ],
    netnsExists: new Map([['/run/netns/a', true], ['/run/netns/g', false], ['/run/netns/h', false], ['/run/netns/d', false]]),
    poolIPs: ['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14', '10.0.0.20'],
    now: 99,
  });
  t.deepEqual(plan.free.map((a) => a.containerId), ['gone']);
  t.deepEqual(plan.keep.map((a) => a.containerId), ['alive', 'gone-but-attached', 'no-netns-known', 'docker']);
  t.deepEqual(plan.adopt, [{ containerId: 'orphan', ifName: 'eth0', runtime: 'cni', ip: '10.0.0.20', assignedAt: 99 }]);
  t.is(plan.conflicts.length, 3);
  t.regex(plan.conflicts.join('\n'), /thief.*10\.0\.0\.10.*alive/);
});

test('agent serves the CNM driver socket too, and SIGTERM-style close finishes requests in flight', async (t) => {
  t.timeout(60_000);
  const node = await startTestNode({ podIPCount: 4, startAgent: false });
  t.teardown(() => node.close());
  const cnmSocket = path.join(node.dir, 'plugins', 'azure-vnet.sock');
  // A datapath whose attach is slow, so a request is still running when close() starts.
  let attachStarted!: () => void;
  const started = new Promise<void>((r) => (attachStarted = r));
  const slow = {
    ...datapath,
    attachPod: async (...a: Parameters<typeof datapath.attachPod>) => {
      attachStarted();
      await new Promise((r) => setTimeout(r, 500));
      return datapath.attachPod(...a);
    },
  };
  const agent = await startAgent({ ...node.config, cnmSocket }, { logger: pino({ level: 'silent' }), datapath: slow });
  await agent.reconciled;
  t.true(existsSync(cnmSocket));
  const activate = await new Promise<string>((resolve, reject) => {
    const req = http.request({ socketPath: cnmSocket, path: '/Plugin.Activate', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end('{}');
  });
  t.regex(activate, /NetworkDriver/);
  t.regex(activate, /IpamDriver/);

  const pod = await node.pod('slow');
  const inflight = callCniSocket(node.socket, { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'slow', CNI_NETNS: pod, CNI_IFNAME: 'eth0' }, stdin: JSON.stringify(node.conf()) });
  await started;
  await agent.close();
  const res = await inflight;
  t.is(res.exitCode, 0, res.stdout);
  t.false(existsSync(node.socket), 'socket removed');
  const probe = new FileStore(node.config.stateDir);
  await t.notThrowsAsync(probe.lock(), 'lock released');
  await probe.unlock();
  // the allocation made by the finished request survived the shutdown
  const again = await startAgent(node.config, { logger: pino({ level: 'silent' }) });
  node.agent = again;
  await again.reconciled;
  t.is(again.addresses.lookup({ containerId: 'slow', ifName: 'eth0' })?.ip, JSON.parse(res.stdout).ips[0].address.split('/')[0]);
});

test('the agent installs the CNI executable and a conflist that podman-style runtimes accept', async (t) => {
  const node = await startTestNode({ podIPCount: 2, startAgent: false });
  t.teardown(() => node.close());
  const binDir = path.join(node.dir, 'opt-cni-bin');
  const confDir = path.join(node.dir, 'etc-cni-net.d');
  const agent = await node.startAgent({ cniBinDir: binDir, cniConfDir: confDir, cniNetworkName: 'podvnet-test' });
  t.deepEqual(await agent.readiness(), { ready: true }, 'the agent that installed the plugin is up and ready to serve it');
  t.is(agent.config.cniConfDir, confDir);
  const conf = JSON.parse(await readFile(path.join(confDir, '10-podvnet.conflist'), 'utf8'));
  t.deepEqual(conf.plugins.map((p: { type: string }) => p.type), ['podvnet-cni', 'portmap']);
  t.is(conf.plugins[0].agentSocket, node.socket);
  t.is(conf.plugins[0].delQueueDir, path.join(node.dir, 'state', 'del-queue'), 'the executable queues DELs where this agent reads them');
  t.is(conf.name, 'podvnet-test');
  t.deepEqual(await readdir(confDir), ['10-podvnet.conflist'], 'no temporary files left');
  // the installed copy is the real executable: it answers VERSION
  const { invokePlugin } = await import('./testing/test-node.js');
  const v = await invokePlugin(path.join(binDir, 'podvnet-cni'), { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  t.is(v.code, 0);
  t.is(v.json.cniVersion, '1.0.0');
  // and, configured as installed, it reaches the agent
  const pod = await node.pod('inst');
  const add = await invokePlugin(path.join(binDir, 'podvnet-cni'), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'inst', CNI_NETNS: pod, CNI_IFNAME: 'eth0' }, JSON.stringify({ ...conf.plugins[0], name: conf.name, cniVersion: conf.cniVersion }));
  t.is(add.code, 0, add.stdout);
});

test('STATUS says 51 when the node network cannot be set up, and ADD fails with the datapath code 101', async (t) => {
  const node = await startTestNode({ podIPCount: 2, startAgent: false });
  t.teardown(() => node.close());
  await node.startAgent({ hostInterface: 'nosuch0', mtu: 1500 });
  const status = await node.cni('STATUS', {});
  t.is(status.json.code, 51, status.stdout);
  t.regex(status.json.msg, /existing pods may have limited connectivity/);
  const add = await node.cni('ADD', { containerId: 'broken', netns: await node.pod('b') });
  t.is(add.json.code, 101, add.stdout);
  t.deepEqual(node.agent!.addresses.listAllocations(), [], 'the IP of the failed ADD is given back');
  const [host, port] = node.agent!.healthAddress.split(':');
  t.is((await fetch(`http://${host}:${port}/healthz`)).status, 200);
  const ready = await fetch(`http://${host}:${port}/readyz`);
  t.is(ready.status, 503);
  t.regex(await ready.text(), /^not ready: the node network is broken: bridge podvnet0 is missing.*; setting it up failed: host interface nosuch0 does not exist/);
  t.regex(await (await fetch(`http://${host}:${port}/metrics`)).text(), /^podvnet_agent_ready 0$/m, 'the metric says what /readyz says');
});

test('--add-wait-ms through the whole agent: an ADD with no free IP is held until the NIC gets more, and shutdown answers a held ADD "try again" at once', async (t) => {
  t.timeout(90_000);
  const node = await startTestNode({ podIPCount: 1, startAgent: false });
  t.teardown(() => node.close());
  await node.startAgent({ addWaitMs: 60_000 });
  const first = await node.cni('ADD', { containerId: 'a', netns: await node.pod('a') });
  t.is(first.code, 0, first.stderr);

  // The only IP is taken: b waits inside the agent, not in the runtime's retry loop.
  let bDone = false;
  const b = node.cni('ADD', { containerId: 'b', netns: await node.pod('b') }).finally(() => (bDone = true));
  await new Promise((r) => setTimeout(r, 1000));
  t.false(bDone, 'held, not answered "try again"');
  const more = ipRange('10.40.4.10', 2);
  await node.fabric.setNicIPs('vm1', more);
  await writeFile(node.recordPath, JSON.stringify({ record: makeRecord(node.vm, '10.40.4.0/22', more, ['10.40.0.0/16']), pool: DEFAULT_POOL }));
  const held = await b;
  t.is(held.code, 0, held.stderr);
  t.is(JSON.parse(held.stdout).ips[0].address, `${more[1]}/22`, 'wired with the IP that arrived');

  const c = node.cni('ADD', { containerId: 'c', netns: await node.pod('c') });
  await new Promise((r) => setTimeout(r, 500));
  const closing = Date.now();
  await node.agent!.close();
  const answered = await c;
  t.is(JSON.parse(answered.stdout).code, 11, answered.stdout);
  t.true(Date.now() - closing < 10_000, 'shutdown did not wait out the hold');
});
