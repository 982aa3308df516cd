import test from 'ava';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FORWARDER, buildForwarder, invokePlugin } from '../agent/testing/test-node.js';
import { decodeRequest } from '../agent/cni-socket.js';

/**
 * The C forwarder against socket servers that misbehave or record what they got: what the executable
 * sends (only CNI_* variables, stdin intact) and how it fails (always spec JSON, code 11).
 */

async function server(t: { teardown(fn: () => Promise<void>): void }, onRequest: (conn: net.Socket, body: Buffer) => void): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-fwd-'));
  const sock = path.join(dir, 's.sock');
  const srv = net.createServer({ allowHalfOpen: true }, (conn) => {
    const chunks: Buffer[] = [];
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('end', () => onRequest(conn, Buffer.concat(chunks)));
    conn.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(sock, r));
  t.teardown(async () => {
    await new Promise<void>((r) => srv.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });
  return sock;
}

const addEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b' };

test.before(() => buildForwarder());

test('sends only CNI_* variables and stdin byte for byte; prints the answer and exits with its code', async (t) => {
  let got: ReturnType<typeof decodeRequest> | undefined;
  const sock = await server(t, (conn, body) => {
    got = decodeRequest(body);
    conn.end('3\n{"cniVersion":"1.0.0","code":7,"msg":"x"}');
  });
  const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'podvnet-cni', agentSocket: sock, big: 'é'.repeat(200_000) });
  const r = await invokePlugin(FORWARDER, addEnv, stdin, { SECRET_TOKEN: 'do-not-forward' });
  t.is(r.code, 3);
  t.is(r.stdout, '{"cniVersion":"1.0.0","code":7,"msg":"x"}');
  t.deepEqual(got?.env, addEnv);
  t.is(got?.stdin, stdin);
});

test('an agent that hangs up without answering, or answers garbage, is "try again later" (11)', async (t) => {
  const hangup = await server(t, (conn) => conn.destroy());
  const garbage = await server(t, (conn) => conn.end('not-a-number\n{}'));
  for (const sock of [hangup, garbage]) {
    const r = await invokePlugin(FORWARDER, addEnv, JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 't', agentSocket: sock }));
    t.is(r.code, 1);
    t.is(r.json.code, 11);
    t.is(r.json.cniVersion, '0.4.0');
    t.regex(r.json.msg, /try again later/);
  }
});

test('socket path precedence: agentSocket in the configuration, then PODVNET_AGENT_SOCKET', async (t) => {
  const hits: string[] = [];
  const a = await server(t, (conn) => { hits.push('conf'); conn.end('0\n'); });
  const b = await server(t, (conn) => { hits.push('env'); conn.end('0\n'); });
  await invokePlugin(FORWARDER, addEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', agentSocket: a }), { PODVNET_AGENT_SOCKET: b });
  await invokePlugin(FORWARDER, addEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't' }), { PODVNET_AGENT_SOCKET: b });
  t.deepEqual(hits, ['conf', 'env']);
});

const delEnv = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1/odd id', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b' };

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-fwdq-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('DEL with the agent unreachable is queued durably (the wire format, in delQueueDir) and succeeds with no output', async (t) => {
  const dir = await scratch(t);
  const queue = path.join(dir, 'deep/del-queue');
  const hangup = await server(t, (conn) => conn.destroy());
  for (const [i, agentSocket] of [path.join(dir, 'no-agent.sock'), hangup].entries()) {
    const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'podvnet-cni', agentSocket, delQueueDir: queue, n: i });
    const r = await invokePlugin(FORWARDER, delEnv, stdin, { SECRET_TOKEN: 'do-not-forward' });
    t.is(r.code, 0, r.stdout + r.stderr);
    t.is(r.stdout, '', 'DEL prints nothing on success');
    t.regex(r.stderr, /DEL queued in/);
    const files = (await readdir(queue)).sort();
    t.is(files.length, i + 1, files.join(' '));
    t.regex(files[i]!, /^\d+\.\d{9}-\d+-c1_odd_id\.del$/, 'named by time, pid and container; no temporary file left');
    const queued = decodeRequest(await readFile(path.join(queue, files[i]!)));
    t.deepEqual(queued.env, delEnv);
    t.is(queued.stdin, stdin);
  }
  t.is((await stat(queue)).mode & 0o777, 0o700);
});

