// @kubernetes/client-node against the emulator: typed clients, custom objects, informers (including
// the relist after 410 Gone), leader-election style lease updates, and errors as client-node sees them.
import test from 'ava';
import * as k8s from '@kubernetes/client-node';
import { call, withWidgets, widget, W, until } from './testing/index.js';

test('informer on nodes: add, update, delete, and relist after 410 Gone', async (t) => {
  const emu = await withWidgets(t);
  const kc = emu.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'pre' } } });
  let lists = 0;
  const inf = k8s.makeInformer(kc, '/api/v1/nodes', () => { lists++; return core.listNode(); });
  const seen: string[] = [];
  inf.on('add', (n) => seen.push(`add:${n.metadata!.name}`));
  inf.on('update', (n) => seen.push(`update:${n.metadata!.name}:${n.metadata!.labels?.v ?? ''}`));
  inf.on('delete', (n) => seen.push(`delete:${n.metadata!.name}`));
  const errors: unknown[] = [];
  inf.on('error', (e) => errors.push(e));
  await inf.start();
  t.teardown(() => inf.stop());
  t.true(await until(() => seen.includes('add:pre')));
  await core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } } });
  await core.patchNode({ name: 'n1', body: { metadata: { labels: { v: '2' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  await core.deleteNode({ name: 'n1' });
  t.true(await until(() => seen.includes('delete:n1')), seen.join());
  t.deepEqual(seen, ['add:pre', 'add:n1', 'update:n1:2', 'delete:n1']);
  t.is(inf.list().length, 1);
  t.is(lists, 1);

  // the informer's resourceVersion falls behind compacted history while other resources change
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'bump' } } });
  emu.store.compact(emu.store.currentRV());
  emu.dropWatches();
  t.true(await until(() => lists === 2), 'relisted after 410');
  await core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'after' } } });
  t.true(await until(() => seen.includes('add:after')));
  t.deepEqual(inf.list().map((n) => n.metadata!.name).sort(), ['after', 'pre']);
  t.deepEqual(errors, []);
});

test('informer on a custom resource with a label selector; status updates through the status subresource', async (t) => {
  const emu = await withWidgets(t);
  const kc = emu.kubeConfig();
  const co = kc.makeApiClient(k8s.CustomObjectsApi);
  const inf = k8s.makeInformer(kc, '/apis/test.podvnet.io/v1/widgets',
    () => co.listClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', labelSelector: 'team=a' }) as any, 'team=a');
  const names: string[] = [];
  inf.on('add', (o: any) => names.push(`add:${o.metadata.name}`));
  inf.on('update', (o: any) => names.push(`update:${o.metadata.name}:${o.status?.observedGeneration ?? '-'}`));
  inf.on('delete', (o: any) => names.push(`delete:${o.metadata.name}`));
  await inf.start();
  t.teardown(() => inf.stop());
  await co.createClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', body: widget('a1', {}, { labels: { team: 'a' } }) });
  await co.createClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', body: widget('b1', {}, { labels: { team: 'b' } }) });
  const got: any = await co.getClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', name: 'a1' });
  await co.replaceClusterCustomObjectStatus({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', name: 'a1', body: { ...got, status: { observedGeneration: 1 } } });
  await co.patchClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', name: 'a1', body: { metadata: { labels: { team: 'b' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  t.true(await until(() => names.includes('delete:a1')), names.join());
  t.deepEqual(names, ['add:a1', 'update:a1:1', 'delete:a1']);
});

test('client-node errors carry the Status: 409 conflict and 422 invalid', async (t) => {
  const emu = await withWidgets(t);
  const kc = emu.kubeConfig();
  const co = kc.makeApiClient(k8s.CustomObjectsApi);
  const created: any = await co.createClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', body: widget('e1') });
  await co.replaceClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', name: 'e1', body: { ...created, spec: { ...created.spec, size: 4 } } });
  const stale = await t.throwsAsync(co.replaceClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', name: 'e1', body: { ...created, spec: { ...created.spec, size: 5 } } }));
  t.is((stale as any).code, 409);
  t.is(JSON.parse((stale as any).body).reason, 'Conflict');
  const bad = await t.throwsAsync(co.createClusterCustomObject({ group: 'test.podvnet.io', version: 'v1', plural: 'widgets', body: widget('e2', { size: 0 }) }));
  t.is((bad as any).code, 422);
  t.is(JSON.parse((bad as any).body).details.causes[0].field, 'spec.size');
  t.is((await call(emu, 'GET', `${W}/e2`)).status, 404);
});

test('leases for leader election: create, renew with resourceVersion, events.k8s.io events', async (t) => {
  const emu = await withWidgets(t);
  const kc = emu.kubeConfig();
  const co = kc.makeApiClient(k8s.CoordinationV1Api);
  const l = await co.createNamespacedLease({ namespace: 'kube-system', body: { metadata: { name: 'podvnet' }, spec: { holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() } } });
  l.spec!.renewTime = new k8s.V1MicroTime();
  const r = await co.replaceNamespacedLease({ name: 'podvnet', namespace: 'kube-system', body: l });
  t.true(Number(r.metadata!.resourceVersion) > Number(l.metadata!.resourceVersion));
  t.is(r.spec!.holderIdentity, 'me');
  const ev = kc.makeApiClient(k8s.EventsV1Api);
  await ev.createNamespacedEvent({ namespace: 'default', body: { metadata: { generateName: 'x.' }, eventTime: new k8s.V1MicroTime(), reason: 'Elected', note: 'took the lease', type: 'Normal', action: 'Lead', reportingController: 'podvnet', reportingInstance: 'me', regarding: { kind: 'Lease', name: 'podvnet', namespace: 'kube-system' } } });
  const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: 'default', fieldSelector: 'reason=Elected' });
  t.is(list.items.length, 1);
  t.is(list.items[0]!.message, 'took the lease');
});
