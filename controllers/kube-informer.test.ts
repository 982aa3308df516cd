// The controller's informers: start() resolves only once a list has filled the cache. A controller
// restarted while the API server answers 429 used to start on empty caches, take every record for one
// whose pool was gone, and give all of its node's IPs back while pods held them (the soak's seed 9).
import test from 'ava';
import { KubeClient } from './kube.js';
import { withEmulator } from '../hack/kube-emulator/testing/index.js';

const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } });

test('informer start() waits for a successful list when the first ones fail, and the cache then holds every object', async (t) => {
  const emu = await withEmulator(t);
  for (const n of ['a', 'b', 'c']) await emu.api.create(emu.api.type('', 'v1', 'nodes'), '', node(n), {});
  const client = new KubeClient(emu.kubeConfig(), 4);
  const errors: unknown[] = [];
  const outageMs = 1500;
  emu.injectFault({ method: 'GET', path: '/api/v1/nodes', code: 429, message: 'Too many requests, please try again later.', forMs: outageMs });
  const began = Date.now();
  const inf = client.informer('/api/v1/nodes', (e) => errors.push(e));
  t.teardown(() => inf.stop());
  await inf.start();
  const waited = Date.now() - began;
  t.true(errors.length >= 1, 'the first list failed (429) and was reported');
  t.true(waited >= outageMs - 100, `start() resolved after ${waited} ms, before the ${outageMs} ms outage ended`);
  t.deepEqual(inf.informer.list().map((o) => o.metadata?.name).sort(), ['a', 'b', 'c'], 'the cache holds every node once start() resolves');
});

test('informer start() resolves after stop() even if no list ever succeeded', async (t) => {
  const emu = await withEmulator(t);
  emu.injectFault({ method: 'GET', path: '/api/v1/nodes', code: 503, forMs: 60_000 });
  const inf = new KubeClient(emu.kubeConfig(), 4).informer('/api/v1/nodes');
  const started = inf.start();
  await new Promise((r) => setTimeout(r, 300));
  await inf.stop();
  await started;
  t.pass('start() returned once the informer was stopped');
});
