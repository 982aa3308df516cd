// Protocol-level behaviour of the emulator, through HTTPS like a client would see it.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, openWatch, withEmulator, withWidgets, W, widget } from './testing/index.js';
import { startKubeEmulator } from './index.js';

const NODES = '/api/v1/nodes';
const node = (name: string, labels: Record<string, string> = {}): any => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels } });

test('discovery: /api, /apis, resource lists, version and the CRD group once established', async (t) => {
  const emu = await withWidgets(t);
  const api = await call(emu, 'GET', '/api');
  t.deepEqual(api.json.versions, ['v1']);
  const core = await call(emu, 'GET', '/api/v1');
  const names = core.json.resources.map((r: any) => r.name);
  for (const n of ['nodes', 'nodes/status', 'namespaces', 'configmaps', 'events', 'secrets', 'serviceaccounts', 'services']) t.true(names.includes(n), n);
  const groups = await call(emu, 'GET', '/apis');
  const gnames = groups.json.groups.map((g: any) => g.name);
  for (const g of ['apps', 'coordination.k8s.io', 'events.k8s.io', 'apiextensions.k8s.io', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io', 'test.podvnet.io']) t.true(gnames.includes(g), g);
  const wl = await call(emu, 'GET', '/apis/test.podvnet.io/v1');
  const w = wl.json.resources.find((r: any) => r.name === 'widgets');
  t.like(w, { kind: 'Widget', namespaced: false, singularName: 'widget', shortNames: ['wdg'] });
  t.truthy(wl.json.resources.find((r: any) => r.name === 'widgets/status'));
  const v = await call(emu, 'GET', '/version', undefined, {}, '');
  t.is(v.json.major, '1');
  const agg = await call(emu, 'GET', '/apis', undefined, { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
  t.is(agg.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
  t.is(agg.json.kind, 'APIGroupDiscoveryList');
  const tg = agg.json.items.find((i: any) => i.metadata.name === 'test.podvnet.io');
  t.like(tg.versions[0].resources[0], { resource: 'widgets', scope: 'Cluster', singularResource: 'widget', responseKind: { group: 'test.podvnet.io', version: 'v1', kind: 'Widget' }, shortNames: ['wdg'] });
  t.deepEqual(tg.versions[0].resources[0].subresources.map((r: any) => r.subresource), ['status']);
  const aggCore = await call(emu, 'GET', '/api', undefined, { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList' });
  t.deepEqual(aggCore.json.items.map((i: any) => i.metadata.name), ['']);
  const oa = await call(emu, 'GET', '/openapi/v3');
  t.truthy(oa.json.paths['apis/test.podvnet.io/v1'].serverRelativeURL);
});

test('token authentication: missing or wrong bearer token is 401 Unauthorized', async (t) => {
  const emu = await withEmulator(t, { token: 'sekret' });
  const none = await call(emu, 'GET', '/api/v1/nodes', undefined, {}, '');
  t.is(none.status, 401);
  t.like(none.json, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
  t.is((await call(emu, 'GET', '/api/v1/nodes', undefined, {}, 'wrong')).status, 401);
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 200);
});

test('CRUD on nodes with a cluster-wide increasing resourceVersion; 404/409 Status shapes', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const a = await call(emu, 'POST', NODES, node('a'));
  t.is(a.status, 201);
  t.truthy(a.json.metadata.uid);
  t.truthy(a.json.metadata.creationTimestamp);
  const cm = await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } });
  t.true(Number(cm.json.metadata.resourceVersion) > Number(a.json.metadata.resourceVersion), 'RV is shared across resources');
  const dup = await call(emu, 'POST', NODES, node('a'));
  t.is(dup.status, 409);
  t.like(dup.json, { reason: 'AlreadyExists', message: 'nodes "a" already exists', details: { name: 'a', kind: 'nodes' }, code: 409 });
  const missing = await call(emu, 'GET', `${NODES}/zz`);
  t.like(missing.json, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', message: 'nodes "zz" not found', code: 404 });
  const put = await call(emu, 'PUT', `${NODES}/a`, { ...a.json, metadata: { ...a.json.metadata, labels: { x: 'y' } } });
  t.is(put.status, 200);
  t.true(Number(put.json.metadata.resourceVersion) > Number(cm.json.metadata.resourceVersion));
  const stale = await call(emu, 'PUT', `${NODES}/a`, { ...a.json, metadata: { ...a.json.metadata, labels: { x: 'z' } } });
  t.is(stale.status, 409);
  t.like(stale.json, { reason: 'Conflict', message: 'Operation cannot be fulfilled on nodes "a": the object has been modified; please apply your changes to the latest version and try again' });
  const del = await call(emu, 'DELETE', `${NODES}/a`);
  t.is(del.status, 200);
  t.like(del.json, { kind: 'Status', status: 'Success', details: { name: 'a', kind: 'nodes' } });
  t.is((await call(emu, 'GET', `${NODES}/a`)).status, 404);
  const wrongNs = await call(emu, 'POST', '/api/v1/namespaces/nope/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } });
  t.like(wrongNs.json, { code: 404, message: 'namespaces "nope" not found' });
  const gen = await call(emu, 'POST', NODES, { apiVersion: 'v1', kind: 'Node', metadata: { generateName: 'gen-' } });
  t.regex(gen.json.metadata.name, /^gen-[a-z0-9]{5}$/);
  const withRV = await call(emu, 'POST', NODES, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'rv', resourceVersion: '5' } });
  t.is(withRV.status, 500);
  t.is(withRV.json.message, 'Internal error occurred: resourceVersion should not be set on objects to be created');
  const list = await call(emu, 'GET', NODES);
  t.is(list.json.kind, 'NodeList');
  t.is(list.json.items[0].kind, undefined, 'typed lists carry no kind in items');
  const noName = await call(emu, 'POST', NODES, { apiVersion: 'v1', kind: 'Node', metadata: {} });
  t.is(noName.status, 422);
  t.is(noName.json.details.causes[0].field, 'metadata.name');
});

test('custom resources: PUT without resourceVersion is 422; no-op update keeps the resourceVersion', async (t) => {
  const emu = await withWidgets(t);
  const w = (await call(emu, 'POST', W, widget('w1'))).json;
  const { resourceVersion: _rv, ...metaNoRV } = w.metadata;
  const r = await call(emu, 'PUT', `${W}/w1`, { ...w, metadata: metaNoRV });
  t.is(r.status, 422);
  t.is(r.json.message, 'Widget.test.podvnet.io "w1" is invalid: metadata.resourceVersion: Invalid value: "0x0": must be specified for an update');
  const same = await call(emu, 'PUT', `${W}/w1`, w);
  t.is(same.json.metadata.resourceVersion, w.metadata.resourceVersion);
  const list = await call(emu, 'GET', W);
  t.like(list.json, { kind: 'WidgetList', apiVersion: 'test.podvnet.io/v1' });
  t.like(list.json.items[0], { kind: 'Widget', apiVersion: 'test.podvnet.io/v1' }, 'custom resource lists keep kind in items');
});

test('schema: defaults, pruning with a warning, strict field validation, and Kubernetes-shaped 422 errors', async (t) => {
  const emu = await withWidgets(t);
  const created = await call(emu, 'POST', W, { ...widget('d'), spec: { size: 2, owner: 'bob', bogus: 1 }, junk: true });
  t.is(created.status, 201);
  t.deepEqual(created.json.spec, { size: 2, owner: 'bob', mode: 'slow', min: 0, max: 5 });
  t.is(created.json.junk, undefined);
  const warning = String(created.headers.warning);
  t.true(warning.includes('299 - "unknown field \\"junk\\""'), warning);
  t.true(warning.includes('299 - "unknown field \\"spec.bogus\\""'), warning);
  const strict = await call(emu, 'POST', `${W}?fieldValidation=Strict`, { ...widget('s'), spec: { size: 2, owner: 'bob', foo: 1 } });
  t.is(strict.status, 400);
  t.is(strict.json.reason, 'BadRequest');
  t.is(strict.json.message, 'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.foo"');
  const bad = await call(emu, 'POST', W, { ...widget('b'), spec: { size: 11, owner: 'Bob1', mode: 'medium', tags: ['t-a', 'x', 't-c', 't-d'] } });
  t.is(bad.status, 422);
  t.like(bad.json, { kind: 'Status', reason: 'Invalid', code: 422, details: { name: 'b', group: 'test.podvnet.io', kind: 'Widget' } });
  const causes = bad.json.details.causes;
  const byField = (f: string) => causes.filter((c: any) => c.field === f);
  t.deepEqual(byField('spec.size')[0], { reason: 'FieldValueInvalid', message: 'Invalid value: 11: spec.size in body should be less than or equal to 10', field: 'spec.size' });
  t.deepEqual(byField('spec.mode')[0], { reason: 'FieldValueNotSupported', message: 'Unsupported value: "medium": supported values: "fast", "slow"', field: 'spec.mode' });
  t.is(byField('spec.owner')[0].message, "Invalid value: \"Bob1\": spec.owner in body should match '^[a-z]+$'");
  t.is(byField('spec.tags')[0].reason, 'FieldValueTooMany');
  t.is(byField('spec.tags[1]')[0].message, 'Invalid value: "string": tags start with t-');
  t.true(bad.json.message.startsWith('Widget.test.podvnet.io "b" is invalid: ['));
  const missing = await call(emu, 'POST', W, { ...widget('m'), spec: { size: 'big' } });
  t.deepEqual(missing.json.details.causes.map((c: any) => `${c.field}: ${c.message}`).sort(), [
    'spec.owner: Required value',
    'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
  ]);
});

test('CEL: object rules and transition rules (oldSelf) with the API server message shape', async (t) => {
  const emu = await withWidgets(t);
  const r = await call(emu, 'POST', W, widget('c', { min: 7, max: 2 }));
  t.is(r.status, 422);
  t.is(r.json.message, 'Widget.test.podvnet.io "c" is invalid: spec: Invalid value: "object": min must not exceed max');
  t.deepEqual(r.json.details.causes, [{ reason: 'FieldValueInvalid', message: 'Invalid value: "object": min must not exceed max', field: 'spec' }]);
  const ok = await call(emu, 'POST', W, widget('c'));
  t.is(ok.status, 201);
  const change = await call(emu, 'PATCH', `${W}/c`, { spec: { owner: 'zed' } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(change.status, 422);
  t.is(change.json.message, 'Widget.test.podvnet.io "c" is invalid: spec: Invalid value: "object": owner is immutable');
});

test('status subresource: spec writes ignore status, status writes ignore spec; generation only on spec changes', async (t) => {
  const emu = await withWidgets(t);
  const c = await call(emu, 'POST', W, { ...widget('g'), status: { observedGeneration: 9 } });
  t.is(c.json.metadata.generation, 1);
  t.is(c.json.status, undefined, 'status dropped on create');
  const st = await call(emu, 'PUT', `${W}/g/status`, { ...c.json, spec: { ...c.json.spec, size: 9 }, status: { observedGeneration: 1 } });
  t.is(st.status, 200);
  t.is(st.json.spec.size, 3, 'spec change through /status ignored');
  t.deepEqual(st.json.status, { observedGeneration: 1 });
  t.is(st.json.metadata.generation, 1, 'status write does not bump generation');
  const sp = await call(emu, 'PUT', `${W}/g`, { ...st.json, spec: { ...st.json.spec, size: 4 }, status: { observedGeneration: 77 } });
  t.is(sp.json.spec.size, 4);
  t.deepEqual(sp.json.status, { observedGeneration: 1 }, 'status change through main resource ignored');
  t.is(sp.json.metadata.generation, 2);
  const lab = await call(emu, 'PATCH', `${W}/g`, { metadata: { labels: { a: 'b' } } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(lab.json.metadata.generation, 2, 'metadata change does not bump generation');
  const stPatch = await call(emu, 'PATCH', `${W}/g/status`, { status: { conditions: [{ type: 'Ready', status: 'Maybe' }] } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(stPatch.status, 422, 'status is validated against the schema');
  t.is(stPatch.json.details.causes[0].field, 'status.conditions[0].status');
});

test('finalizers: delete sets deletionTimestamp, no new finalizers, removal of the last one deletes', async (t) => {
  const emu = await withWidgets(t);
  await call(emu, 'POST', W, widget('f', {}, { finalizers: ['test/a'] }));
  const w = openWatch(emu, `${W}?watch=true&fieldSelector=metadata.name%3Df&resourceVersion=${emu.store.currentRV()}`);
  const d = await call(emu, 'DELETE', `${W}/f`);
  t.is(d.status, 200);
  t.truthy(d.json.metadata.deletionTimestamp);
  t.is(d.json.metadata.deletionGracePeriodSeconds, 0);
  t.is(d.json.metadata.generation, 2, 'marking for deletion bumps the generation');
  const again = await call(emu, 'DELETE', `${W}/f`);
  t.is(again.json.metadata.generation, 2, 'a second delete changes nothing');
  t.truthy((await call(emu, 'GET', `${W}/f`)).json.metadata.deletionTimestamp);
  const add = await call(emu, 'PATCH', `${W}/f`, { metadata: { finalizers: ['test/a', 'test/b'] } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(add.status, 422);
  t.is(add.json.details.causes[0].reason, 'FieldValueForbidden');
  const rm = await call(emu, 'PATCH', `${W}/f`, { metadata: { finalizers: null } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(rm.status, 200);
  t.is((await call(emu, 'GET', `${W}/f`)).status, 404);
  const ev = await w.next(2);
  t.deepEqual(ev.map((e) => e.type), ['MODIFIED', 'DELETED']);
  w.close();
});

test('garbage collection: background, foreground and orphan propagation by ownerReferences', async (t) => {
  const emu = await withWidgets(t);
  const owner = (await call(emu, 'POST', W, widget('owner'))).json;
  const ref: any[] = [{ apiVersion: 'test.podvnet.io/v1', kind: 'Widget', name: 'owner', uid: owner.metadata.uid, blockOwnerDeletion: true }];
  const cm = (name: string, r: any[] = ref) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ownerReferences: r } });
  await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', cm('dep1'));
  await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', cm('dep2'));
  await call(emu, 'DELETE', `${W}/owner`);
  const gone = async (p: string) => { for (let i = 0; i < 50; i++) { if ((await call(emu, 'GET', p)).status === 404) return true; await new Promise((r) => setTimeout(r, 20)); } return false; };
  t.true(await gone('/api/v1/namespaces/default/configmaps/dep1'));
  t.true(await gone('/api/v1/namespaces/default/configmaps/dep2'));

  const o2 = (await call(emu, 'POST', W, widget('o2'))).json;
  const ref2 = [{ ...ref[0], name: 'o2', uid: o2.metadata.uid }];
  await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', { ...cm('fg', ref2), metadata: { name: 'fg', ownerReferences: ref2, finalizers: ['hold'] } });
  const del = await call(emu, 'DELETE', `${W}/o2`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' });
  t.is(del.status, 200, del.text);
  t.true(del.json.metadata.finalizers.includes('foregroundDeletion'));
  await new Promise((r) => setTimeout(r, 50));
  t.is((await call(emu, 'GET', `${W}/o2`)).status, 200, 'owner waits for the blocking dependent');
  t.truthy((await call(emu, 'GET', '/api/v1/namespaces/default/configmaps/fg')).json.metadata.deletionTimestamp);
  await call(emu, 'PATCH', '/api/v1/namespaces/default/configmaps/fg', { metadata: { finalizers: null } }, { 'Content-Type': 'application/merge-patch+json' });
  t.true(await gone(`${W}/o2`));

  const o3 = (await call(emu, 'POST', W, widget('o3'))).json;
  const ref3 = [{ ...ref[0], name: 'o3', uid: o3.metadata.uid }];
  await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', cm('orph', ref3));
  await call(emu, 'DELETE', `${W}/o3?propagationPolicy=Orphan`);
  t.true(await gone(`${W}/o3`));
  const orph = await call(emu, 'GET', '/api/v1/namespaces/default/configmaps/orph');
  t.is(orph.status, 200);
  t.is(orph.json.metadata.ownerReferences, undefined);

  await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', cm('dangling', [{ ...ref[0], name: 'never', uid: '00000000-0000-0000-0000-000000000000' }]));
  t.true(await gone('/api/v1/namespaces/default/configmaps/dangling'), 'dependents of a nonexistent owner are collected');
});

test('label and field selectors; unsupported field label is 400', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', NODES, node('n1', { pool: 'a', zone: '1' }));
  await call(emu, 'POST', NODES, node('n2', { pool: 'b', zone: '1' }));
  await call(emu, 'POST', NODES, node('n3', { zone: '2' }));
  const names = async (q: string) => (await call(emu, 'GET', `${NODES}?${q}`)).json.items.map((n: any) => n.metadata.name);
  t.deepEqual(await names('labelSelector=pool%3Da'), ['n1']);
  t.deepEqual(await names('labelSelector=pool'), ['n1', 'n2']);
  t.deepEqual(await names('labelSelector=!pool'), ['n3']);
  t.deepEqual(await names(`labelSelector=${encodeURIComponent('pool in (a,b),zone!=2')}`), ['n1', 'n2']);
  t.deepEqual(await names(`labelSelector=${encodeURIComponent('pool notin (a)')}`), ['n2', 'n3']);
  t.deepEqual(await names('fieldSelector=metadata.name%3Dn2'), ['n2']);
  t.deepEqual(await names('fieldSelector=metadata.name!%3Dn2'), ['n1', 'n3']);
  t.deepEqual(await names('fieldSelector=spec.unschedulable%3Dfalse'), ['n1', 'n2', 'n3']);
  const bad = await call(emu, 'GET', `${NODES}?fieldSelector=spec.foo%3Dx`);
  t.is(bad.status, 400);
  t.is(bad.json.message, 'field label not supported: spec.foo');
  const badLabel = await call(emu, 'GET', `${NODES}?labelSelector=${encodeURIComponent('a in (')}`);
  t.is(badLabel.status, 400);
});

test('selectableFields of a CRD work as field selectors; other fields are 400', async (t) => {
  const emu = await withWidgets(t, { tls: false });
  await call(emu, 'POST', W, widget('f1', { mode: 'fast' }));
  await call(emu, 'POST', W, widget('s1'));
  const fast = await call(emu, 'GET', `${W}?fieldSelector=spec.mode%3Dfast`);
  t.deepEqual(fast.json.items.map((o: any) => o.metadata.name), ['f1']);
  const slow = await call(emu, 'GET', `${W}?fieldSelector=spec.mode!%3Dfast`);
  t.deepEqual(slow.json.items.map((o: any) => o.metadata.name), ['s1']);
  t.is((await call(emu, 'GET', `${W}?fieldSelector=spec.size%3D3`)).status, 400);
});

test('pagination: limit/continue is consistent at the first page resourceVersion; remainingItemCount', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  for (let i = 0; i < 7; i++) await call(emu, 'POST', NODES, node(`p${i}`));
  const p1 = await call(emu, 'GET', `${NODES}?limit=3`);
  t.deepEqual(p1.json.items.map((n: any) => n.metadata.name), ['p0', 'p1', 'p2']);
  t.is(p1.json.metadata.remainingItemCount, 4);
  t.truthy(p1.json.metadata.continue);
  // changes after the first page do not show up in later pages of the same list
  await call(emu, 'DELETE', `${NODES}/p4`);
  await call(emu, 'POST', NODES, node('p9'));
  const p2 = await call(emu, 'GET', `${NODES}?limit=3&continue=${p1.json.metadata.continue}`);
  t.deepEqual(p2.json.items.map((n: any) => n.metadata.name), ['p3', 'p4', 'p5']);
  t.is(p2.json.metadata.resourceVersion, p1.json.metadata.resourceVersion);
  const p3 = await call(emu, 'GET', `${NODES}?limit=3&continue=${p2.json.metadata.continue}`);
  t.deepEqual(p3.json.items.map((n: any) => n.metadata.name), ['p6']);
  t.is(p3.json.metadata.continue, undefined);
  emu.store.compact(emu.store.currentRV());
  const expired = await call(emu, 'GET', `${NODES}?limit=3&continue=${p1.json.metadata.continue}`);
  t.is(expired.status, 410);
  t.is(expired.json.reason, 'Expired');
});

test('watch: resume from resourceVersion, selector transitions, bookmarks, 410 Gone for compacted versions', async (t) => {
  const emu = await withEmulator(t, { bookmarkIntervalMs: 100 });
  const n1 = (await call(emu, 'POST', NODES, node('w1', { role: 'x' }))).json;
  await call(emu, 'PATCH', `${NODES}/w1`, { metadata: { labels: { role: 'y' } } }, { 'Content-Type': 'application/merge-patch+json' });
  const all = openWatch(emu, `${NODES}?watch=true&resourceVersion=${n1.metadata.resourceVersion}&allowWatchBookmarks=true`);
  const sel = openWatch(emu, `${NODES}?watch=true&labelSelector=role%3Dx&resourceVersion=${n1.metadata.resourceVersion}`);
  await call(emu, 'PATCH', `${NODES}/w1`, { metadata: { labels: { role: 'x' } } }, { 'Content-Type': 'application/merge-patch+json' });
  await call(emu, 'DELETE', `${NODES}/w1`);
  let evs: any[] = [];
  for (let n = 3; evs.length < 3; n++) evs = (await all.next(n)).filter((e) => e.type !== 'BOOKMARK');
  t.deepEqual(evs.map((e) => e.type), ['MODIFIED', 'MODIFIED', 'DELETED']);
  const rvs = evs.map((e) => Number(e.object.metadata.resourceVersion));
  t.true(rvs[0]! < rvs[1]! && rvs[1]! < rvs[2]!);
  const sevs = await sel.next(3);
  t.deepEqual(sevs.map((e) => e.type), ['DELETED', 'ADDED', 'DELETED'], 'leaving and re-entering the selector');
  for (let n = all.events.length + 1; !all.events.some((e) => e.type === 'BOOKMARK' && Number(e.object.metadata.resourceVersion) >= rvs[2]!); n++) await all.next(n, 2000);
  const bm = all.events.find((e) => e.type === 'BOOKMARK' && Number(e.object.metadata.resourceVersion) >= rvs[2]!);
  t.truthy(bm);
  t.is(bm.object.kind, 'Node');
  t.true(Number(bm.object.metadata.resourceVersion) >= rvs[2]!);
  all.close();
  sel.close();
  emu.store.compact(emu.store.currentRV());
  const old = openWatch(emu, `${NODES}?watch=true&resourceVersion=${n1.metadata.resourceVersion}`);
  const e = await old.next(1);
  t.is(old.status, 200);
  t.is(e[0].type, 'ERROR');
  t.like(e[0].object, { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
  t.regex(e[0].object.message, /^too old resource version: \d+ \(\d+\)$/);
  await old.next(2, 500).catch(() => undefined);
  t.true(old.ended, 'the stream ends after the 410 ERROR');
});

test('watch without resourceVersion starts with ADDED for existing objects', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', NODES, node('e1'));
  await call(emu, 'POST', NODES, node('e2'));
  const w = openWatch(emu, `${NODES}?watch=true`);
  const evs = await w.next(2);
  t.deepEqual(evs.map((e) => `${e.type}:${e.object.metadata.name}`), ['ADDED:e1', 'ADDED:e2']);
  w.close();
});

test('patches: JSON merge, JSON patch (test op), strategic merge by container name; CRs reject strategic merge', async (t) => {
  const emu = await withWidgets(t);
  const dep = {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'one', image: 'i1' }, { name: 'two', image: 'i2' }] } } },
  };
  const c = await call(emu, 'POST', '/apis/apps/v1/namespaces/default/deployments', dep);
  t.is(c.json.metadata.generation, 1);
  const smp = await call(emu, 'PATCH', '/apis/apps/v1/namespaces/default/deployments/d', { spec: { template: { spec: { containers: [{ name: 'two', image: 'i3' }] } } } }, { 'Content-Type': 'application/strategic-merge-patch+json' });
  t.deepEqual(smp.json.spec.template.spec.containers, [{ name: 'one', image: 'i1' }, { name: 'two', image: 'i3' }]);
  t.is(smp.json.metadata.generation, 2);
  await call(emu, 'POST', W, widget('p'));
  const jp = await call(emu, 'PATCH', `${W}/p`, [{ op: 'test', path: '/spec/size', value: 3 }, { op: 'replace', path: '/spec/size', value: 5 }, { op: 'add', path: '/spec/tags', value: ['t-1'] }], { 'Content-Type': 'application/json-patch+json' });
  t.is(jp.status, 200);
  t.is(jp.json.spec.size, 5);
  const failed = await call(emu, 'PATCH', `${W}/p`, [{ op: 'test', path: '/spec/size', value: 3 }], { 'Content-Type': 'application/json-patch+json' });
  t.is(failed.status, 422);
  const mp = await call(emu, 'PATCH', `${W}/p`, { spec: { tags: null, mode: 'fast' } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(mp.json.spec.tags, undefined);
  t.is(mp.json.spec.mode, 'fast');
  const staleRV = await call(emu, 'PATCH', `${W}/p`, { metadata: { resourceVersion: '1' }, spec: { size: 1 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(staleRV.status, 409);
  const sm = await call(emu, 'PATCH', `${W}/p`, { spec: { size: 1 } }, { 'Content-Type': 'application/strategic-merge-patch+json' });
  t.is(sm.status, 415);
});

test('server-side apply: creates, owns fields, conflicts with another manager, force takes over, removes dropped fields', async (t) => {
  const emu = await withWidgets(t);
  const yaml = (spec: string) => `apiVersion: test.podvnet.io/v1\nkind: Widget\nmetadata:\n  name: a\nspec:\n${spec}`;
  const ct = { 'Content-Type': 'application/apply-patch+yaml' };
  const c = await call(emu, 'PATCH', `${W}/a?fieldManager=alice`, yaml('  size: 3\n  owner: ann\n  tags: [t-1]\n'), ct);
  t.is(c.status, 201);
  t.like(c.json.metadata.managedFields[0], { manager: 'alice', operation: 'Apply', fieldsType: 'FieldsV1' });
  t.deepEqual(c.json.metadata.managedFields[0].fieldsV1, { 'f:spec': { 'f:owner': {}, 'f:size': {}, 'f:tags': {} } });
  const bob = await call(emu, 'PATCH', `${W}/a?fieldManager=bob`, yaml('  size: 5\n  owner: ann\n'), ct);
  t.is(bob.status, 409);
  t.is(bob.json.reason, 'Conflict');
  t.is(bob.json.message, 'Apply failed with 1 conflict: conflict with "alice" using test.podvnet.io/v1: .spec.size');
  t.deepEqual(bob.json.details.causes, [{ reason: 'FieldManagerConflict', message: 'conflict with "alice" using test.podvnet.io/v1', field: '.spec.size' }]);
  const forced = await call(emu, 'PATCH', `${W}/a?fieldManager=bob&force=true`, yaml('  size: 5\n  owner: ann\n'), ct);
  t.is(forced.status, 200);
  t.is(forced.json.spec.size, 5);
  // alice stops applying tags: they go away (nobody else owns them); size stays (bob owns it now)
  const again = await call(emu, 'PATCH', `${W}/a?fieldManager=alice`, yaml('  owner: ann\n'), ct);
  t.is(again.status, 200);
  t.is(again.json.spec.tags, undefined);
  t.is(again.json.spec.size, 5);
  const noMgr = await call(emu, 'PATCH', `${W}/a`, yaml('  owner: ann\n'), ct);
  t.is(noMgr.status, 400);
});

test('dryRun=All validates and returns the result without storing', async (t) => {
  const emu = await withWidgets(t);
  const rv = emu.store.currentRV();
  const d = await call(emu, 'POST', `${W}?dryRun=All`, widget('dry'));
  t.is(d.status, 201);
  t.is(d.json.spec.mode, 'slow');
  t.is((await call(emu, 'GET', `${W}/dry`)).status, 404);
  t.is(emu.store.currentRV(), rv);
  const bad = await call(emu, 'POST', `${W}?dryRun=All`, widget('dry', { size: 0 }));
  t.is(bad.status, 422);
});

test('namespaces: deletion terminates the namespace, deletes its content, then removes it', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'tmp' } });
  await call(emu, 'POST', '/api/v1/namespaces/tmp/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', finalizers: ['x/y'] } });
  const d = await call(emu, 'DELETE', '/api/v1/namespaces/tmp');
  t.is(d.json.status.phase, 'Terminating');
  const blocked = await call(emu, 'POST', '/api/v1/namespaces/tmp/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'd' } });
  t.is(blocked.status, 403);
  await new Promise((r) => setTimeout(r, 30));
  t.is((await call(emu, 'GET', '/api/v1/namespaces/tmp')).status, 200, 'waits for content with finalizers');
  await call(emu, 'PATCH', '/api/v1/namespaces/tmp/configmaps/c', { metadata: { finalizers: null } }, { 'Content-Type': 'application/merge-patch+json' });
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) { gone = (await call(emu, 'GET', '/api/v1/namespaces/tmp')).status === 404; await new Promise((r) => setTimeout(r, 20)); }
  t.true(gone);
});

test('events: one object seen through core/v1 and events.k8s.io/v1, with involvedObject field selectors', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
    apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e1' }, eventTime: '2026-01-01T00:00:00.000000Z',
    regarding: { kind: 'Node', name: 'n1', uid: 'u1' }, reason: 'Scaled', note: 'grew by 16', type: 'Normal', action: 'Scale', reportingController: 'podvnet.io/controller', reportingInstance: 'c-1',
  });
  const core = await call(emu, 'GET', '/api/v1/namespaces/default/events/e1');
  t.like(core.json, { apiVersion: 'v1', kind: 'Event', message: 'grew by 16', involvedObject: { kind: 'Node', name: 'n1' } });
  const sel = await call(emu, 'GET', `/api/v1/events?fieldSelector=${encodeURIComponent('involvedObject.kind=Node,involvedObject.name=n1,involvedObject.uid=u1')}`);
  t.deepEqual(sel.json.items.map((e: any) => e.metadata.name), ['e1']);
  const none = await call(emu, 'GET', `/api/v1/events?fieldSelector=${encodeURIComponent('involvedObject.name=n2')}`);
  t.is(none.json.items.length, 0);
  const back = await call(emu, 'GET', '/apis/events.k8s.io/v1/namespaces/default/events/e1');
  t.like(back.json, { apiVersion: 'events.k8s.io/v1', note: 'grew by 16', regarding: { name: 'n1' } });
});

test('leases: create, conditional renew, conflict for a stale holder', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const L = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases';
  const l = (await call(emu, 'POST', L, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'ctl' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } })).json;
  const renew = await call(emu, 'PUT', `${L}/ctl`, { ...l, spec: { ...l.spec, renewTime: '2026-01-01T00:00:00.000000Z' } });
  t.is(renew.status, 200);
  const stale = await call(emu, 'PUT', `${L}/ctl`, { ...l, spec: { ...l.spec, holderIdentity: 'b' } });
  t.is(stale.status, 409);
});

