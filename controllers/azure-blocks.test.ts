import test from 'ava';
import { AzureEmulator, EmulatorCredential } from '../hack/azure-emulator/index.js';
import { ArmAdapter, armClientFactory } from './azure.js';
import { ArmLimiter, ARM_READ_BUDGET, ARM_WRITE_BUDGET } from './limiter.js';
import { blockPrefixes, nextBlockIpConfigs, planBlocks } from './block-plan.js';
import { parseProviderID } from './providerid.js';

/** The adapter writes and reads block ip-configs for standalone VMs (NIC PUT) and scale-set instances (VM model). */

async function setup(t: { teardown(fn: () => Promise<void>): void }) {
  const emu = await AzureEmulator.start({ scenario: { vms: [{ count: 1 }], scaleSets: [{ name: 'ss', count: 1 }] }, config: { asyncDurationMs: 5, mode: 'async' } });
  t.teardown(() => emu.close());
  const limiter = new ArmLimiter({ concurrency: 8, reads: ARM_READ_BUDGET, writes: ARM_WRITE_BUDGET });
  const azure = new ArmAdapter(armClientFactory(new EmulatorCredential(), { endpoint: emu.url, extra: { tlsOptions: { ca: emu.ca } } }), limiter, () => {}, 5);
  const dump = emu.dump() as { virtualMachines: Array<{ id: string }>; subnets: Array<{ id: string }> };
  const instance = [...emu.state.instances.values()][0]!;
  return { emu, azure, subnet: dump.subnets[0]!.id, vm: parseProviderID(`azure://${dump.virtualMachines[0]!.id}`), vmss: parseProviderID(`azure://${instance.id}`) };
}

const spec = (subnetID: string) => ({ subnetID, ipsPerNode: { min: 0, max: 250 }, scaling: { batchSize: 32, requestThresholdPercent: 50, releaseThresholdPercent: 150 } });

for (const kind of ['vm', 'vmss'] as const) {
  test(`${kind}: blocks are written with privateIPAddressPrefixLength and read back as /28 views; a later write keeps them`, async (t) => {
    const { azure, subnet, ...machines } = await setup(t);
    const nic = await azure.getNodeNic(machines[kind]);
    const plan = planBlocks({ spec: spec(subnet), nic: nic.ipConfigs, releasedBlocks: [] });
    t.deepEqual(plan.addBlocks, ['podvnet-b1', 'podvnet-b2']);
    const after = await azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, plan, subnet));
    const blocks = blockPrefixes(after.ipConfigs, subnet);
    t.is(blocks.length, 2);
    for (const b of blocks) t.regex(b, /^\d+\.\d+\.\d+\.(0|16|32|48|64|80|96|112|128|144|160|176|192|208|224|240)\/28$/);
    t.true(after.ipConfigs.filter((c) => c.name.startsWith('podvnet-b')).every((c) => c.prefixLength === 28));
    // Release the second block: the first stays the same block (not re-allocated as a single address).
    const again = await azure.getNodeNic(machines[kind], after.nicId);
    const release = planBlocks({ spec: spec(subnet), nic: again.ipConfigs, releasedBlocks: [blocks[1]!], demand: { usedIPs: 3, pendingIPs: 0 } });
    t.deepEqual(release.remove, ['podvnet-b2']);
    const last = await azure.writeIpConfigs(again, nextBlockIpConfigs(again.ipConfigs, release, subnet));
    t.deepEqual(blockPrefixes(last.ipConfigs, subnet), [blocks[0]!]);
  });
}

test('subnet headroom in blocks: a block ip-config takes 16 addresses and one aligned /28', async (t) => {
  const { azure, subnet, vm } = await setup(t);
  const before = await azure.getSubnet(subnet, { blocks: true });
  const nic = await azure.getNodeNic(vm);
  const plan = planBlocks({ spec: spec(subnet), nic: nic.ipConfigs, releasedBlocks: [] });
  await azure.writeIpConfigs(nic, nextBlockIpConfigs(nic.ipConfigs, plan, subnet));
  const after = await azure.getSubnet(subnet, { blocks: true });
  t.is(before.freeIPs! - after.freeIPs!, 16 * plan.addBlocks.length);
  t.is(before.freeBlocks! - after.freeBlocks!, plan.addBlocks.length);
  t.is((await azure.getSubnet(subnet)).freeBlocks, undefined, 'asked for addresses only: no block count');
});
