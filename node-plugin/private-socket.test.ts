import test from 'ava';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenPrivateSocket } from './private-socket.js';

test('the socket is 0600 the moment it exists, replaces a stale file, and the umask is left as it was', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'podvnet-sock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'sub', 'agent.sock');
  const before = process.umask();
  // Watch the mode from inside bind's own tick: the listening callback runs before our chmod.
  let modeAtListen = -1;
  const server: Server = createServer();
  server.once('listening', () => { modeAtListen = statSync(socketPath).mode & 0o777; });
  t.teardown(() => { if (server.listening) server.close(); });
  await listenPrivateSocket(server, socketPath);
  t.is(modeAtListen, 0o600);
  t.is(statSync(socketPath).mode & 0o777, 0o600);
  t.is(process.umask(), before);

  const again: Server = createServer();
  t.teardown(() => new Promise<void>((r) => again.close(() => r())));
  await new Promise<void>((r) => server.close(() => r()));
  writeFileSync(socketPath, 'left by a killed agent');
  await listenPrivateSocket(again, socketPath);
  t.true(statSync(socketPath).isSocket(), 'a socket file left behind is replaced');
});
