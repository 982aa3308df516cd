// Dropped watches while events are being produced: the process hosting the emulator survives (a write
// to an ended stream used to throw ERR_STREAM_WRITE_AFTER_END as an uncaught 'error'), and clients
// re-list and re-watch.
import test from 'ava';
import * as k8s from '@kubernetes/client-node';
import { call, openWatch, withEmulator } from './testing.js';

const until = async (cond: () => boolean, ms = 10_000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
};

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
