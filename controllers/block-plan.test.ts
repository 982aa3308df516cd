import test from 'ava';
import fc from 'fast-check';
import { BLOCK_NAME_PREFIX, maxBlocks, nextBlockIpConfigs, planBlocks, type BlockPlanInput } from './block-plan.js';
import type { IpConfigView } from './plan.js';
import { blockOf, chooseBlockReleases, pickBlockAddress, pruneReleasedBlocks } from '../node-plugin/agent/ipam/block-policy.js';

const SUBNET = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods';
const spec = (over: Partial<{ min: number; max: number; batchSize: number; fallback: boolean }> = {}): BlockPlanInput['spec'] => ({
  subnetID: SUBNET,
  ipsPerNode: { min: over.min ?? 0, max: over.max ?? 250 },
  scaling: { batchSize: over.batchSize ?? 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
  ...(over.fallback === undefined ? {} : { fallbackToIndividual: over.fallback }),
});
const primary: IpConfigView = { name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', subnetId: SUBNET };
const blockCfg = (i: number): IpConfigView => ({ name: `${BLOCK_NAME_PREFIX}${i}`, primary: false, privateIPAddress: `10.0.${Math.floor(i / 16)}.${(i % 16) * 16}/28`, subnetId: SUBNET, prefixLength: 28 });
const blocks = (n: number, start = 1) => Array.from({ length: n }, (_, i) => blockCfg(start + i));

test('a fresh node gets one block (batch 16 = one /28)', (t) => {
  const p = planBlocks({ spec: spec(), nic: [primary], releasedBlocks: [] });
  t.deepEqual(p.addBlocks, ['podvnet-b1']);
  t.is(p.targetBlocks, 1);
  t.deepEqual(nextBlockIpConfigs([primary], p, SUBNET).at(-1), { name: 'podvnet-b1', primary: false, subnetId: SUBNET, prefixLength: 28 });
});

test('250 pods at once: 16 blocks in one write, 16 ip-configs for 256 addresses', (t) => {
  const p = planBlocks({ spec: spec(), nic: [primary], releasedBlocks: [], demand: { usedIPs: 0, pendingIPs: 250 } });
  t.is(p.addBlocks.length, 16);
  t.is(p.reason, 'LowerToMax');
  t.is(p.usableAfter, 256);
  t.is(maxBlocks(250), 16);
  t.is(maxBlocks(240), 15);
});

test('only released blocks are removed; that round adds nothing; a block the agent still lists but the NIC lost holds growth', (t) => {
  const nic = [primary, ...blocks(4)];
  const p = planBlocks({ spec: spec(), nic, releasedBlocks: ['10.0.0.48/28', '10.9.9.0/28'], demand: { usedIPs: 40, pendingIPs: 0 } });
  t.deepEqual(p.remove, ['podvnet-b3']);
  t.deepEqual(p.addBlocks, []);
  t.true(p.waitingForAgent);
  const after = planBlocks({ spec: spec(), nic: nextBlockIpConfigs(nic, p, SUBNET), releasedBlocks: ['10.0.0.48/28'], demand: { usedIPs: 40, pendingIPs: 0 } });
  t.deepEqual([after.addBlocks, after.remove], [[], []], 'the agent has not seen the block go yet');
  const grown = planBlocks({ spec: spec(), nic: nextBlockIpConfigs(nic, p, SUBNET), releasedBlocks: [], demand: { usedIPs: 41, pendingIPs: 0 } });
  t.deepEqual(grown.addBlocks, ['podvnet-b3'], 'a free name, lowest first');
});

test('fragmented subnet: free addresses but no aligned /28 is said so and adds nothing; the opt-in falls back to single ip-configs', (t) => {
  const input = { nic: [primary, ...blocks(1)], releasedBlocks: [], demand: { usedIPs: 14, pendingIPs: 0 }, subnetFreeBlocks: 0, subnetFree: 100 };
  const p = planBlocks({ ...input, spec: spec() });
  t.true(p.fragmented);
  t.deepEqual([p.addBlocks, p.addSingles], [[], []]);
  t.is(p.deferredBlocks, 1);
  const f = planBlocks({ ...input, spec: spec({ fallback: true }) });
  t.is(f.addSingles.length, 16);
  t.is(f.addSingles[0], 'podvnet-1');
  t.is(f.usableAfter, 32);
  // A full subnet is not fragmented.
  t.false(planBlocks({ ...input, subnetFree: 0, spec: spec() }).fragmented);
  // The fallback singles count: next round the target is met.
  const next = nextBlockIpConfigs(input.nic, f, SUBNET).map((c, i) => (c.prefixLength === undefined && !c.primary ? { ...c, privateIPAddress: `10.0.9.${i}` } : c));
  t.deepEqual(planBlocks({ ...input, nic: next, spec: spec({ fallback: true }) }).addSingles, []);
});

const arbInput = fc.record({
  min: fc.integer({ min: 0, max: 15 }).map((b) => b * 16),
  maxBlocks: fc.integer({ min: 1, max: 16 }),
  batchBlocks: fc.integer({ min: 1, max: 4 }),
  onNic: fc.integer({ min: 0, max: 20 }),
  foreign: fc.integer({ min: 0, max: 240 }),
  releasedMask: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
  used: fc.integer({ min: 0, max: 256 }),
  pending: fc.integer({ min: 0, max: 250 }),
  freeBlocks: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
  maxAdds: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
  fallback: fc.boolean(),
});

test('property: never above the limits (256 ip-configs, ceil(max/16) blocks), and only released blocks are removed', (t) => {
  fc.assert(fc.property(arbInput, (a) => {
    const max = Math.min(250, a.maxBlocks * 16);
    const min = Math.min(a.min, max - (max % 16));
    const batch = Math.min(a.batchBlocks * 16, max - (max % 16) || 16);
    const foreign: IpConfigView[] = Array.from({ length: Math.min(a.foreign, 255 - a.onNic) }, (_, i) => ({ name: `other-${i}`, primary: false, privateIPAddress: `10.9.${i >> 8}.${i & 255}`, subnetId: SUBNET }));
    const nic = [primary, ...foreign, ...blocks(a.onNic)];
    const released = blocks(a.onNic).filter((_, i) => a.releasedMask[i]).map((c) => c.privateIPAddress!);
    const p = planBlocks({
      spec: spec({ min, max, batchSize: batch, fallback: a.fallback }), nic, releasedBlocks: released,
      demand: { usedIPs: a.used, pendingIPs: a.pending }, subnetFreeBlocks: a.freeBlocks, subnetFree: 50, maxAdds: a.maxAdds,
    });
    const next = nextBlockIpConfigs(nic, p, SUBNET);
    const blocksAfter = next.filter((c) => c.prefixLength !== undefined).length;
    const removedOk = p.remove.every((name) => released.includes(nic.find((c) => c.name === name)!.privateIPAddress!));
    const keptFixed = next.includes(primary) && foreign.every((f) => next.includes(f));
    return next.length <= 256 && blocksAfter <= Math.max(a.onNic, maxBlocks(max)) && removedOk && keptFixed &&
      (a.freeBlocks === undefined || p.addBlocks.length <= a.freeBlocks) && (a.maxAdds === undefined || p.addBlocks.length + p.addSingles.length <= a.maxAdds);
  }), { numRuns: 500 });
  t.pass();
});

/**
 * Agent and controller together, rounds of random pod churn: the agent packs and releases per block, the
 * controller plans, "Azure" gives each new block the lowest free aligned /28 (often one just freed).
 */
test('property: under random churn a block with a held address is never removed, and the node never holds more than 16 blocks', (t) => {
  const step = fc.record({ adds: fc.integer({ min: 0, max: 60 }), dels: fc.integer({ min: 0, max: 60 }), seed: fc.nat() });
  fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
    let nic: IpConfigView[] = [primary];
    const held = new Set<string>();
    let released = new Set<string>();
    const azureAssign = (cfgs: IpConfigView[]): IpConfigView[] => {
      const taken = new Set(cfgs.map((c) => c.privateIPAddress).filter(Boolean));
      return cfgs.map((c) => {
        if (c.privateIPAddress !== undefined) return c;
        for (let i = 1; ; i++) {
          const prefix = `10.0.${Math.floor(i / 16)}.${(i % 16) * 16}/28`;
          if (!taken.has(prefix)) { taken.add(prefix); return { ...c, privateIPAddress: prefix }; }
        }
      });
    };
    for (const s of steps) {
      const nodeBlocks = nic.filter((c) => c.prefixLength !== undefined).map((c) => c.privateIPAddress!);
      released = pruneReleasedBlocks(released, nodeBlocks);
      for (let i = 0; i < s.dels && held.size > 0; i++) held.delete([...held][(s.seed + i * 7) % held.size]!);
      let pending = 0;
      for (let i = 0; i < s.adds; i++) {
        if (held.size >= 250) break;
        const ip = pickBlockAddress({ blocks: nodeBlocks, releasedBlocks: released, allocated: held, cooldown: new Map(), now: 0 });
        if (ip === undefined) { pending = s.adds - i; break; }
        held.add(ip);
      }
      pending = Math.min(pending, 250 - held.size);
      for (const b of chooseBlockReleases({ blocks: nodeBlocks, releasedBlocks: released, allocated: held, cooldown: new Map(), now: 0, pending, min: 0, max: 250, policy: spec().scaling })) released.add(b);
      const p = planBlocks({ spec: spec(), nic, releasedBlocks: [...released], demand: { usedIPs: held.size, pendingIPs: pending } });
      for (const name of p.remove) {
        const prefix = nic.find((c) => c.name === name)!.privateIPAddress!;
        if ([...held].some((ip) => blockOf(ip, [prefix]) !== undefined)) return false;
      }
      nic = azureAssign(nextBlockIpConfigs(nic, p, SUBNET));
      if (nic.filter((c) => c.prefixLength !== undefined).length > 16) return false;
    }
    return true;
  }), { numRuns: 100 });
  t.pass();
});
