import test from 'ava';
import { call, withEmulator } from './testing/index.js';

/**
 * Event series as the API server keeps them (ValidateEventCreate / ValidateEventUpdate): an
 * events.k8s.io/v1 series counts at least 2 and has a lastObservedTime; once written, what an event says
 * (regarding, reason, note, type, action, reporting fields, eventTime) cannot change, only its series; the
 * core/v1 view shows the series, and kubectl's table takes Last Seen and Count from it.
 */

const E = '/apis/events.k8s.io/v1/namespaces/default/events';
const MERGE = { 'Content-Type': 'application/merge-patch+json' };
const event = (over: Record<string, unknown> = {}) => ({
  apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e' }, eventTime: '2026-01-01T00:00:00.000000Z',
  reportingController: 'podvnet.io/controller', reportingInstance: 'c-1', action: 'AddIPs', reason: 'SubnetFull', type: 'Warning',
  note: 'no room', regarding: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', name: 'vm-0' }, ...over,
});

test('events.k8s.io: a series needs count >= 2 and lastObservedTime, on create and on update', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const one = await call(emu, 'POST', E, event({ series: { count: 1, lastObservedTime: '2026-01-01T00:00:01.000000Z' } }));
  t.is(one.status, 422);
  t.deepEqual(one.json.details.causes.map((c: any) => `${c.field}: ${c.message}`), ['series.count: Invalid value: "": should be at least 2']);
  const noTime = await call(emu, 'POST', E, event({ series: { count: 2 } }));
  t.is(noTime.status, 422);
  t.deepEqual(noTime.json.details.causes.map((c: any) => `${c.field}: ${c.message}`), ['series.lastObservedTime: Required value']);

  t.is((await call(emu, 'POST', E, event())).status, 201);
  const bad = await call(emu, 'PATCH', `${E}/e`, { series: { count: 1, lastObservedTime: '2026-01-01T00:00:05.000000Z' } }, MERGE);
  t.is(bad.status, 422);
  const ok = await call(emu, 'PATCH', `${E}/e`, { series: { count: 3, lastObservedTime: '2026-01-01T00:00:05.000000Z' } }, MERGE);
  t.is(ok.status, 200);
  t.deepEqual(ok.json.series, { count: 3, lastObservedTime: '2026-01-01T00:00:05.000000Z' });
  const core = await call(emu, 'GET', '/api/v1/namespaces/default/events/e');
  t.deepEqual(core.json.series, { count: 3, lastObservedTime: '2026-01-01T00:00:05.000000Z' }, 'the core/v1 view shows the same series');
  t.is(core.json.count, undefined, 'the legacy count stays unset for events.k8s.io events');
});

test('events.k8s.io: what an event says is immutable; only its series changes', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  t.is((await call(emu, 'POST', E, event())).status, 201);
  for (const [field, patch] of [
    ['message', { note: 'other' }], ['reason', { reason: 'Other' }], ['type', { type: 'Normal' }], ['action', { action: 'Other' }],
    ['involvedObject', { regarding: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', name: 'vm-1' } }],
    ['reportingController', { reportingController: 'other.io/c' }], ['reportingInstance', { reportingInstance: 'c-2' }],
    ['eventTime', { eventTime: '2026-01-01T00:00:09.000000Z' }],
  ] as const) {
    const r = await call(emu, 'PATCH', `${E}/e`, patch, MERGE);
    t.is(r.status, 422, field);
    t.deepEqual(r.json.details.causes.map((c: any) => c.field), [field], field);
    t.regex(r.json.details.causes[0].message, /: field is immutable$/, field);
  }
  // core/v1 updates keep the legacy rules: the same change goes through there
  const legacy = await call(emu, 'PATCH', '/api/v1/namespaces/default/events/e', { message: 'other' }, MERGE);
  t.is(legacy.status, 200);
});

test('kubectl\'s event table takes Last Seen and Count from the series', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  const created = new Date(Date.now() - 600_000).toISOString().replace('Z', '000Z').replace(/\.(\d{3})000000Z$/, '.$1000Z');
  t.is((await call(emu, 'POST', E, event({ eventTime: created }))).status, 201);
  const single = await call(emu, 'GET', '/api/v1/namespaces/default/events', undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
  const col = (table: any, name: string) => table.rows[0].cells[table.columnDefinitions.findIndex((c: any) => c.name === name)];
  t.is(col(single.json, 'Count'), 1, 'a singleton counts 1');
  t.is(col(single.json, 'Last Seen'), '10m');
  t.is(col(single.json, 'First Seen'), '10m');
  const recent = new Date(Date.now() - 30_000).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  t.is((await call(emu, 'PATCH', `${E}/e`, { series: { count: 7, lastObservedTime: recent } }, MERGE)).status, 200);
  const series = await call(emu, 'GET', '/api/v1/namespaces/default/events', undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
  t.is(col(series.json, 'Count'), 7);
  t.is(col(series.json, 'Last Seen'), '30s');
  t.is(col(series.json, 'First Seen'), '10m');
});
