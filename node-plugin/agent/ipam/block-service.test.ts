import test from 'ava';
import { AgentAddressService, NoFreeAddressError } from '../address-service.js';
import { NODE_SETTINGS, recordWithBlocks } from '../testing/records.js';
import { blockOf } from './block-policy.js';
import { MemoryStore } from './store.js';

/** The address service on a Block pool's record: status.blocks, fullest block first, whole-block release. */

const node = NODE_SETTINGS;
const record = recordWithBlocks;
const pool = { snat: { enabled: true, excludeCIDRs: [] }, ipsPerNode: { min: 0, max: 64 }, scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 }, allocation: 'Block' as const };


const B = ['10.1.0.16/28', '10.1.0.32/28', '10.1.0.48/28'];
const owner = (i: number) => ({ containerId: `c${i}`, ifName: 'eth0', runtime: 'cni' as const });

test('addresses come from the blocks, the fullest one first; freed space in a fuller block is reused before an emptier one', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0 });
  svc.setRecord(record(B.slice(0, 2)), pool);
  t.true(svc.blockMode());
  t.is(svc.freeCount(), 32);
  t.is(svc.podAddresses().length, 32);
  const ips: string[] = [];
  for (let i = 0; i < 20; i++) ips.push((await svc.acquire(owner(i))).ip);
  t.deepEqual(ips.map((ip) => blockOf(ip, B)), [...Array(16).fill(B[0]), ...Array(4).fill(B[1])]);
  // one pod leaves each block: the next pod goes to the fuller first block (15 held) rather than the second (3)
  await svc.release(owner(0));
  await svc.release(owner(19));
  t.is(blockOf((await svc.acquire(owner(100))).ip, B), B[0]);
  t.is(blockOf((await svc.acquire(owner(101))).ip, B), B[1]);
  t.is(svc.demand().usedIPs, 20);
});

test('a block holding the primary IP never hands the primary out', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0 });
  svc.setRecord(record(['10.1.0.0/28']), pool);
  const got: string[] = [];
  for (let i = 0; i < 15; i++) got.push((await svc.acquire(owner(i))).ip);
  t.false(got.includes('10.1.0.4'));
  await t.throwsAsync(svc.acquire(owner(99)), { instanceOf: NoFreeAddressError, message: /15 of 15 in use/ });
});

test('idle blocks are released whole, highest first, kept across a restart, never handed out, and forgotten once the NIC drops them', async (t) => {
  const store = new MemoryStore();
  let svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(B), pool);
  const held = (await svc.acquire(owner(1))).ip;
  t.is(blockOf(held, B), B[0]);
  // 1 used, batch 16: the controller's math keeps one block; the two empty ones go, never the held one
  t.deepEqual(await svc.planReleases(), [], 'no single IP released in Block mode');
  t.deepEqual(svc.releasedBlockList(), B.slice(1));
  t.deepEqual(store.committed.releasedBlocks?.sort(), B.slice(1), 'durable before it is published');
  for (let i = 2; i < 17; i++) t.is(blockOf((await svc.acquire(owner(i))).ip, B), B[0]);
  await t.throwsAsync(svc.acquire(owner(17)), { instanceOf: NoFreeAddressError }, 'released blocks are not handed out from');

  // restart: the released blocks are still released
  await store.unlock();
  svc = new AgentAddressService({ store, node, cooldownMs: 0 });
  svc.restore(await store.lock());
  svc.setRecord(record(B, B.slice(1)), pool);
  t.deepEqual(svc.releasedBlockList(), B.slice(1));
  // the controller removed them: the list empties
  svc.setRecord(record(B.slice(0, 1)), pool);
  t.deepEqual(svc.releasedBlockList(), []);
});

test('a block the record lists as released stays released even when the state lost it, unless a pod holds one of its addresses', async (t) => {
  const svc = new AgentAddressService({ store: new MemoryStore(), node, cooldownMs: 0 });
  svc.setRecord(record(B), pool);
  const ip = (await svc.acquire(owner(1))).ip;
  svc.setRecord(record(B, [B[0]!, B[2]!]), pool);
  t.deepEqual(svc.releasedBlockList(), [B[2]], `not ${B[0]}: ${ip} is held there`);
});
