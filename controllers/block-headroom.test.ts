import test from 'ava';
import fc from 'fast-check';
import { blockHeadroom } from './block-headroom.js';

const sub = '/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces';
const single = (i: number) => `${sub}/nic${i}/ipConfigurations/ipconfig1`;
const block = (i: number) => `${sub}/nic${i}/ipConfigurations/podvnet-b${i}`;

test('an empty /24: 251 free addresses, 14 free blocks (the first and last /28 hold reserved addresses)', (t) => {
  t.deepEqual(blockHeadroom(256, []), { freeIPs: 251, freeBlocks: 14 });
});

test('a block counts 16 addresses and one block; a single counts one address', (t) => {
  t.deepEqual(blockHeadroom(256, [block(1), block(2)]), { freeIPs: 251 - 32, freeBlocks: 12 });
  // 12 singles fit in the first block's spare addresses; the 13th spoils the second block
  t.deepEqual(blockHeadroom(256, Array.from({ length: 12 }, (_, i) => single(i))), { freeIPs: 239, freeBlocks: 14 });
  t.deepEqual(blockHeadroom(256, Array.from({ length: 13 }, (_, i) => single(i))), { freeIPs: 238, freeBlocks: 13 });
});

test('a /27 has free addresses but no block that can ever be free', (t) => {
  t.deepEqual(blockHeadroom(32, [single(0)]), { freeIPs: 26, freeBlocks: 0 });
});

test('never negative, never more blocks than the free addresses hold', (t) => {
  fc.assert(fc.property(fc.integer({ min: 4, max: 16 }), fc.nat(300), fc.nat(300), (bits, singles, blocks) => {
    const size = 2 ** bits;
    const ids = [...Array.from({ length: singles }, (_, i) => single(i)), ...Array.from({ length: blocks }, (_, i) => block(i))];
    const h = blockHeadroom(size, ids);
    return h.freeIPs >= 0 && h.freeBlocks >= 0 && h.freeBlocks * 16 <= h.freeIPs;
  }));
  t.pass();
});
