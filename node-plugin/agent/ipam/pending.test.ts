import test from 'ava';
import { AgentAddressService, NoFreeAddressError } from '../address-service.js';
import { NODE_SETTINGS, recordWithIPs } from '../testing/records.js';
import { until as poll } from '../testing/poll.js';
import { PendingDemand } from './pending.js';
import { MemoryStore } from './store.js';

// Sync conditions on timers of a few ms: a tight poll, a shorter deadline than the agent tests'.
const until = (cond: () => boolean, ms = 10_000) => poll(cond, ms, 5);

/**
 * Pending demand must fall back on its own: once churn stops nothing calls the agent again, and a stale
 * pendingIPs keeps the controller from shrinking the NIC (issue 10, item 1).
 */


const node = NODE_SETTINGS;
const record = (n: number) => recordWithIPs(n);

test('an entry expires on its own: the owner hears of it at the earliest expiry, with no other call', async (t) => {
  let expiries = 0;
  // Both entries are noted at the same instant of the injected clock (on a loaded machine real notes a
  // few ms apart would expire apart); the timer itself is real, armed for the 80 ms window.
  let now = 0;
  const p = new PendingDemand({ windowMs: 80, now: () => now, onExpired: () => expiries++ });
  t.teardown(() => p.close());
  p.note('a/eth0');
  p.note('b/eth0');
  t.is(p.count(), 2);
  const started = Date.now();
  now = 80;
  t.true(await until(() => expiries > 0), 'the expiry timer fired');
  t.true(Date.now() - started >= 70, 'not before the window');
  t.is(p.count(), 0);
  t.is(expiries, 1, 'both expired together: one notice');
});

test('a retried ADD of the same key counts once and refreshes its window; clear removes it', async (t) => {
  let now = 0;
  const p = new PendingDemand({ windowMs: 1000, now: () => now, onExpired: () => undefined });
  t.teardown(() => p.close());
  p.note('a/eth0');
  now = 600;
  p.note('a/eth0');
  p.note('b/eth0');
  t.is(p.count(), 2);
  now = 1200; // a's first attempt is past its window, its retry is not
  t.deepEqual(p.keys().sort(), ['a/eth0', 'b/eth0']);
  t.is(p.nextExpiry(), 1600);
  t.true(p.clear('b/eth0'));
  t.false(p.clear('b/eth0'));
  now = 1600;
  t.is(p.count(), 0);
  t.is(p.nextExpiry(), undefined);
});

test('a refreshed entry keeps counting past the first timer; the notice comes when it really expires', async (t) => {
  let expiries = 0;
  const p = new PendingDemand({ windowMs: 100, onExpired: () => expiries++ });
  t.teardown(() => p.close());
  p.note('a/eth0');
  await new Promise((r) => setTimeout(r, 60));
  p.note('a/eth0'); // retried: now expires ~160 ms after the start
  await new Promise((r) => setTimeout(r, 60)); // past the first expiry time
  t.is(p.count(), 1);
  t.is(expiries, 0);
  t.true(await until(() => expiries === 1));
  t.is(p.count(), 0);
});

test('address service: pending demand falls to zero by itself and tells its listeners (no CNI call needed)', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0, pendingWindowMs: 100 });
  t.teardown(() => svc.flush());
  svc.setRecord(record(1), undefined);
  await svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' });
  let changes = 0;
  svc.onChange(() => changes++);
  for (const c of ['b', 'c', 'c']) await t.throwsAsync(svc.acquire({ containerId: c, ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
  t.deepEqual(svc.demand(), { usedIPs: 1, pendingIPs: 2 }, 'a retried ADD counts once');
  const before = changes;
  t.true(await until(() => changes > before), 'listeners hear of the expiry');
  // b and c were noted a moment apart (each ADD awaited): on a loaded machine they expire apart, each
  // with its own notice. What must hold is that the demand reaches zero with no CNI call.
  t.true(await until(() => svc.demand().pendingIPs === 0), 'the rest expires too');
  t.deepEqual(svc.demand(), { usedIPs: 1, pendingIPs: 0 });
});

test('address service: forgetting a container that never got an IP lowers the demand at once', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0, pendingWindowMs: 60_000 });
  t.teardown(() => svc.flush());
  svc.setRecord(record(0), undefined);
  await t.throwsAsync(svc.acquire({ containerId: 'b', ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
  let changes = 0;
  svc.onChange(() => changes++);
  t.deepEqual(svc.pendingKeys(), ['b/eth0']);
  svc.forgetPending({ containerId: 'b', ifName: 'eth0' });
  t.is(changes, 1);
  t.is(svc.demand().pendingIPs, 0);
  svc.forgetPending({ containerId: 'b', ifName: 'eth0' });
  t.is(changes, 1, 'nothing changed the second time');
});

test('a pod retried with a new sandbox (ADD code 11, DEL, ADD) stays one IP of demand between the DEL and the retry', async (t) => {
  let now = 0;
  const p = new PendingDemand({ windowMs: 30_000, now: () => now, onExpired: () => undefined });
  t.teardown(() => p.close());
  t.true(p.note('s0/eth0', 'default/web'));
  t.true(p.note('x0/eth0', 'default/other'));
  now = 100;
  t.false(p.abandon('s0/eth0', 5000), 'a DEL of the failed sandbox does not drop the demand at once');
  t.is(p.count(), 2, 'still waiting: the pod is coming back');
  now = 600;
  t.false(p.note('s1/eth0', 'default/web'), 'the retry takes the abandoned sandbox\'s place: demand did not rise');
  t.is(p.count(), 2);
  t.deepEqual(p.keys().sort(), ['s1/eth0', 'x0/eth0']);
  t.false(p.abandon('s1/eth0', 5000));
  now = 5599;
  t.is(p.count(), 2);
  t.is(p.nextExpiry(), 5600, 'the grace ends before the window does');
  now = 5600;
  t.deepEqual(p.keys(), ['x0/eth0'], 'a pod that did not come back stops counting after the grace');
  t.false(p.abandon('gone/eth0', 5000));
  t.true(p.note('anon/eth0'));
  t.true(p.abandon('anon/eth0', 5000), 'a sandbox of no known pod stops counting at once');
  t.deepEqual(p.keys(), ['x0/eth0']);
});

test('address service: a DEL of a pod\'s sandbox that never got an IP keeps its demand until the retry or the grace; the listeners hear the drop', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0, pendingWindowMs: 60_000, pendingRetryGraceMs: 300 });
  t.teardown(() => svc.flush());
  svc.setRecord(record(0), undefined);
  await t.throwsAsync(svc.acquire({ containerId: 's0', ifName: 'eth0', runtime: 'cni', pod: 'default/web' }), { instanceOf: NoFreeAddressError });
  svc.abandonPending({ containerId: 's0', ifName: 'eth0' });
  t.is(svc.demand().pendingIPs, 1, 'between the DEL and the retry the pod still waits');
  await t.throwsAsync(svc.acquire({ containerId: 's1', ifName: 'eth0', runtime: 'cni', pod: 'default/web' }), { instanceOf: NoFreeAddressError });
  t.is(svc.demand().pendingIPs, 1, 'one pod, one IP of demand');
  let changes = 0;
  svc.onChange(() => changes++);
  svc.abandonPending({ containerId: 's1', ifName: 'eth0' });
  t.is(changes, 0);
  t.true(await until(() => changes > 0), 'the grace ends on its own');
  t.is(svc.demand().pendingIPs, 0);
});
