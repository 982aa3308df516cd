import test from 'ava';
import { pino } from 'pino';
import { startKubeEmulator } from '../hack/kube-emulator/index.js';
import { KubeClient } from './kube.js';
import { LeaderElector } from './leader.js';

const log = pino({ level: 'silent' });

test('one leader at a time; a standby takes over only after the lease expires or is handed back', async (t) => {
  const kube = await startKubeEmulator();
  t.teardown(() => kube.close());
  const client = new KubeClient(kube.kubeConfig());
  const events: string[] = [];
  const make = (id: string) => new LeaderElector(client, { namespace: 'default', name: 'ctl', identity: id, leaseDurationMs: 1000, renewDeadlineMs: 800, retryPeriodMs: 100 }, log, {
    onStartedLeading: () => events.push(`${id}+`), onStoppedLeading: () => events.push(`${id}-`),
  });
  const a = make('a');
  const b = make('b');
  const t0 = Date.now();
  t.true(await a.tryAcquireOrRenew(t0));
  t.false(await b.tryAcquireOrRenew(t0 + 100), 'a holds a fresh lease');
  t.true(await a.tryAcquireOrRenew(t0 + 200), 'a renews');
  t.false(await b.tryAcquireOrRenew(t0 + 900), 'renewed at +200: still valid at +900');
  t.true(await b.tryAcquireOrRenew(t0 + 1300), 'expired: b takes over');
  const lease = await client.get<{ spec: { holderIdentity: string; leaseTransitions: number } }>('/apis/coordination.k8s.io/v1/namespaces/default/leases/ctl');
  t.like(lease.spec, { holderIdentity: 'b', leaseTransitions: 1 });
  t.false(await a.tryAcquireOrRenew(t0 + 1400), 'a sees b and steps down');
  t.deepEqual(events, ['a+', 'b+', 'a-']);

  // b hands the lease back on stop: a gets it at its next try, without waiting for expiry
  await b.stop();
  t.true(await a.tryAcquireOrRenew(Date.now()));
});

test('two candidates racing for a missing lease: exactly one wins', async (t) => {
  const kube = await startKubeEmulator();
  t.teardown(() => kube.close());
  const client = new KubeClient(kube.kubeConfig());
  const opts = (id: string) => ({ namespace: 'default', name: 'race', identity: id, leaseDurationMs: 10_000, renewDeadlineMs: 8000, retryPeriodMs: 1000 });
  const noop = { onStartedLeading: () => {}, onStoppedLeading: () => {} };
  const results = await Promise.all(['x', 'y', 'z'].map((id) => new LeaderElector(client, opts(id), log, noop).tryAcquireOrRenew()));
  t.is(results.filter(Boolean).length, 1);
});

test('stop() during a renewal under way: the renewal neither lands after the release nor takes the lease back', async (t) => {
  const kube = await startKubeEmulator();
  t.teardown(() => kube.close());
  const client = new KubeClient(kube.kubeConfig());
  const path = '/apis/coordination.k8s.io/v1/namespaces/default/leases/stop';
  for (const when of ['before its read', 'before its write'] as const) {
    // Holds the next lease request of the chosen kind until released, so stop() starts while it is in flight.
    let hold: (() => void) | undefined;
    let held: (() => void) | undefined;
    const heldNow = new Promise<void>((r) => { held = r; });
    const slow = Object.create(client) as KubeClient;
    const gate = async () => { held!(); await new Promise<void>((r) => { hold = r; }); };
    let renewals = 0;
    slow.get = async (p) => { if (when === 'before its read' && renewals++ === 1) await gate(); return client.get(p); };
    slow.update = async (p, body) => { if (when === 'before its write' && renewals++ === 1) await gate(); return client.update(p, body); };
    const events: string[] = [];
    const e = new LeaderElector(slow, { namespace: 'default', name: 'stop', identity: 'a', leaseDurationMs: 10_000, renewDeadlineMs: 8000, retryPeriodMs: 20 }, log, {
      onStartedLeading: () => events.push('+'), onStoppedLeading: () => events.push('-'),
    });
    e.start();
    await heldNow; // leading, and the second renewal is now held
    t.true(e.isLeader, when);
    const stopping = e.stop();
    hold!();
    await stopping;
    const lease = await client.get<{ spec: { holderIdentity: string } }>(path);
    t.is(lease.spec.holderIdentity, '', `${when}: handed back`);
    t.false(e.isLeader);
    t.deepEqual(events, ['+'], `${when}: started once, never again after stop`);
    await new Promise((r) => setTimeout(r, 100));
    t.is((await client.get<{ spec: { holderIdentity: string } }>(path)).spec.holderIdentity, '', `${when}: nothing renews after stop`);
    await client.delete(path);
  }
});
