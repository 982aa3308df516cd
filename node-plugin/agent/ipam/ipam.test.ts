import test from 'ava';
import fc from 'fast-check';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { AgentAddressService, NoFreeAddressError, PoolNotReadyError } from '../address-service.js';
import { availableIPs, chooseReleases, pickAddress } from './policy.js';
import { FileStore, MemoryStore, StoreLockedError, emptyState } from './store.js';
import { recordWithIPs as record } from './record.fixture.js';

const policy = { batchSize: 4, requestThresholdPercent: 50, releaseThresholdPercent: 150 };


const node = { nodeName: 'node-1', bridgeName: 'podvnet0', hostInterface: 'eth0', mtu: 1500 };

test('pickAddress: lowest free, skipping held, released and cooling IPs', (t) => {
  const view = {
    poolIPs: ['10.1.0.12', '10.1.0.10', '10.1.0.11', '10.1.0.13', '10.1.0.9'],
    allocated: new Set(['10.1.0.9']),
    released: new Set(['10.1.0.10']),
    cooldown: new Map([['10.1.0.11', 2000], ['10.1.0.12', 500]]),
    now: 1000,
  };
  t.is(pickAddress(view), '10.1.0.12');
  t.deepEqual(availableIPs(view), ['10.1.0.12', '10.1.0.13']);
  t.is(pickAddress({ ...view, now: 5000 }), '10.1.0.11');
  t.is(pickAddress({ ...view, poolIPs: ['10.1.0.9'] }), undefined);
});

test('chooseReleases: gives back free IPs above the scaling target, highest first, never a held one', (t) => {
  const poolIPs = Array.from({ length: 16 }, (_, i) => `10.1.0.${10 + i}`);
  const allocated = new Set(['10.1.0.25', '10.1.0.10']);
  const out = chooseReleases({ poolIPs, allocated, released: new Set(), cooldown: new Map(), now: 0, pending: 0, min: 0, max: 250, policy });
  // need 2, low water 2 -> settled = roundUp(4, 4) = 4 -> release 12
  t.is(out.length, 12);
  t.false(out.some((ip) => allocated.has(ip)));
  t.is(out[0], '10.1.0.24');
  // with min 16 nothing goes
  t.deepEqual(chooseReleases({ poolIPs, allocated, released: new Set(), cooldown: new Map(), now: 0, pending: 0, min: 16, max: 250, policy }), []);
});

test('property: chooseReleases never releases a held IP and never drops below need', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 16 }), (size, usedN, pending, batch) => {
      const poolIPs = Array.from({ length: size }, (_, i) => `10.2.${i >> 8}.${i & 255}`);
      const allocated = new Set(poolIPs.slice(0, Math.min(usedN, size)));
      const out = chooseReleases({ poolIPs, allocated, released: new Set(), cooldown: new Map(), now: 0, pending, min: 0, max: 250, policy: { ...policy, batchSize: batch } });
      t.false(out.some((ip) => allocated.has(ip)));
      t.true(size - out.length >= Math.min(size, allocated.size + pending));
    }),
  );
});

