import test from 'ava';
import fc from 'fast-check';
import { fragmentedCondition, modeConflictCondition, modeConflicts, type PoolModeView } from './block-conditions.js';

const S1 = '/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a';
const S2 = S1.replace(/a$/, 'b');

test('the later pool on a subnet with the other mode is in conflict; same mode or another subnet is not', (t) => {
  const pools: PoolModeView[] = [
    { name: 'blocks', subnetID: S1, allocation: 'Block', creationTimestamp: '2026-01-01T00:00:00Z' },
    { name: 'singles', subnetID: S1.toUpperCase().replace('SUBSCRIPTIONS', 'subscriptions'), allocation: 'Individual', creationTimestamp: '2026-01-02T00:00:00Z' },
    { name: 'more-blocks', subnetID: S1, allocation: 'Block', creationTimestamp: '2026-01-03T00:00:00Z' },
    { name: 'elsewhere', subnetID: S2, allocation: 'Individual', creationTimestamp: '2026-01-01T00:00:00Z' },
  ];
  const c = modeConflicts(pools);
  t.deepEqual([...c.keys()], ['singles']);
  t.deepEqual(c.get('singles'), { pool: 'singles', winner: 'blocks', winnerMode: 'Block', subnetID: pools[1]!.subnetID });
  const cond = modeConflictCondition(c.get('singles'), 'Individual');
  t.is(cond.status, 'True');
  t.regex(cond.message, /already used by NodeIPPool blocks with allocation Block; this pool \(allocation Individual\) is not served/);
  t.is(modeConflictCondition(undefined, 'Block').status, 'False');
});

test('property: on every subnet the pools served all share the oldest pool\'s mode, and only conflicting pools are refused', (t) => {
  const pool = fc.record({ name: fc.string({ minLength: 1, maxLength: 4 }), subnet: fc.constantFrom(S1, S2), block: fc.boolean(), day: fc.integer({ min: 1, max: 9 }) });
  fc.assert(fc.property(fc.uniqueArray(pool, { selector: (p) => p.name, maxLength: 12 }), (raw) => {
    const pools: PoolModeView[] = raw.map((p) => ({ name: p.name, subnetID: p.subnet, allocation: p.block ? 'Block' : 'Individual', creationTimestamp: `2026-01-0${p.day}T00:00:00Z` }));
    const c = modeConflicts(pools);
    for (const s of [S1, S2]) {
      const served = pools.filter((p) => p.subnetID === s && !c.has(p.name));
      if (new Set(served.map((p) => p.allocation)).size > 1) return false;
      const refused = pools.filter((p) => p.subnetID === s && c.has(p.name));
      if (refused.some((p) => served.some((q) => q.allocation === p.allocation))) return false;
    }
    return true;
  }));
  t.pass();
});

test('fragmentation names the subnet, the free count and that no block fits, and the way out', (t) => {
  const off = fragmentedCondition(S1, 212, false);
  t.deepEqual([off.type, off.status, off.reason], ['SubnetExhausted', 'True', 'NoAlignedBlock']);
  t.regex(off.message, new RegExp(`subnet ${S1.replace(/\//g, '\\/')} has 212 free addresses but no free aligned /28 block fits; free whole /28s`));
  t.regex(fragmentedCondition(S1, 212, true).message, /adding single ip-configs instead \(fallbackToIndividual\)/);
});
