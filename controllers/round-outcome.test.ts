import test from 'ava';
import fc from 'fast-check';
import type { AzureFailure } from './azure-errors.js';
import {
  blockReady, individualReady, nextRefusal, nicWriteFailed, NIC_NOT_FOUND_REQUEUE_MS, refusalGate, resolveMachine, type NicWriteFailureInput, type Refusal,
} from './round-outcome.js';

const SUB = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vn/subnets/';

const failure: fc.Arbitrary<AzureFailure> = fc.oneof(
  fc.record({ kind: fc.constant('Throttled' as const), retryAfterMs: fc.nat(60_000), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('PreconditionFailed' as const), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('Conflict' as const), retryAfterMs: fc.nat(60_000), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('SubnetFull' as const), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('SubnetNotAllowedOnNIC' as const), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('NotFound' as const), code: fc.string(), message: fc.string() }),
  fc.record({ kind: fc.constant('Other' as const), status: fc.option(fc.integer({ min: 400, max: 599 }), { nil: undefined }), code: fc.string(), message: fc.string(), retryable: fc.boolean() }),
);

const subnetName = fc.constantFrom('nodes', 'pods', 'PODS');
const refusal: fc.Arbitrary<Refusal | undefined> = fc.option(
  fc.record({ subnetId: subnetName.map((n) => SUB + n), until: fc.nat(2_000_000), count: fc.integer({ min: 1, max: 20 }), message: fc.string() }),
  { nil: undefined },
);

const input: fc.Arbitrary<NicWriteFailureInput> = fc.record({
  failure,
  action: fc.constantFrom('AddIPs' as const, 'AddBlocks' as const),
  previous: refusal,
  nic: fc.record({
    nicId: fc.constant('/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic-0'),
    ipConfigs: fc.constant([{ name: 'ipconfig1', primary: true, subnetId: `${SUB}nodes`, privateIPAddress: '10.240.0.4' }]),
  }),
  pool: fc.record({ name: fc.constantFrom('a', 'b'), subnetId: subnetName.map((n) => SUB + n) }),
  now: fc.integer({ min: 0, max: 1_000_000 }),
  backoff: fc.record({ baseMs: fc.integer({ min: 1, max: 600_000 }), resyncMs: fc.integer({ min: 1, max: 3_600_000 }) }),
});

test('property: a failed NIC write maps the same way whichever round made it; only the event action differs', (t) => {
  fc.assert(fc.property(input, (i) => {
    const v = nicWriteFailed(i);
    const kind = i.failure.kind;
    if (kind === 'SubnetFull') return v === 'subnetFull';
    if (kind !== 'SubnetNotAllowedOnNIC' && kind !== 'NotFound') return v === 'azureFailed';
    if (typeof v === 'string') return false;
    // The same failure told under the other round's action decides everything else alike.
    const other = nicWriteFailed({ ...i, action: i.action === 'AddIPs' ? 'AddBlocks' : 'AddIPs' });
    if (typeof other === 'string' || other.warning.action === i.action) return false;
    if (JSON.stringify({ ...other, warning: { ...other.warning, action: i.action } }) !== JSON.stringify(v)) return false;
    if (v.ready.status !== 'False' || v.warning.action !== i.action || v.ready.reason !== v.warning.reason) return false;
    if (kind === 'NotFound') {
      return v.ready.reason === 'NICNotFound' && v.ready.message === i.failure.message && v.warning.note === i.failure.message
        && v.requeueAfterMs === NIC_NOT_FOUND_REQUEUE_MS && v.forgetNicHint && !v.poolSoon && v.refusal === undefined;
    }
    const r = v.refusal;
    return r !== undefined && v.ready.reason === 'SubnetNotAllowedOnNIC' && v.ready.message === r.message && v.warning.note === r.message
      && v.requeueAfterMs === r.until - i.now && v.poolSoon && !v.forgetNicHint && r.message.includes(i.failure.message);
  }), { numRuns: 2000 });
  t.pass();
});