test('Table output uses the CRD printer columns', async (t) => {
  const emu = await withWidgets(t);
  await call(emu, 'POST', W, widget('t1', { size: 4, mode: 'fast' }));
  const tb = await call(emu, 'GET', W, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
  t.is(tb.json.kind, 'Table');
  t.deepEqual(tb.json.columnDefinitions.map((c: any) => c.name), ['Name', 'Size', 'Mode', 'Ready', 'Age']);
  t.deepEqual(tb.json.rows[0].cells.slice(0, 4), ['t1', 4, 'fast', null]);
  t.regex(tb.json.rows[0].cells[4], /^\d+s$/);
  t.is(tb.json.rows[0].object.kind, 'PartialObjectMetadata');
});

test('persistence: a restart keeps objects and never reuses resourceVersions; old watches get 410', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kube-emu-persist-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataFile = join(dir, 'state.json');
  const a = await startKubeEmulator({ dataFile, tls: false });
  const n = (await call(a, 'POST', NODES, node('keep'))).json;
  const lastRV = a.store.currentRV();
  await a.close();
  const b = await startKubeEmulator({ dataFile, tls: false });
  t.teardown(() => b.close());
  const got = await call(b, 'GET', `${NODES}/keep`);
  t.is(got.json.metadata.uid, n.metadata.uid);
  const m = await call(b, 'POST', NODES, node('new'));
  t.true(Number(m.json.metadata.resourceVersion) > lastRV);
  const w = openWatch(b, `${NODES}?watch=true&resourceVersion=${n.metadata.resourceVersion}`);
  const ev = await w.next(1);
  t.is(ev[0].object.code, 410);
});

