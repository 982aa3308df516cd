/**
 * Controller benchmark: N emulated nodes converge from zero against both emulators, with ARM's write
 * budget on (the Azure emulator throttles like ARM: 200 writes burst + 10/s, 250 reads + 25/s).
 *
 * The reference is the budget itself: with one write per node, N nodes need at least (N - 200) / 10 s under
 * ARM's bucket, and more once the NIC writes pass the Network RP's 1,000 per 300 s (the emulator enforces
 * both; scale-set instances are Compute writes and do not count there): write-budget.ts computes the bound.
 * The benchmark prints writes used per node, reads used, 429s received, time to converge and its ratio
 * to that bound (1.00 would be a controller that spends the budget perfectly).
 *
 * --allocation Individual,Block runs each mode in turn, side by side in one table: in Block mode the pool asks
 * for /28 blocks (batch 16 = one block per node, one NIC write each), served by the same live controller.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/controller-bench.ts [--nodes 1000,5000] [--vmss-share 0.1] [--batch 16] [--allocation Individual,Block]
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startWorld } from '../../controllers/testing/harness.js';
import { writeBoundSeconds } from './write-budget.js';

const args = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000,5000' },
    'vmss-share': { type: 'string', default: '0.1' },
    batch: { type: 'string', default: '16' },
    workers: { type: 'string', default: '64' },
    allocation: { type: 'string', default: 'Individual' },
  },
}).values;
const opts = z.object({
  nodes: z.array(z.coerce.number().int().min(1).max(20_000)).min(1),
  vmssShare: z.coerce.number().min(0).max(1),
  batch: z.coerce.number().int().min(1).max(250),
  workers: z.coerce.number().int().min(1).max(1024),
  allocation: z.array(z.enum(['Individual', 'Block'], { message: 'must be Individual or Block' })).min(1),
}).refine((o) => !o.allocation.includes('Block') || o.batch % 16 === 0, { path: ['batch'], message: 'with Block, batch counts addresses in whole /28 blocks: a multiple of 16' })
  .parse({ nodes: args.nodes!.split(','), vmssShare: args['vmss-share'], batch: args.batch, workers: args.workers, allocation: args.allocation!.split(',') });
type Allocation = 'Individual' | 'Block';

const WRITE_BURST = 200;
const WRITE_RATE = 10;

interface Row { allocation: Allocation; ipConfigsPerNode: number; nodes: number; vmss: number; seconds: number; writes: number; reads: number; throttled: number; bound: number; ratio: number }

async function runOnce(n: number, allocation: Allocation): Promise<Row> {
  const vmss = Math.round(n * opts.vmssShare);
  const vms = n - vmss;
  // enough addresses for every node's batch (and in Block mode the /28s the primaries spoil, and the two reserved)
  const prefix = Math.ceil(Math.log2(n * (opts.batch + 1) + (allocation === 'Block' ? 64 : 16)));
  const perNode = allocation === 'Block' ? opts.batch / 16 : opts.batch;
  const w = await startWorld({
    scenario: {
      vnets: [{ name: 'bench-vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: `10.0.0.0/${Math.min(24, 32 - prefix)}` }] }],
      vms: vms ? [{ count: vms }] : [],
      scaleSets: vmss ? [{ name: 'bench-ss', count: vmss }] : [],
    },
    nodeLabels: () => ({ 'podvnet.io/bench': 'yes' }),
    startController: false,
    controller: { workers: opts.workers, poolStatusDelayMs: 2000, subnetFullBackoffMs: 30_000 },
    budget: { writes: { capacity: WRITE_BURST, refillPerSecond: WRITE_RATE } },
    pollIntervalMs: 50,
  });
  try {
    await w.startController();
    const subnet = Object.values(w.subnets)[0]!;
    w.azure.resetCalls();
    w.azure.resetThrottling();
    const start = Date.now();
    await w.createPool('bench', {
      nodeSelector: { matchLabels: { 'podvnet.io/bench': 'yes' } },
      subnetID: subnet,
      scaling: { batchSize: opts.batch },
      ...(allocation === 'Block' ? { allocation: 'Block', ipsPerNode: { min: 0, max: 256 - 16 } } : {}),
    });
    const nics = [...w.azure.state.nics.values()];
    const done = () => nics.filter((nic) => nic.ipConfigs.filter((c) => c.name.startsWith('podvnet-')).length >= perNode).length;
    let last = 0;
    for (;;) {
      const d = done();
      if (d === n) break;
      if (Date.now() - last > 10_000) {
        last = Date.now();
        const c = w.azure.calls();
        process.stderr.write(`  ${n} nodes: ${d} converged after ${((Date.now() - start) / 1000).toFixed(0)} s (writes ${c.byKind['nic.put'] ?? 0}+${c.byKind['vmssvm.put'] ?? 0}, 429s ${c.throttled})\n`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (Date.now() - start) / 1000;
    const c = w.azure.calls();
    const writes = (c.byKind['nic.put'] ?? 0) + (c.byKind['vmssvm.put'] ?? 0);
    const reads = Object.entries(c.byKind).filter(([k]) => /\.(get|list|listall)$/.test(k)).reduce((a, [, v]) => a + v, 0);
    const bound = writeBoundSeconds(n, vms).bothSeconds;
    process.stderr.write(`  calls by kind: ${JSON.stringify(c.byKind)}\n`);
    return { allocation, ipConfigsPerNode: perNode, nodes: n, vmss, seconds, writes, reads, throttled: c.throttled, bound, ratio: bound > 0 ? seconds / bound : NaN };
  } finally {
    await w.close();
  }
}

const rows: Row[] = [];
for (const n of opts.nodes) {
  for (const allocation of opts.allocation) {
    process.stderr.write(`converging ${n} nodes, ${allocation} (batch ${opts.batch}, ${Math.round(opts.vmssShare * 100)}% scale-set instances)...\n`);
    rows.push(await runOnce(n, allocation));
  }
}
console.log('allocation  ip-configs/node  nodes  vmss  writes  writes/node  reads  429s  seconds  bound(s)  ratio');
for (const r of rows) {
  console.log([
    r.allocation.padEnd(10), String(r.ipConfigsPerNode).padStart(16),
    String(r.nodes).padStart(5), String(r.vmss).padStart(5), String(r.writes).padStart(7), (r.writes / r.nodes).toFixed(2).padStart(12),
    String(r.reads).padStart(6), String(r.throttled).padStart(5), r.seconds.toFixed(1).padStart(8), r.bound.toFixed(1).padStart(9), r.ratio.toFixed(2).padStart(6),
  ].join(' '));
}
process.exit(0);
