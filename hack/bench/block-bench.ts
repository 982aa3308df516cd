/**
 * Block mode beside Individual mode, in one run.
 *
 * 1. Pods that fit in one VNet: the emulator's own state (EmulatorState, the rules the HTTP API enforces,
 *    without HTTP) fills a VNet node by node, 250 pods each, until Azure's 65,536 private-IP limit refuses
 *    the next NIC write. Individual: one ip-config per pod. Block: 16 /28 blocks per node, each counted once.
 * 2. NIC writes and ip-configs per node at 250 pods: the controller's planners (planNode, planBlocks) and
 *    the agent's policies, one node, with pods arriving all at once and one by one.
 * 3. Time to converge 1,000 nodes from zero: the writes of (2) scheduled on a virtual clock through the
 *    emulator's own limiters (ARM write bucket 200 + 10/s, Network RP window 1,000 per 300 s): the bound
 *    each budget sets alone, and both together (the earliest time the last write may go). A schedule,
 *    not a live controller run: the time a controller that spends both budgets perfectly would reach.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/block-bench.ts [--nodes 4000] [--converge 1000]
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { BLOCK_SIZE, MAX_PODS_PER_NODE } from '../../crds/api/group.js';
import { EmulatorState, AZURE_MAX_PRIVATE_IPS_PER_VNET, type DesiredIpConfig } from '../azure-emulator/state.js';
import { AzureError } from '../azure-emulator/errors.js';
import { writeBoundSeconds } from './write-budget.js';
import { planNode, nextIpConfigs, type IpConfigView } from '../../controllers/plan.js';
import { planBlocks, nextBlockIpConfigs } from '../../controllers/block-plan.js';
import { pickBlockAddress } from '../../node-plugin/agent/ipam/block-policy.js';

const args = parseArgs({ options: { nodes: { type: 'string', default: '4000' }, converge: { type: 'string', default: '1000' } } }).values;
const opts = z.object({ nodes: z.coerce.number().int().min(1).max(20_000), converge: z.coerce.number().int().min(1).max(100_000) })
  .parse({ nodes: args.nodes, converge: args.converge });

const SUB = '00000000-0000-0000-0000-00000000b10c';
type Mode = 'Individual' | 'Block';

// ---- 1. pods in one VNet ----

function vnetCapacity(mode: Mode, nodes: number) {
  const state = new EmulatorState({ maxIpConfigsPerNic: 256, allowMultipleSubnetsPerNic: false });
  // A /11 holds 4,000 nodes' 257 addresses each; the VNet limit, not the subnet, is what stops us.
  const vnet = state.createVnet(SUB, 'bench', 'vnet', 'westeurope', ['10.0.0.0/8'], [{ name: 'nodes', addressPrefix: '10.32.0.0/11' }]);
  const subnet = [...vnet.subnets.values()][0]!;
  let placedNodes = 0;
  let pods = 0;
  let refusal = '';
  const started = performance.now();
  for (let i = 0; i < nodes; i++) {
    let vm;
    try {
      vm = state.createVm(SUB, 'bench', `node-${i}`, 'westeurope', subnet);
    } catch (e) {
      refusal = `node ${i}'s primary: ${(e as AzureError).code}`;
      break;
    }
    const nic = vm.nics[0]!;
    const desired: DesiredIpConfig[] = nic.ipConfigs.map((c) => ({ name: c.name, allocation: c.allocation, subnetId: c.subnet.id, primary: c.primary }));
    const configs = mode === 'Block' ? Math.ceil(MAX_PODS_PER_NODE / BLOCK_SIZE) : MAX_PODS_PER_NODE;
    for (let k = 0; k < configs; k++) {
      desired.push({ name: `podvnet-${k}`, allocation: 'Dynamic', subnetId: subnet.id, primary: false, ...(mode === 'Block' ? { prefixLength: 28 } : {}) });
    }
    try {
      state.putNic(nic.id, { location: 'westeurope', ipConfigs: desired });
    } catch (e) {
      refusal = `node ${i}'s ${configs} ip-configs: ${(e as AzureError).code}`;
      // Fill what is left of the limit on this last node, one ip-config at a time.
      const room = AZURE_MAX_PRIVATE_IPS_PER_VNET - vnet.privateIps;
      if (room > 0) {
        state.putNic(nic.id, { location: 'westeurope', ipConfigs: desired.slice(0, 1 + room) });
        pods += Math.min(MAX_PODS_PER_NODE, mode === 'Block' ? room * BLOCK_SIZE : room);
      }
      break;
    }
    placedNodes++;
    pods += MAX_PODS_PER_NODE;
  }
  return { mode, nodesTried: nodes, fullNodes: placedNodes, pods, vnetPrivateIps: vnet.privateIps, refusal: refusal || 'none', ms: Math.round(performance.now() - started) };
}

// ---- 2. one node to 250 pods ----

const SUBNET = '/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods';
const scaling = { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 };
const spec = { subnetID: SUBNET, ipsPerNode: { min: 0, max: 250 }, scaling };

/** Gives new ip-configs their addresses as Azure would (lowest free; blocks aligned). */
function assign(cfgs: IpConfigView[], counter: { next: number }): IpConfigView[] {
  return cfgs.map((c) => {
    if (c.privateIPAddress !== undefined) return c;
    const n = counter.next++;
    const ip = c.prefixLength !== undefined ? `10.${Math.floor(n / 16)}.${(n % 16) * 16}.0/28`.replace(/\.(\d+)\.0\/28$/, '.0.$1/28') : `10.200.${n >> 8}.${n & 255}`;
    return { ...c, privateIPAddress: ip };
  });
}

