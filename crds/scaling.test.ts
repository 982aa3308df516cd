import test from 'ava';
import fc from 'fast-check';
import { targetIPs, type ScalingInput, type ScalingPolicy } from './scaling.js';

const thresholds: ScalingPolicy = { batchSize: 10, requestThresholdPercent: 50, releaseThresholdPercent: 150 };
const base = { pending: 0, min: 0, max: 250, policy: thresholds };

test('an empty node grows by one batch when a pod is waiting', (t) => {
  t.deepEqual(targetIPs({ ...base, usable: 0, used: 0, pending: 1 }), { target: 10, reason: 'Grow', capped: false });
});

test('grows before running dry: fewer free than half a batch asks for the next batch', (t) => {
  t.is(targetIPs({ ...base, usable: 10, used: 5 }).target, 10, '5 free is exactly the threshold: steady');
  t.deepEqual(targetIPs({ ...base, usable: 10, used: 6 }), { target: 20, reason: 'Grow', capped: false });
});

test('shrinks only past the release threshold, and to the same point growth aims at', (t) => {
  t.is(targetIPs({ ...base, usable: 30, used: 15 }).reason, 'Steady', '15 free = 150% of a batch: not above it');
  t.deepEqual(targetIPs({ ...base, usable: 30, used: 14 }), { target: 20, reason: 'Shrink', capped: false });
  t.deepEqual(targetIPs({ ...base, usable: 40, used: 0 }), { target: 10, reason: 'Shrink', capped: false });
});

test('min and max bound the target, and max reports demand it cannot meet', (t) => {
  t.deepEqual(targetIPs({ ...base, min: 32, usable: 0, used: 0 }), { target: 32, reason: 'RaiseToMin', capped: false });
  t.deepEqual(targetIPs({ ...base, max: 25, usable: 20, used: 19 }), { target: 25, reason: 'LowerToMax', capped: false });
  t.deepEqual(targetIPs({ ...base, max: 25, usable: 25, used: 25, pending: 3 }), { target: 25, reason: 'LowerToMax', capped: true });
});

test('the NIC capacity caps the target below max', (t) => {
  t.deepEqual(targetIPs({ ...base, nicCapacity: 12, usable: 10, used: 9 }), { target: 12, reason: 'LowerToMax', capped: false });
});

test('warm mode keeps warmIPs free, rounded up to whole batches, with one batch of dead band', (t) => {
  const warm = { ...base, policy: { ...thresholds, batchSize: 4, warmIPs: 6 } };
  t.deepEqual(targetIPs({ ...warm, usable: 0, used: 0 }), { target: 8, reason: 'Grow', capped: false });
  t.is(targetIPs({ ...warm, usable: 8, used: 2 }).reason, 'Steady', '6 free = warm');
  t.deepEqual(targetIPs({ ...warm, usable: 8, used: 3 }), { target: 12, reason: 'Grow', capped: false });
  t.is(targetIPs({ ...warm, usable: 20, used: 10 }).reason, 'Steady', '10 free = warm + batch');
  t.deepEqual(targetIPs({ ...warm, usable: 20, used: 9 }), { target: 16, reason: 'Shrink', capped: false });
});

const arbitraryInput = fc
  .record({
    batchSize: fc.integer({ min: 1, max: 64 }),
    requestThresholdPercent: fc.integer({ min: 1, max: 100 }),
    releaseGap: fc.integer({ min: 1, max: 900 }),
    warmIPs: fc.option(fc.integer({ min: 0, max: 64 }), { nil: undefined }),
    min: fc.integer({ min: 0, max: 250 }),
    max: fc.integer({ min: 1, max: 250 }),
    nicCapacity: fc.integer({ min: 0, max: 255 }),
    used: fc.integer({ min: 0, max: 250 }),
    pending: fc.integer({ min: 0, max: 50 }),
    extra: fc.integer({ min: 0, max: 255 }),
  })
  .filter((r) => r.min <= r.max)
  .map((r): ScalingInput => ({
    usable: Math.min(255, r.used + r.extra),
    used: r.used,
    pending: r.pending,
    min: r.min,
    max: r.max,
    nicCapacity: r.nicCapacity,
    policy: {
      batchSize: r.batchSize,
      requestThresholdPercent: r.requestThresholdPercent,
      releaseThresholdPercent: r.requestThresholdPercent + r.releaseGap,
      warmIPs: r.warmIPs,
    },
  }));

test('property: the target never exceeds max, 250 pods, or the NIC capacity', (t) => {
  fc.assert(fc.property(arbitraryInput, (input) => {
    const { target } = targetIPs(input);
    return target >= 0 && target <= input.max && target <= 250 && target <= input.nicCapacity!;
  }));
  t.pass();
});

test('property: the target is at least min whenever the NIC can carry min', (t) => {
  fc.assert(fc.property(arbitraryInput, (input) => {
    const { target } = targetIPs(input);
    return input.nicCapacity! < input.min || target >= input.min;
  }));
  t.pass();
});

test('property: it never shrinks below what pods hold plus those waiting, unless capped', (t) => {
  fc.assert(fc.property(arbitraryInput, (input) => {
    const d = targetIPs(input);
    return d.capped || d.target >= Math.min(input.usable, input.used + input.pending) || d.reason === 'LowerToMax';
  }));
  t.pass();
});

test('property: a reached target is a fixed point (no flapping)', (t) => {
  fc.assert(fc.property(arbitraryInput, (input) => {
    const first = targetIPs(input);
    const second = targetIPs({ ...input, usable: first.target });
    return second.target === first.target;
  }));
  t.pass();
});

test('property: when unbounded, a waiting pod always makes it grow and growth comes in whole batches', (t) => {
  fc.assert(fc.property(arbitraryInput, (input) => {
    const open = { ...input, min: 0, max: 250, nicCapacity: 255, usable: input.used };
    const d = targetIPs({ ...open, pending: input.pending + 1 });
    const need = input.used + input.pending + 1;
    if (need > 250) return d.capped;
    return d.target >= Math.min(250, need) && (d.target === 250 || d.target % input.policy.batchSize === 0);
  }));
  t.pass();
});
