import test from 'ava';
import fc from 'fast-check';
import { freshNames, IP_CONFIG_PREFIX, isOurs, nextIpConfigs, planNode, planRelease, type IpConfigView, type PlanInput } from './plan.js';

const SUBNET = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods';
const OTHER_SUBNET = SUBNET.replace('/pods', '/other');
const spec = (over: Partial<{ min: number; max: number; batchSize: number; warmIPs: number }> = {}): PlanInput['spec'] => ({
  subnetID: SUBNET,
  ipsPerNode: { min: over.min ?? 0, max: over.max ?? 250 },
  scaling: { batchSize: over.batchSize ?? 10, requestThresholdPercent: 50, releaseThresholdPercent: 150, ...(over.warmIPs !== undefined ? { warmIPs: over.warmIPs } : {}) },
});
const primary: IpConfigView = { name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', subnetId: SUBNET };
const ours = (n: number, start = 1): IpConfigView[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${IP_CONFIG_PREFIX}${start + i}`, primary: false, privateIPAddress: `10.0.1.${start + i}`, subnetId: SUBNET }));

test('a fresh node with no agent report yet gets one batch', (t) => {
  const p = planNode({ spec: spec(), nic: [primary], released: [] });
  t.deepEqual(p.add, ['podvnet-1', 'podvnet-2', 'podvnet-3', 'podvnet-4', 'podvnet-5', 'podvnet-6', 'podvnet-7', 'podvnet-8', 'podvnet-9', 'podvnet-10']);
  t.deepEqual(p.remove, []);
  t.is(p.target, 10);
  t.is(p.reason, 'Grow');
});

test('grows by a batch when demand crosses the request threshold', (t) => {
  const p = planNode({ spec: spec(), nic: [primary, ...ours(10)], released: [], demand: { usedIPs: 6, pendingIPs: 0 } });
  t.is(p.add.length, 10);
  t.deepEqual(p.add.slice(0, 2), ['podvnet-11', 'podvnet-12']);
  t.is(p.usableAfter, 20);
});

test('steady demand writes nothing', (t) => {
  const p = planNode({ spec: spec(), nic: [primary, ...ours(20)], released: [], demand: { usedIPs: 10, pendingIPs: 0 } });
  t.deepEqual([p.add, p.remove], [[], []]);
});

test('shrinking removes only what the agent released, never more', (t) => {
  const nic = [primary, ...ours(40)];
  // the policy would shrink to 10, but the agent has released only three IPs
  const released = ['10.0.1.5', '10.0.1.7', '10.0.1.40'];
  const p = planNode({ spec: spec(), nic, released, demand: { usedIPs: 0, pendingIPs: 0 } });
  t.deepEqual(p.remove, ['podvnet-5', 'podvnet-7', 'podvnet-40']);
  t.deepEqual(p.add, []);
  t.is(p.usableAfter, 37);
});

test('released IPs not on the NIC, and released foreign or primary IPs, are ignored', (t) => {
  const foreign: IpConfigView = { name: 'ipconfig2', primary: false, privateIPAddress: '10.0.0.9', subnetId: SUBNET };
  const p = planNode({ spec: spec(), nic: [primary, foreign, ...ours(10)], released: ['10.0.0.4', '10.0.0.9', '10.9.9.9'], demand: { usedIPs: 3, pendingIPs: 0 } });
  t.deepEqual(p.remove, []);
});

test('a round that removes released ip-configs adds none; growth follows once the agent has seen them go', (t) => {
  const nic = [primary, ...ours(10)];
  const released = ['10.0.1.1', '10.0.1.2'];
  const p = planNode({ spec: spec(), nic, released, demand: { usedIPs: 7, pendingIPs: 0 } });
  t.deepEqual(p.remove, ['podvnet-1', 'podvnet-2']);
  t.deepEqual(p.add, [], 'Azure would hand the freed addresses straight back to new ip-configs');
  t.true(p.waitingForAgent);
  t.is(p.deferred, 12, '8 usable with 7 used wants 20');
  const next = nextIpConfigs(nic, p, SUBNET);
  t.is(next.length, 1 + 8);
  t.is(next[0], primary);
  // The agent still lists the removed IPs: it has not seen the write yet. Still no growth.
  const early = planNode({ spec: spec(), nic: next, released, demand: { usedIPs: 7, pendingIPs: 0 } });
  t.deepEqual([early.add, early.remove, early.waitingForAgent], [[], [], true]);
  // Once its list no longer names them, the node grows in one write, with names not reused.
  const grow = planNode({ spec: spec(), nic: next, released: [], demand: { usedIPs: 7, pendingIPs: 0 } });
  t.is(grow.add.length, 12);
  t.false(grow.waitingForAgent);
  t.false(grow.add.includes('podvnet-3'), 'names on the NIC are not reused');
});

test('max and min bound the node, pending pods count as demand', (t) => {
  t.is(planNode({ spec: spec({ max: 16 }), nic: [primary, ...ours(10)], released: [], demand: { usedIPs: 10, pendingIPs: 5 } }).add.length, 6);
  t.is(planNode({ spec: spec({ min: 32 }), nic: [primary], released: [] }).add.length, 32);
  const capped = planNode({ spec: spec({ max: 16 }), nic: [primary, ...ours(16)], released: [], demand: { usedIPs: 16, pendingIPs: 4 } });
  t.true(capped.capped);
  t.deepEqual(capped.add, []);
});

test('the NIC limit counts the primary and foreign ip-configs', (t) => {
  const foreign = Array.from({ length: 100 }, (_, i): IpConfigView => ({ name: `other-${i}`, primary: false, privateIPAddress: `10.0.2.${i}`, subnetId: SUBNET }));
  const p = planNode({ spec: spec({ batchSize: 50 }), nic: [primary, ...foreign, ...ours(150)], released: [], demand: { usedIPs: 150, pendingIPs: 0 } });
  t.is(p.add.length, 5, '256 - 1 primary - 100 foreign - 150 ours');
  t.false(p.capped, '150 used fit in the 155 the NIC can carry');
  t.true(planNode({ spec: spec({ batchSize: 50 }), nic: [primary, ...foreign, ...ours(150)], released: [], demand: { usedIPs: 150, pendingIPs: 6 } }).capped);
});

test('subnet headroom and the batch limit defer adds', (t) => {
  const p = planNode({ spec: spec(), nic: [primary], released: [], subnetFree: 3 });
  t.is(p.add.length, 3);
  t.is(p.deferred, 7);
  const q = planNode({ spec: spec(), nic: [primary], released: [], maxAdds: 4, subnetFree: 100 });
  t.is(q.add.length, 4);
  t.is(q.deferred, 6);
});

test('our ip-configs in another subnet are not usable IPs but are removed once released', (t) => {
  const stray: IpConfigView = { name: 'podvnet-1', primary: false, privateIPAddress: '10.1.0.5', subnetId: OTHER_SUBNET };
  const p = planNode({ spec: spec(), nic: [primary, stray], released: [], demand: { usedIPs: 0, pendingIPs: 0 } });
  t.is(p.usableBefore, 0);
  t.false(p.add.includes('podvnet-1'));
  t.deepEqual(planNode({ spec: spec(), nic: [primary, stray], released: ['10.1.0.5'] }).remove, ['podvnet-1']);
});

test('teardown takes every ip-config of ours and nothing else', (t) => {
  const nic = [primary, { name: 'custom', primary: false, privateIPAddress: '10.0.0.8' }, ...ours(3)];
  t.deepEqual(planRelease(nic), ['podvnet-1', 'podvnet-2', 'podvnet-3']);
  t.false(isOurs({ name: 'podvnet-1', primary: true }), 'a primary is never ours, whatever its name');
});

test('freshNames fills gaps and is case-insensitive about taken names', (t) => {
  t.deepEqual(freshNames([{ name: 'PODVNET-1', primary: false }, { name: 'podvnet-3', primary: false }], 3), ['podvnet-2', 'podvnet-4', 'podvnet-5']);
});

// ---- properties ----

const ipOf = (i: number) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const arbInput = fc
  .record({
    min: fc.integer({ min: 0, max: 250 }),
    maxExtra: fc.integer({ min: 0, max: 250 }),
    batch: fc.integer({ min: 1, max: 250 }),
    request: fc.integer({ min: 1, max: 100 }),
    releaseExtra: fc.integer({ min: 1, max: 900 }),
    warm: fc.option(fc.integer({ min: 0, max: 250 }), { nil: undefined }),
    foreign: fc.integer({ min: 0, max: 255 }),
    oursCount: fc.integer({ min: 0, max: 255 }),
    strayCount: fc.integer({ min: 0, max: 5 }),
    releasedMask: fc.array(fc.boolean(), { minLength: 260, maxLength: 260 }),
    extraReleased: fc.array(fc.integer({ min: 0, max: 600 }), { maxLength: 10 }),
    used: fc.integer({ min: 0, max: 256 }),
    pending: fc.integer({ min: 0, max: 250 }),
    hasDemand: fc.boolean(),
    subnetFree: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
    maxAdds: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
  })
  .map((r) => {
    const max = Math.min(250, Math.max(1, r.min + r.maxExtra));
    const min = Math.min(r.min, max);
    const batch = Math.min(r.batch, max);
    // a NIC Azure would accept: at most 256 ip-configs
    const foreign = Math.min(r.foreign, 255);
    const oursCount = Math.min(r.oursCount, 255 - foreign);
    const stray = Math.min(r.strayCount, 255 - foreign - oursCount);
    let k = 0;
    const nic: IpConfigView[] = [{ name: 'ipconfig1', primary: true, privateIPAddress: ipOf(k++), subnetId: SUBNET }];
    for (let i = 0; i < foreign; i++) nic.push({ name: `ext-${i}`, primary: false, privateIPAddress: ipOf(k++), subnetId: SUBNET });
    for (let i = 0; i < oursCount; i++) nic.push({ name: `podvnet-${i * 2 + 1}`, primary: false, privateIPAddress: ipOf(k++), subnetId: SUBNET });
    for (let i = 0; i < stray; i++) nic.push({ name: `podvnet-s${i}`, primary: false, privateIPAddress: ipOf(k++), subnetId: OTHER_SUBNET });
    const released = [
      ...nic.filter((_, i) => r.releasedMask[i]).map((c) => c.privateIPAddress!),
      ...r.extraReleased.map(ipOf),
    ];
    const input: PlanInput = {
      spec: {
        subnetID: SUBNET,
        ipsPerNode: { min, max },
        scaling: { batchSize: batch, requestThresholdPercent: r.request, releaseThresholdPercent: r.request + r.releaseExtra, ...(r.warm !== undefined ? { warmIPs: r.warm } : {}) },
      },
      nic,
      released,
      demand: r.hasDemand ? { usedIPs: r.used, pendingIPs: r.pending } : undefined,
      subnetFree: r.subnetFree,
      maxAdds: r.maxAdds,
    };
    return input;
  });

test('property: never more than 256 ip-configs on the NIC, nor more usable IPs than max (unless already there)', (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const p = planNode(input);
      const next = nextIpConfigs(input.nic, p, SUBNET);
      if (next.length > 256) return false;
      if (p.usableAfter > Math.max(input.spec.ipsPerNode.max, p.usableBefore)) return false;
      if (p.add.length > 0 && p.usableAfter > input.spec.ipsPerNode.max) return false;
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: removes only released IPs of ours; never the primary nor a foreign ip-config', (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const p = planNode(input);
      const byName = new Map(input.nic.map((c) => [c.name, c]));
      const released = new Set(input.released);
      return p.remove.every((n) => {
        const c = byName.get(n);
        return c !== undefined && !c.primary && n.startsWith(IP_CONFIG_PREFIX) && released.has(c.privateIPAddress!);
      });
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: added names are new, unique, ours; adds respect headroom and batch limit', (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const p = planNode(input);
      const existing = new Set(input.nic.map((c) => c.name.toLowerCase()));
      const unique = new Set(p.add).size === p.add.length;
      const fresh = p.add.every((n) => !existing.has(n) && n.startsWith(IP_CONFIG_PREFIX));
      const headroom = input.subnetFree === undefined || p.add.length <= input.subnetFree;
      const limit = input.maxAdds === undefined || p.add.length <= input.maxAdds;
      return unique && fresh && headroom && limit && (p.add.length === 0 || p.remove.length >= 0);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: the write keeps every ip-config it does not remove, in order, unchanged', (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const p = planNode(input);
      const next = nextIpConfigs(input.nic, p, SUBNET);
      const removed = new Set(p.remove);
      const kept = input.nic.filter((c) => !removed.has(c.name));
      return kept.every((c, i) => next[i] === c) && next.slice(kept.length).every((c) => c.subnetId === SUBNET && !c.primary);
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('property: applying a plan and planning again with the same demand adds nothing more (convergence)', (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      fc.pre(input.subnetFree === undefined && input.maxAdds === undefined);
      const p = planNode(input);
      let k = 1000;
      const applied = nextIpConfigs(input.nic, p, SUBNET).map((c) => (c.privateIPAddress ? c : { ...c, privateIPAddress: ipOf(k++) }));
      const again = planNode({ ...input, nic: applied });
      return again.add.length === 0;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('exhaustive over small pools: invariants, and settled within the removal round and one growth round', (t) => {
  let cases = 0;
  for (const batch of [1, 2, 3, 5, 8]) {
    for (const [min, max] of [[0, 8], [2, 8], [0, 13], [7, 20], [0, 1]] as const) {
      if (batch > max) continue;
      for (let oursCount = 0; oursCount <= 22; oursCount++) {
        for (let releasedCount = 0; releasedCount <= Math.min(oursCount, 6); releasedCount += 2) {
          for (let used = 0; used <= 22; used += 1) {
            for (const pending of [0, 3]) {
              cases++;
              const nic = [primary, ...ours(oursCount)];
              const released = nic.slice(1, 1 + releasedCount).map((c) => c.privateIPAddress!);
              const input: PlanInput = { spec: spec({ min, max, batchSize: batch }), nic, released, demand: { usedIPs: used, pendingIPs: pending } };
              const p = planNode(input);
              const next = nextIpConfigs(nic, p, SUBNET);
              const where = `batch ${batch} min ${min} max ${max} ours ${oursCount} released ${releasedCount} used ${used} pending ${pending}`;
              if (p.remove.length !== releasedCount) return t.fail(`${where}: removed ${p.remove.length}`);
              if (p.waitingForAgent !== releasedCount > 0 || (p.waitingForAgent && p.add.length)) return t.fail(`${where}: added while a release is in progress`);
              // After a removal round the agent drops the released IPs; the next round grows, then it is quiet.
              let round = p;
              let applied = next.map((c, i) => (c.privateIPAddress ? c : { ...c, privateIPAddress: `10.0.9.${i}` }));
              if (p.waitingForAgent) {
                round = planNode({ ...input, nic: applied, released: [] });
                applied = nextIpConfigs(applied, round, SUBNET).map((c, i) => (c.privateIPAddress ? c : { ...c, privateIPAddress: `10.0.8.${i}` }));
              }
              if (applied.length > 256 || round.usableAfter > Math.max(max, round.usableBefore)) return t.fail(`${where}: too many`);
              if (round.add.length > 0 && round.usableAfter !== round.target) return t.fail(`${where}: adds miss the target`);
              if (round.usableAfter < Math.min(min, max)) return t.fail(`${where}: below min`);
              if (planNode({ ...input, nic: applied, released: [] }).add.length) return t.fail(`${where}: not settled`);
            }
          }
        }
      }
    }
  }
  t.true(cases > 10_000, `${cases} cases`);
});
