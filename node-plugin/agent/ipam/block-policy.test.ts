import test from 'ava';
import fc from 'fast-check';
import { blockAddresses, blockOf, chooseBlockReleases, pickBlockAddress, type BlockView } from './block-policy.js';

const BLOCKS = ['10.0.1.0/28', '10.0.1.16/28', '10.0.1.32/28', '10.0.1.48/28'];
const view = (allocated: string[], over: Partial<BlockView> = {}): BlockView => ({
  blocks: BLOCKS, releasedBlocks: new Set(), allocated: new Set(allocated), cooldown: new Map(), now: 0, ...over,
});
const policy = { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 };

test('a new pod goes into the fullest block with room, lowest free address in it', (t) => {
  t.is(pickBlockAddress(view([])), '10.0.1.0', 'all empty: the lowest block');
  t.is(pickBlockAddress(view(['10.0.1.20', '10.0.1.21', '10.0.1.40'])), '10.0.1.16', 'two held beats one held');
  const full16 = blockAddresses(['10.0.1.16/28']);
  t.is(pickBlockAddress(view([...full16, '10.0.1.40'])), '10.0.1.32', 'a full block is skipped');
  t.is(pickBlockAddress(view([], { releasedBlocks: new Set(['10.0.1.0/28']) })), '10.0.1.16', 'never from a released block');
  t.is(pickBlockAddress(view([], { primaryIP: '10.0.1.0' })), '10.0.1.1', 'never the node\'s primary IP');
  t.is(pickBlockAddress(view(blockAddresses(BLOCKS))), undefined, 'every address held');
  t.is(pickBlockAddress(view([], { cooldown: new Map([['10.0.1.0', 5]]), now: 1 })), '10.0.1.1', 'a cooling address waits');
});

test('release gives back only empty blocks, highest first, down to the scaling target', (t) => {
  const input = (allocated: string[]) => ({ ...view(allocated), pending: 0, min: 0, max: 250, policy });
  // 1 pod: target = roundUp(1 + 8, 16) = 16 -> keep one block; the three empty ones go, highest first.
  t.deepEqual(chooseBlockReleases(input(['10.0.1.20'])), ['10.0.1.48/28', '10.0.1.32/28', '10.0.1.0/28']);
  // Pods spread over all four blocks: nothing can go, whatever the target says.
  t.deepEqual(chooseBlockReleases(input(['10.0.1.1', '10.0.1.17', '10.0.1.33', '10.0.1.49'])), []);
  // min keeps blocks: 32 addresses = 2 blocks.
  t.deepEqual(chooseBlockReleases({ ...input([]), min: 32 }), ['10.0.1.48/28', '10.0.1.32/28']);
});

/** Random churn: each step adds a pod (if an address is free) or deletes a random pod. */
const churn = fc.array(fc.record({ add: fc.boolean(), pick: fc.nat() }), { minLength: 1, maxLength: 400 });

test('property: packing keeps pods in at most ceil(peak pods / 16) blocks, so whole blocks empty out under random churn', (t) => {
  const blocks = Array.from({ length: 16 }, (_, i) => `10.0.${Math.floor(i / 16)}.${(i % 16) * 16}/28`);
  fc.assert(fc.property(churn, (steps) => {
    const held = new Set<string>();
    let peak = 0;
    for (const s of steps) {
      if (s.add) {
        const ip = pickBlockAddress({ blocks, releasedBlocks: new Set(), allocated: held, cooldown: new Map(), now: 0 });
        if (ip !== undefined) held.add(ip);
      } else if (held.size > 0) {
        held.delete([...held][s.pick % held.size]!);
      }
      peak = Math.max(peak, held.size);
      const open = new Set([...held].map((ip) => blockOf(ip, blocks)));
      if (open.size > Math.ceil(peak / 16)) return false;
    }
    return true;
  }), { numRuns: 300 });
  t.pass();
});

test('property: the spread-out alternative (emptiest block first) breaks that bound, so the test can fail', (t) => {
  const blocks = ['10.0.0.0/28', '10.0.0.16/28'];
  const held = new Set<string>();
  // Emptiest-first puts two pods in two blocks: two open blocks for a peak of two pods.
  for (let i = 0; i < 2; i++) {
    const free = blocks.map((b) => blockAddresses([b]).filter((ip) => !held.has(ip)));
    const emptiest = free.reduce((a, b) => (b.length > a.length ? b : a));
    held.add(emptiest[0]!);
  }
  t.is(new Set([...held].map((ip) => blockOf(ip, blocks))).size, 2);
  t.true(2 > Math.ceil(2 / 16));
  // Packing puts them in one.
  const packed = new Set<string>();
  for (let i = 0; i < 2; i++) packed.add(pickBlockAddress({ blocks, releasedBlocks: new Set(), allocated: packed, cooldown: new Map(), now: 0 })!);
  t.is(new Set([...packed].map((ip) => blockOf(ip, blocks))).size, 1);
});

test('property: a block listed for release never holds a pod, and nothing is handed out from it afterwards', (t) => {
  const blocks = Array.from({ length: 8 }, (_, i) => `10.0.2.${i * 16}/28`);
  fc.assert(fc.property(churn, (steps) => {
    const held = new Set<string>();
    const released = new Set<string>();
    for (const s of steps) {
      const v = { blocks, releasedBlocks: released, allocated: held, cooldown: new Map<string, number>(), now: 0 };
      if (s.add) {
        const ip = pickBlockAddress(v);
        if (ip !== undefined) {
          if (released.has(blockOf(ip, blocks)!)) return false;
          held.add(ip);
        }
      } else if (held.size > 0) held.delete([...held][s.pick % held.size]!);
      for (const b of chooseBlockReleases({ ...v, pending: 0, min: 0, max: 250, policy })) {
        if ([...held].some((ip) => blockOf(ip, blocks) === b)) return false;
        released.add(b);
      }
    }
    return true;
  }), { numRuns: 300 });
  t.pass();
});