test('property: random concurrent acquire/release/crash never shares an IP and never loses an acknowledged one', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('acquire' as const), pod: fc.integer({ min: 0, max: 14 }) }),
    fc.record({ kind: fc.constant('release' as const), pod: fc.integer({ min: 0, max: 14 }) }),
    fc.record({ kind: fc.constant('crash' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 12 }), async (rounds) => {
      const store = new MemoryStore();
      let clock = 0;
      const make = async () => {
        await store.unlock();
        const s = new AgentAddressService({ store, node, cooldownMs: 5, now: () => clock });
        s.restore(await store.lock());
        s.setRecord(record(10), undefined);
        return s;
      };
      let svc = await make();
      const acked = new Map<string, string>(); // owner -> ip, acknowledged and not released since
      const generation = new Map<string, number>(); // bumps on each release: an older acquire's ack is stale
      for (const round of rounds) {
        clock += 3;
        let crashed = false;
        const running: Array<Promise<unknown>> = [];
        for (const o of round) {
          if (o.kind === 'crash') {
            crashed = true;
            break; // anything not awaited yet is lost with the process
          }
          const owner = { containerId: `c${o.pod}`, ifName: 'eth0', runtime: 'cni' as const };
          const current = svc;
          const gen = generation.get(owner.containerId) ?? 0;
          if (o.kind === 'acquire') {
            running.push(current.acquire(owner).then(
              (a) => {
                if (current === svc && (generation.get(owner.containerId) ?? 0) === gen) acked.set(`c${o.pod}`, a.ip);
              },
              (err: unknown) => {
                if (!(err instanceof NoFreeAddressError)) throw err;
              },
            ));
          } else {
            acked.delete(`c${o.pod}`);
            generation.set(owner.containerId, gen + 1);
            running.push(current.release(owner));
          }
        }
        if (crashed) {
          // Pick up whatever was committed, like a restarted agent.
          await new Promise((r) => setImmediate(r));
          svc = await make();
          await Promise.allSettled(running);
          // Releases that were in flight may or may not have landed: follow the store, which is the truth.
          for (const key of [...acked.keys()]) if (!svc.allocation({ containerId: key, ifName: 'eth0' })) acked.delete(key);
        } else {
          await Promise.all(running);
        }
        const ips = svc.listAllocations().map((a) => a.ip);
        if (new Set(ips).size !== ips.length) return false; // an IP shared
        for (const [owner, ip] of acked) {
          if (svc.lookup({ containerId: owner, ifName: 'eth0' })?.ip !== ip) return false; // acknowledged, then lost
        }
      }
      return true;
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('acknowledged acquire survives a crash: committed before it resolves', async (t) => {
  const store = new MemoryStore();
  const svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(4), undefined);
  const a = await svc.acquire({ containerId: 'x', ifName: 'eth0', runtime: 'cni' });
  t.deepEqual(store.committed.allocations.map((x) => x.ip), [a.ip]);
  t.deepEqual(a, { ip: '10.1.0.10', prefixLength: 16, gateway: '10.1.0.1' });
});

/** A MemoryStore whose writes wait while `held`, and can be made to fail. */
class GatedStore extends MemoryStore {
  held = true;
  failNext = false;
  private gates: Array<() => void> = [];
  override async write(state: Parameters<MemoryStore['write']>[0]): Promise<void> {
    if (this.held) await new Promise<void>((r) => this.gates.push(r));
    if (this.failNext) { this.failNext = false; throw new Error('disk full'); }
    await super.write(state);
  }
  letThrough(): void {
    this.held = false;
    for (const g of this.gates.splice(0)) g();
  }
}

test('reserve: the IP is taken at once and committed alongside the caller\'s work', async (t) => {
  const store = new GatedStore();
  const svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(2), undefined);
  const a = svc.reserve({ containerId: 'a', ifName: 'eth0', runtime: 'cni' });
  t.is(a.address.ip, '10.1.0.10');
  const b = svc.reserve({ containerId: 'b', ifName: 'eth0', runtime: 'cni' });
  t.is(b.address.ip, '10.1.0.11'); // nobody else gets it meanwhile ...
  await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(store.committed.allocations, []); // ... although it is not durable yet
  store.letThrough();
  await Promise.all([a.durable, b.durable]);
  t.deepEqual(store.committed.allocations.map((x) => x.ip).sort(), ['10.1.0.10', '10.1.0.11']);
  t.throws(() => svc.reserve({ containerId: 'c', ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
});

test('reserve: a commit failure rejects durable and frees the IP again', async (t) => {
  const store = new GatedStore();
  store.held = false;
  const svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(1), undefined);
  await svc.flush();
  store.failNext = true;
  const a = svc.reserve({ containerId: 'a', ifName: 'eth0', runtime: 'cni' });
  await t.throwsAsync(a.durable, { message: 'disk full' });
  t.is(svc.allocation({ containerId: 'a', ifName: 'eth0' }), undefined);
  t.is(svc.freeCount(), 1);
});

test('releaseWith: released durably during the teardown, reusable only after it; a failed teardown keeps the IP', async (t) => {
  const store = new MemoryStore();
  const svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(1), undefined);
  const owner = { containerId: 'a', ifName: 'eth0', runtime: 'cni' as const };
  const a = await svc.acquire(owner);
  let finish!: () => void;
  const releasing = svc.releaseWith(owner, () => new Promise<void>((r) => (finish = r)));
  while (!finish) await new Promise((r) => setImmediate(r));
  // The release is committed while the teardown still runs ...
  for (const deadline = Date.now() + 10_000; store.committed.allocations.length && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 5));
  t.deepEqual(store.committed.allocations, []);
  // ... but the IP is not free for another pod until it is done.
  t.is(svc.freeCount(), 0);
  t.throws(() => svc.reserve({ containerId: 'b', ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
  finish();
  await releasing;
  t.is((await svc.acquire({ containerId: 'b', ifName: 'eth0', runtime: 'cni' })).ip, a.ip);

  // A teardown that fails leaves the allocation (and the committed state) as it was.
  await t.throwsAsync(svc.releaseWith({ containerId: 'b', ifName: 'eth0' }, async () => { throw new Error('veth busy'); }), { message: 'veth busy' });
  t.is(svc.allocation({ containerId: 'b', ifName: 'eth0' })?.ip, a.ip);
  t.deepEqual(store.committed.allocations.map((x) => x.ip), [a.ip]);
  t.is(svc.freeCount(), 0);
  // Without an allocation it is the teardown alone.
  let ran = false;
  await svc.releaseWith({ containerId: 'zz', ifName: 'eth0' }, async () => { ran = true; });
  t.true(ran);
});

test('acquire is idempotent per owner; release is idempotent; cooldown delays reuse', async (t) => {
  let now = 0;
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 1000, now: () => now });
  svc.setRecord(record(2), undefined);
  const a = await svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' });
  t.deepEqual(await svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' }), a);
  const b = await svc.acquire({ containerId: 'b', ifName: 'eth0', runtime: 'cni' });
  t.not(a.ip, b.ip);
  await svc.release({ containerId: 'a', ifName: 'eth0' });
  await svc.release({ containerId: 'a', ifName: 'eth0' });
  t.is(svc.freeCount(), 0);
  const err = await t.throwsAsync(svc.acquire({ containerId: 'c', ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
  t.regex(err!.message, /no free VNet IP on node node-1.*cooling down.*demand raised/);
  t.is(svc.demand().pendingIPs, 1);
  now = 1500;
  t.is((await svc.acquire({ containerId: 'c', ifName: 'eth0', runtime: 'cni' })).ip, a.ip);
  t.deepEqual(svc.demand(), { usedIPs: 2, pendingIPs: 0 });
});

test('no status yet: PoolNotReadyError and no node network', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0 });
  await t.throwsAsync(svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' }), { instanceOf: PoolNotReadyError });
  t.is(svc.nodeNetwork(), undefined);
  svc.setRecord(record(1), { snat: { enabled: true, excludeCIDRs: ['192.168.0.0/16'] }, ipsPerNode: { min: 0, max: 250 }, scaling: policy });
  t.like(svc.nodeNetwork(), { nicMAC: '00:0d:3a:00:00:01', primaryIP: '10.1.0.4', podSubnet: '10.1.0.0/16', gatewayIP: '10.1.0.1', snat: { enabled: true, excludeCIDRs: ['192.168.0.0/16'] } });
});

test('releases: planned with the scaling math, durable, never handed out, dropped once gone from status', async (t) => {
  const store = new MemoryStore();
  const svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(16), { snat: { enabled: false, excludeCIDRs: [] }, ipsPerNode: { min: 0, max: 250 }, scaling: policy });
  await svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' });
  const released = await svc.planReleases();
  t.is(released.length, 12);
  t.deepEqual([...store.committed.released].sort(), released);
  for (let i = 0; i < 3; i++) {
    const got = await svc.acquire({ containerId: `p${i}`, ifName: 'eth0', runtime: 'cni' });
    t.false(released.includes(got.ip));
  }
  // the controller removes them from the NIC: they leave releasedIPs
  const rec = record(16);
  rec.status!.ips = rec.status!.ips.filter((i) => !released.includes(i.ip));
  svc.setRecord(rec, undefined);
  t.deepEqual(svc.releasedIPs(), []);
});

test('FileStore: atomic snapshots, lock excludes a second agent, stale lock of a dead process is taken over', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = new FileStore(dir);
  t.deepEqual(await a.lock(), emptyState());
  await t.throwsAsync(new FileStore(dir).lock(), { instanceOf: StoreLockedError, message: /locked by running process/ });
  const state = { ...emptyState(), allocations: [{ containerId: 'c', ifName: 'eth0', runtime: 'cni' as const, ip: '10.1.0.9', assignedAt: 1 }], released: ['10.1.0.30'], cooldown: { '10.1.0.8': 99 } };
  await a.write(state);
  t.deepEqual(JSON.parse(await readFile(a.statePath, 'utf8')), state);
  t.deepEqual((await readdir(dir)).sort(), ['agent.lock', 'allocations.json']);
  await a.unlock();

  // a lock file left by a process that has exited
  const child = spawn('true');
  await new Promise((r) => child.on('exit', r));
  await writeFile(a.lockPath, `${child.pid} 12345\n`);
  await writeFile(`${a.statePath}.tmp-999`, '{"partial":');
  const b = new FileStore(dir);
  t.deepEqual(await b.lock(), state);
  t.false((await readdir(dir)).some((n) => n.includes('.tmp-')));
  await b.unlock();

  await writeFile(a.statePath, '{"version":1,"allocations":[{"ip":"nope"}]}');
  await t.throwsAsync(new FileStore(dir).lock(), { message: /allocations\.json is invalid/ });
});

test('IPs the record already lists as released are never handed out, even if the local state forgot them', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0 });
  const rec = record(3);
  rec.spec.releasedIPs = ['10.1.0.10', '10.1.0.11'];
  svc.setRecord(rec, undefined);
  t.deepEqual(svc.releasedIPs(), ['10.1.0.10', '10.1.0.11']);
  t.is((await svc.acquire({ containerId: 'a', ifName: 'eth0', runtime: 'cni' })).ip, '10.1.0.12');
  await t.throwsAsync(svc.acquire({ containerId: 'b', ifName: 'eth0', runtime: 'cni' }), { instanceOf: NoFreeAddressError });
});