test('built-in kinds: unknown fields fail strict validation and are dropped with a warning otherwise', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const CM = '/api/v1/namespaces/default/configmaps';
  const strict = await call(emu, 'POST', `${CM}?fieldValidation=Strict`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labelz: {} }, datas: { a: 'b' } });
  t.is(strict.status, 400);
  t.is(strict.json.message, 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.labelz", unknown field "datas"');
  const lax = await call(emu, 'POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, datas: { a: 'b' }, data: { x: 'y' } });
  t.is(lax.status, 201);
  t.is(lax.json.datas, undefined);
  t.regex(String(lax.headers.warning), /unknown field \\"datas\\"/);
  const dep = await call(emu, 'POST', '/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { replica: 2, selector: {}, template: {} } });
  t.is(dep.status, 400);
  t.regex(dep.json.message, /unknown field "spec.replica"$/);
  const rb = await call(emu, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldValidation=Strict', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 's', namespace: 'n', nmespace: 'typo' }] });
  t.regex(rb.json.message, /unknown field "subjects\[0\].nmespace"$/);
  const ev = await call(emu, 'POST', '/apis/events.k8s.io/v1/namespaces/default/events?fieldValidation=Strict', { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e' }, eventTime: '2026-01-01T00:00:00.000000Z', reportingController: 'c', reportingInstance: 'i', action: 'A', reason: 'R', note: 'n', type: 'Normal', regarding: { kind: 'Node', name: 'x' } });
  t.is(ev.status, 201, ev.text);
  t.is(ev.json.reportingController, 'c');
  t.is((await call(emu, 'GET', '/api/v1/namespaces/default/events/e')).json.reportingComponent, 'c');
});

test('built-in update rules: node providerID, immutable ConfigMaps', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', NODES, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'vm' } });
  const merge = { 'Content-Type': 'application/merge-patch+json' };
  t.is((await call(emu, 'PATCH', `${NODES}/vm`, { spec: { providerID: 'azure:///a' } }, merge)).status, 200, 'from "" to a value is allowed');
  const change = await call(emu, 'PATCH', `${NODES}/vm`, { spec: { providerID: 'azure:///b' } }, merge);
  t.is(change.status, 422);
  t.is(change.json.message, 'Node "vm" is invalid: spec.providerID: Forbidden: node updates may not change providerID except from "" to valid');
  const CM = '/api/v1/namespaces/default/configmaps';
  await call(emu, 'POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'frozen' }, data: { a: '1' }, immutable: true });
  const edit = await call(emu, 'PATCH', `${CM}/frozen`, { data: { a: '2' } }, merge);
  t.is(edit.status, 422);
  t.is(edit.json.details.causes[0].field, 'data');
  t.is((await call(emu, 'PATCH', `${CM}/frozen`, { metadata: { labels: { ok: 'yes' } } }, merge)).status, 200);
});

test('deleting a CRD deletes its objects (finalizers honoured), stops serving it and ends its watches', async (t) => {
  const emu = await withWidgets(t, { tls: false });
  await call(emu, 'POST', W, widget('x1'));
  await call(emu, 'POST', W, widget('x2', {}, { finalizers: ['hold/on'] }));
  const w = openWatch(emu, `${W}?watch=true&resourceVersion=${emu.store.currentRV()}`);
  const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.podvnet.io';
  const d = await call(emu, 'DELETE', CRD);
  t.truthy(d.json.metadata.deletionTimestamp);
  await w.next(2);
  t.is((await call(emu, 'GET', `${W}/x1`)).status, 404);
  t.truthy((await call(emu, 'GET', `${W}/x2`)).json.metadata.deletionTimestamp);
  t.is((await call(emu, 'GET', CRD)).status, 200, 'the CRD waits for its objects');
  await call(emu, 'PATCH', `${W}/x2`, { metadata: { finalizers: null } }, { 'Content-Type': 'application/merge-patch+json' });
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) { gone = (await call(emu, 'GET', CRD)).status === 404; await new Promise((r) => setTimeout(r, 20)); }
  t.true(gone);
  t.is((await call(emu, 'GET', W)).status, 404);
  await w.next(10, 2000).catch(() => undefined);
  t.true(w.ended);
  t.deepEqual(w.events.map((e) => `${e.type}:${e.object.metadata.name}`), ['DELETED:x1', 'MODIFIED:x2', 'DELETED:x2']);
});

test('scale subresource of Deployments: get, merge patch, stale resourceVersion, bad replicas', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const D = '/apis/apps/v1/namespaces/default/deployments';
  await call(emu, 'POST', D, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } } });
  const sc = await call(emu, 'GET', `${D}/d/scale`);
  t.like(sc.json, { kind: 'Scale', apiVersion: 'autoscaling/v1', metadata: { name: 'd', namespace: 'default' }, spec: { replicas: 1 } });
  const p = await call(emu, 'PATCH', `${D}/d/scale`, { spec: { replicas: 4 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(p.json.spec.replicas, 4);
  const dep = (await call(emu, 'GET', `${D}/d`)).json;
  t.is(dep.spec.replicas, 4);
  t.is(dep.metadata.generation, 2);
  const stale = await call(emu, 'PUT', `${D}/d/scale`, { ...sc.json, spec: { replicas: 2 } });
  t.is(stale.status, 409);
  const neg = await call(emu, 'PATCH', `${D}/d/scale`, { spec: { replicas: -1 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(neg.status, 422);
  t.is((await call(emu, 'GET', '/apis/apps/v1/namespaces/default/daemonsets/x/scale')).status, 404);
});

test('event creation rules: events.k8s.io needs eventTime, reporting fields and a Normal/Warning type; namespaces must match', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const E = '/apis/events.k8s.io/v1/namespaces/default/events';
  const bad = await call(emu, 'POST', E, { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e' }, reason: 'R', type: 'Info', regarding: { kind: 'Node', name: 'n' } });
  t.is(bad.status, 422);
  t.deepEqual(bad.json.details.causes.map((c: any) => `${c.field}: ${c.message}`).sort(), [
    'eventTime: Required value',
    'type: Invalid value: "": has invalid value: Info',
  ]);
  const noReporter = await call(emu, 'POST', E, { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e' }, eventTime: '2026-01-01T00:00:00.000000Z', reason: 'R', type: 'Normal', regarding: { kind: 'Node', name: 'n' } });
  t.deepEqual(noReporter.json.details.causes.map((c: any) => c.field).sort(), ['action', 'reportingController', 'reportingInstance']);
  await call(emu, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
  const wrongNs = await call(emu, 'POST', '/api/v1/namespaces/other/events', { apiVersion: 'v1', kind: 'Event', metadata: { name: 'e' }, involvedObject: { kind: 'Node', name: 'n' }, reason: 'R', message: 'm' });
  t.is(wrongNs.status, 422);
  t.is(wrongNs.json.details.causes[0].field, 'involvedObject.namespace');
  const legacy = await call(emu, 'POST', '/api/v1/namespaces/default/events', { apiVersion: 'v1', kind: 'Event', metadata: { name: 'e' }, involvedObject: { kind: 'Node', name: 'n' }, reason: 'R', message: 'm', count: 1 });
  t.is(legacy.status, 201, 'core/v1 events keep the legacy rules');
  const clusterScopedElsewhere = await call(emu, 'POST', '/apis/events.k8s.io/v1/namespaces/other/events', { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e' }, eventTime: '2026-01-01T00:00:00.000000Z', reportingController: 'x.io/c', reportingInstance: 'i', action: 'A', reason: 'R', type: 'Normal', regarding: { kind: 'Node', name: 'n' } });
  t.is(clusterScopedElsewhere.status, 422, 'events about cluster-scoped objects belong in default or kube-system');
  t.is(clusterScopedElsewhere.json.details.causes[0].message, 'Invalid value: "": does not match event.namespace');
});

test('fault injection: scripted errors for matching requests, then normal service', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  emu.injectFault({ method: 'POST', path: /\/configmaps$/, code: 429, retryAfterSeconds: 2, times: 2 });
  emu.injectFault({ method: 'GET', path: '/api/v1/nodes', code: 500, message: 'etcdserver: request timed out' });
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } };
  const first = await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', body);
  t.is(first.status, 429);
  t.is(first.headers['retry-after'], '2');
  t.like(first.json, { kind: 'Status', reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 2 } });
  t.is((await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', body)).status, 429);
  t.is((await call(emu, 'POST', '/api/v1/namespaces/default/configmaps', body)).status, 201);
  const five = await call(emu, 'GET', '/api/v1/nodes');
  t.like(five.json, { code: 500, reason: 'InternalError', message: 'etcdserver: request timed out' });
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 200);
  emu.injectFault({ code: 503 });
  emu.clearFaults();
  t.is((await call(emu, 'GET', '/api/v1/nodes')).status, 200);
});

test('scale subresource declared by a CRD', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'gadgets.test.podvnet.io' },
    spec: {
      group: 'test.podvnet.io', scope: 'Namespaced', names: { kind: 'Gadget', plural: 'gadgets' },
      versions: [{
        name: 'v1', served: true, storage: true,
        subresources: { status: {}, scale: { specReplicasPath: '.spec.count', statusReplicasPath: '.status.count', labelSelectorPath: '.status.selector' } },
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { count: { type: 'integer', maximum: 5 } } }, status: { type: 'object', properties: { count: { type: 'integer' }, selector: { type: 'string' } } } } } },
      }],
    },
  };
  t.is((await call(emu, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)).status, 201);
  const G = '/apis/test.podvnet.io/v1/namespaces/default/gadgets';
  await call(emu, 'POST', G, { apiVersion: 'test.podvnet.io/v1', kind: 'Gadget', metadata: { name: 'g' }, spec: { count: 1 } });
  await call(emu, 'PATCH', `${G}/g/status`, { status: { count: 1, selector: 'app=g' } }, { 'Content-Type': 'application/merge-patch+json' });
  const sc = await call(emu, 'GET', `${G}/g/scale`);
  t.like(sc.json, { kind: 'Scale', spec: { replicas: 1 }, status: { replicas: 1, selector: 'app=g' } });
  const up = await call(emu, 'PATCH', `${G}/g/scale`, { spec: { replicas: 3 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(up.json.spec.replicas, 3);
  t.is((await call(emu, 'GET', `${G}/g`)).json.spec.count, 3);
  const over = await call(emu, 'PATCH', `${G}/g/scale`, { spec: { replicas: 9 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(over.status, 422, 'the new replicas are validated against the CRD schema');
});
