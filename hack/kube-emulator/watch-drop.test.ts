// Dropped watches while events are being produced: the process hosting the emulator survives (a write
// to an ended stream used to throw ERR_STREAM_WRITE_AFTER_END as an uncaught 'error'), and clients
// re-list and re-watch.
import test from 'ava';
import * as k8s from '@kubernetes/client-node';
import { call, openWatch, withEmulator, until } from './testing/index.js';

const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } });

test('events produced right after dropWatches reach no ended stream and throw nothing', async (t) => {
  const emu = await withEmulator(t, { bookmarkIntervalMs: 5 });
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => { uncaught.push(e); };
  process.on('uncaughtException', onUncaught);
  t.teardown(() => { process.off('uncaughtException', onUncaught); });
  for (let round = 0; round < 5; round++) {
    const watches = [0, 1, 2].map(() => openWatch(emu, '/api/v1/nodes?watch=true&allowWatchBookmarks=true'));
    // the watch is registered once its first event (ADDED of what exists, or a bookmark) arrives
    await emu.api.create(emu.api.type('', 'v1', 'nodes'), '', node(`r${round}-first`), {});
    for (const w of watches) await w.next(1);
    emu.dropWatches();
    // in the same tick, before the streams' 'close' events: the store still fans out to them
    for (let i = 0; i < 20; i++) emu.api.create(emu.api.type('', 'v1', 'nodes'), '', node(`r${round}-n${i}`), {});
    t.true(await until(() => watches.every((w) => w.ended)), 'every dropped watch ends on the client');
    // bookmarks, timers and events have had time to hit an ended stream
    await new Promise((r) => setTimeout(r, 50));
  }
  t.deepEqual(uncaught.map(String), [], 'no write to an ended stream escaped');
  const r = await call(emu, 'GET', '/api/v1/nodes');
  t.is(r.status, 200, 'the emulator still answers');
  t.is(r.json.items.length, 5 * 21);
});

test('an informer re-lists and re-watches across repeated drops while objects are written', async (t) => {
  const emu = await withEmulator(t);
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => { uncaught.push(e); };
  process.on('uncaughtException', onUncaught);
  t.teardown(() => { process.off('uncaughtException', onUncaught); });
  const kc = emu.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const inf = k8s.makeInformer(kc, '/api/v1/nodes', () => core.listNode());
  let stopped = false;
  // client-node's informer stops on an error (a 410 among them); a controller restarts it, so do we
  inf.on('error', () => { setTimeout(() => { if (!stopped) void inf.start().catch(() => undefined); }, 50); });
  await inf.start();
  t.teardown(async () => { stopped = true; await inf.stop(); });
  const nodes = emu.api.type('', 'v1', 'nodes');
  let written = 0;
  const writer = setInterval(() => { emu.api.create(nodes, '', node(`w${written++}`), {}); }, 2);
  try {
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 15));
      emu.dropWatches();
      if (i % 5 === 4) emu.store.compact(emu.store.currentRV()); // the next watch from the cache's version is 410 Gone
    }
  } finally {
    clearInterval(writer);
  }
  t.true(await until(() => inf.list().length === written), `the informer caught up: ${inf.list().length} of ${written}`);
  t.deepEqual(uncaught.map(String), []);
});

test('restart(downMs): watches end, requests are 503 for the outage, old resourceVersions are 410 Gone after it', async (t) => {
  const emu = await withEmulator(t);
  const before = await call(emu, 'GET', '/api/v1/nodes');
  const w = openWatch(emu, `/api/v1/nodes?watch=true&resourceVersion=${before.json.metadata.resourceVersion}`);
  await emu.api.create(emu.api.type('', 'v1', 'nodes'), '', node('a'), {});
  await w.next(1);
  emu.restart(2000);
  t.true(await until(() => w.ended), 'the watch ended');
  const down = await call(emu, 'GET', '/api/v1/nodes');
  t.is(down.status, 503);
  t.is(down.json.reason, 'ServiceUnavailable');
  await new Promise((r) => setTimeout(r, 2100));
  const up = await call(emu, 'GET', '/api/v1/nodes');
  t.is(up.status, 200, 'back after downMs');
  const old = openWatch(emu, `/api/v1/nodes?watch=true&resourceVersion=${before.json.metadata.resourceVersion}`);
  const ev = await old.next(1);
  t.is(ev[0].type, 'ERROR');
  t.is(ev[0].object.code, 410);
});

test('a fault with forMs fails every matching request until it expires', async (t) => {
  const emu = await withEmulator(t);
  emu.injectFault({ path: '/api/v1/nodes', code: 429, retryAfterSeconds: 1, forMs: 2000 });
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 429);
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 429, 'not used up by one request');
  t.is((await call(emu, 'GET', '/api/v1/namespaces')).status, 200, 'other paths are served');
  await new Promise((r) => setTimeout(r, 2100));
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 200);
});