test('queue directory precedence: delQueueDir in the configuration, then PODVNET_DEL_QUEUE_DIR', async (t) => {
  const dir = await scratch(t);
  const conf = { cniVersion: '1.1.0', name: 'n', type: 't', agentSocket: path.join(dir, 'none.sock') };
  const fromConf = path.join(dir, 'conf-q');
  const fromEnv = path.join(dir, 'env-q');
  t.is((await invokePlugin(FORWARDER, delEnv, JSON.stringify({ ...conf, delQueueDir: fromConf }), { PODVNET_DEL_QUEUE_DIR: fromEnv })).code, 0);
  t.is((await invokePlugin(FORWARDER, delEnv, JSON.stringify(conf), { PODVNET_DEL_QUEUE_DIR: fromEnv })).code, 0);
  t.is((await readdir(fromConf)).length, 1);
  t.is((await readdir(fromEnv)).length, 1);
});

test('only DEL is queued: ADD, CHECK, GC and STATUS stay "try again later" (11); VERSION stays local', async (t) => {
  const dir = await scratch(t);
  const queue = path.join(dir, 'q');
  const conf = { cniVersion: '1.1.0', name: 'n', type: 't', agentSocket: path.join(dir, 'none.sock'), delQueueDir: queue };
  for (const command of ['ADD', 'CHECK', 'GC', 'STATUS']) {
    const r = await invokePlugin(FORWARDER, { ...addEnv, CNI_COMMAND: command }, JSON.stringify(conf));
    t.is(r.code, 1, command);
    t.is(r.json.code, 11, command);
  }
  const v = await invokePlugin(FORWARDER, { CNI_COMMAND: 'VERSION' }, JSON.stringify(conf));
  t.is(v.code, 0);
  t.truthy(v.json.supportedVersions);
  await t.throwsAsync(readdir(queue), { code: 'ENOENT' }, 'nothing was queued');
});

test('a DEL the agent answers (even with an error or garbage) is not queued; a DEL that cannot be queued is 11 saying why', async (t) => {
  const dir = await scratch(t);
  const queue = path.join(dir, 'q');
  const failing = await server(t, (conn) => conn.end('1\n{"cniVersion":"1.0.0","code":101,"msg":"boom"}'));
  const garbage = await server(t, (conn) => conn.end('nope\n'));
  const r1 = await invokePlugin(FORWARDER, delEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', agentSocket: failing, delQueueDir: queue }));
  t.is(r1.json.code, 101);
  const r2 = await invokePlugin(FORWARDER, delEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', agentSocket: garbage, delQueueDir: queue }));
  t.is(r2.json.code, 11);
  await t.throwsAsync(readdir(queue), { code: 'ENOENT' });

  const blocker = path.join(dir, 'a-file');
  await writeFile(blocker, 'x');
  const r3 = await invokePlugin(FORWARDER, delEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', agentSocket: path.join(dir, 'none.sock'), delQueueDir: path.join(blocker, 'q') }));
  t.is(r3.code, 1);
  t.is(r3.json.code, 11);
  t.regex(r3.json.msg, /queueing the DEL in .*a-file\/q failed: Not a directory/);
  const r4 = await invokePlugin(FORWARDER, delEnv, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', agentSocket: path.join(dir, 'none.sock'), delQueueDir: 'relative/q' }));
  t.is(r4.json.code, 11);
  t.regex(r4.json.msg, /queueing the DEL in relative\/q failed: Invalid argument/);
});