function oneNode(mode: Mode, arrival: 'at once' | 'one by one') {
  let nic: IpConfigView[] = [{ name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', subnetId: SUBNET }];
  const counter = { next: 1 };
  let writes = 0;
  let held = 0;
  const heldIPs = new Set<string>();
  const round = (pending: number) => {
    if (mode === 'Individual') {
      const p = planNode({ spec, nic, released: [], demand: { usedIPs: held, pendingIPs: pending } });
      if (p.add.length + p.remove.length === 0) return false;
      nic = assign(nextIpConfigs(nic, p, SUBNET), counter);
    } else {
      const p = planBlocks({ spec, nic, releasedBlocks: [], demand: { usedIPs: held, pendingIPs: pending } });
      if (p.addBlocks.length + p.addSingles.length + p.remove.length === 0) return false;
      nic = assign(nextBlockIpConfigs(nic, p, SUBNET), counter);
    }
    writes++;
    return true;
  };
  const usable = () => (mode === 'Block' ? nic.filter((c) => c.prefixLength !== undefined).length * BLOCK_SIZE : nic.length - 1);
  const placeOne = () => {
    if (mode === 'Block') {
      const blocks = nic.filter((c) => c.prefixLength !== undefined).map((c) => c.privateIPAddress!);
      const ip = pickBlockAddress({ blocks, releasedBlocks: new Set(), allocated: heldIPs, cooldown: new Map(), now: 0 });
      if (ip === undefined) return false;
      heldIPs.add(ip);
    } else if (held >= usable()) return false;
    held++;
    return true;
  };
  round(0); // the node joins: its first batch before any pod
  const target = MAX_PODS_PER_NODE;
  if (arrival === 'at once') {
    while (held < target) {
      let placed = false;
      while (held < target && placeOne()) placed = true;
      if (held < target && !round(target - held) && !placed) break;
    }
    round(0);
  } else {
    for (let i = 0; i < target; i++) {
      while (!placeOne()) if (!round(1)) throw new Error(`${mode}: stuck at ${held} pods`);
      round(0); // the agent reports its demand after every pod: one controller round
    }
  }
  return { mode, arrival, pods: held, nicWrites: writes, ipConfigs: nic.length - 1, addresses: usable() };
}

// ---- 3. converge N nodes from zero ----

function converge(nodes: number, writesPerNode: number) {
  const total = nodes * writesPerNode;
  const b = writeBoundSeconds(total);
  // Each budget alone, and both together: the earliest time the last write may go with both in force.
  return { nodes, writesPerNode, writes: total, armAloneSeconds: b.armAloneSeconds, networkRpAloneSeconds: b.networkRpAloneSeconds, boundBothSeconds: b.bothSeconds };
}

console.log('# 1. pods that fit in one VNet (limit 65,536 private IPs; a /28 block counts once; each node\'s primary counts too)');
const cap = [vnetCapacity('Individual', opts.nodes), vnetCapacity('Block', opts.nodes)];
console.table(cap);

console.log('# 2. one node to 250 pods (batch 16)');
const nodeRows = (['Individual', 'Block'] as const).flatMap((m) => (['at once', 'one by one'] as const).map((a) => oneNode(m, a)));
console.table(nodeRows);

console.log(`# 3. ${opts.converge} nodes from zero to 250 pods each, against ARM (200 + 10/s) and the Network RP (1,000 per 300 s)`);
const rows = nodeRows.map((r) => ({ mode: r.mode, arrival: r.arrival, ...converge(opts.converge, r.nicWrites) }));
console.table(rows);
console.log(JSON.stringify({ capacity: cap, perNode: nodeRows, converge: rows }));