test('property: a refusal waits from base, doubling per refusal of the same subnet, never past max(base, resync); another subnet starts afresh', (t) => {
  fc.assert(fc.property(input, (i) => {
    const r = nextRefusal({ ...i, azureMessage: 'IpConfigurationsOnSameNicCannotUseDifferentSubnets' });
    const { baseMs, resyncMs } = i.backoff;
    const wait = r.until - i.now;
    const same = i.previous !== undefined && i.previous.subnetId.toLowerCase() === i.pool.subnetId.toLowerCase();
    const count = same ? i.previous!.count + 1 : 1;
    return r.count === count && r.subnetId === i.pool.subnetId
      && wait === Math.min(baseMs * 2 ** (count - 1), Math.max(baseMs, resyncMs))
      && wait >= Math.min(baseMs, Math.max(baseMs, resyncMs)) && wait <= Math.max(baseMs, resyncMs)
      // says what to do: the NIC's primary subnet, the pool's subnet, and when the next try is
      && r.message.includes(`${SUB}nodes`) && r.message.includes(i.pool.subnetId) && r.message.includes(new Date(r.until).toISOString());
  }), { numRuns: 2000 });
  t.pass();
});

test('property: the refusal gate holds a node back only for a refusal of its pool\'s subnet, until it runs out', (t) => {
  fc.assert(fc.property(refusal, subnetName, fc.nat(2_000_000), (r, pool, now) => {
    const g = refusalGate(r, SUB + pool, now);
    if (!r) return g === 'none';
    if (r.subnetId.toLowerCase() !== (SUB + pool).toLowerCase()) return g === 'stale';
    return g === (now < r.until ? 'wait' : 'none');
  }));
  t.pass();
});

const counts = fc.record({
  add: fc.nat(64).map((n) => Array.from({ length: n }, (_, i) => `podvnet-${i}`)),
  deferred: fc.nat(64), capped: fc.boolean(), target: fc.nat(256), usableAfter: fc.nat(256),
});

test('property: an Individual node is Ready exactly when nothing is held back and the subnet has room; the reason says which', (t) => {
  fc.assert(fc.property(counts, fc.boolean(), (plan, full) => {
    const r = individualReady(plan, full ? { message: 'no free addresses left' } : undefined);
    const expected = full ? 'SubnetFull' : plan.deferred > 0 ? 'Growing' : plan.capped ? 'AtLimit' : 'Synced';
    return r.type === 'Ready' && r.reason === expected && (r.status === 'True') === (!full && plan.deferred === 0)
      && (!full || r.message.startsWith('no free addresses left'));
  }));
  t.pass();
});

test('property: a Block node without an aligned /28 (and no fallback) says NoAlignedBlock while it wants more; else as Individual', (t) => {
  const blockPlan = fc.record({
    addBlocks: fc.nat(16).map((n) => Array.from({ length: n }, (_, i) => `podvnet-b${i}`)),
    deferredBlocks: fc.nat(16), capped: fc.boolean(), targetBlocks: fc.nat(16), usableAfter: fc.nat(256),
  });
  fc.assert(fc.property(blockPlan, fc.nat(16), fc.option(fc.constant('no aligned /28 left'), { nil: undefined }), fc.boolean(), fc.nat(4), (plan, blocksNow, fragmented, fallback, refusedBlocks) => {
    const r = blockReady({ plan, blocksNow, fragmented, fallbackToIndividual: fallback, refusedBlocks });
    const wanted = plan.deferredBlocks + refusedBlocks;
    const expected = fragmented !== undefined && !fallback && wanted > 0 ? 'NoAlignedBlock'
      : plan.deferredBlocks > 0 ? 'Growing' : plan.capped ? 'AtLimit' : 'Synced';
    return r.reason === expected && (r.status === 'True') === (expected === 'AtLimit' || expected === 'Synced')
      && (expected !== 'NoAlignedBlock' || r.message.endsWith(`${wanted} more wanted: no aligned /28 left`));
  }));
  t.pass();
});

test('resolveMachine: an Azure providerID is a machine; anything else is the reason why not', (t) => {
  t.like(resolveMachine('azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-0'), { machine: { kind: 'vm', name: 'vm-0' } });
  t.regex((resolveMachine('kind://docker/onprem') as { problem: string }).problem, /not an Azure one/);
  t.regex((resolveMachine(undefined) as { problem: string }).problem, /no spec.providerID/);
});
