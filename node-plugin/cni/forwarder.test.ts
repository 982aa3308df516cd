import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FORWARDER, buildForwarder, invokePlugin } from '../agent/testing.js';
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
