// Block ip-configs (privateIPAddressPrefixLength: 28), the VNet's private-IP limit and the Network RP's
// write limit, all driven through the real @azure/arm-network and @azure/arm-compute clients.
import test from 'ava';
import type { NetworkInterfaceIPConfiguration } from '@azure/arm-network';
import type { EmulatorOptions } from './server.js';
import type { createNetworkClient } from './sdk.js';
import { parseIPv4 } from './address-pool.js';
import { addrs, rejects, RG, startTestEmulator, SUB } from './testing/index.js';
import { BLOCK_IP_CONFIGS_MARKER, blockPrefixPolicy } from '../../controllers/block-wire.js';

const start = (t: { teardown: (f: () => Promise<void>) => void }, opts: EmulatorOptions = {}) => startTestEmulator(t, { retry: { maxRetries: 0 }, ...opts });

const block = (name: string, subnet: string, extra: Partial<NetworkInterfaceIPConfiguration> = {}): NetworkInterfaceIPConfiguration =>
  ({ name, primary: false, privateIPAllocationMethod: 'Dynamic', privateIPAddressPrefixLength: 28, subnet: { id: subnet }, ...extra });

async function putConfigs(net: ReturnType<typeof createNetworkClient>, nicName: string, configs: NetworkInterfaceIPConfiguration[]) {
  const nic = await net.networkInterfaces.get(RG, nicName);
  return net.networkInterfaces.beginCreateOrUpdateAndWait(RG, nicName, { ...nic, ipConfigurations: [...nic.ipConfigurations!, ...configs] }, { updateIntervalInMs: 10 });
}

test('a block ip-config takes the lowest free aligned /28, shown as CIDR with its prefix length; single addresses still take the lowest free', async (t) => {
  const { emu, net, subnetId } = await start(t);
  // Primaries hold 10.1.0.4-7 and .0-.3 are reserved: the first aligned /28 with all 16 free is .16.
  const after = await putConfigs(net, 'vm-0-nic', [block('b1', subnetId('nodes')), block('b2', subnetId('nodes')),
    { name: 'single', primary: false, privateIPAllocationMethod: 'Dynamic', subnet: { id: subnetId('nodes') } }]);
  t.deepEqual(addrs(after), ['ipconfig1=10.1.0.4', 'b1=10.1.0.16/28', 'b2=10.1.0.32/28', 'single=10.1.0.8']);
  t.is(after.ipConfigurations![1]!.privateIPAddressPrefixLength, 28);
  t.is(after.ipConfigurations![0]!.privateIPAddressPrefixLength, undefined);
  // Every address of a block belongs to the NIC (the fabric delivers all 16 there).
  for (let i = 16; i < 48; i++) t.is(emu.ipOwner(`10.1.0.${i}`)?.nicId, after.id, `10.1.0.${i}`);
  t.is(emu.ipOwner('10.1.0.48'), undefined);
  // The subnet lists a block once, as one ip-config.
  const subnet = await net.subnets.get(RG, 'vnet', 'nodes');
  t.is(subnet.ipConfigurations!.filter((c) => c.id!.endsWith('/b1')).length, 1);
  t.is(subnet.ipConfigurations!.length, 4 + 3);
  // Sent back as read (Dynamic, "10.1.0.16/28"), a block keeps its prefix; dropping it frees all 16.
  const again = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { ...after, ipConfigurations: after.ipConfigurations!.filter((c) => c.name !== 'b1') }, { updateIntervalInMs: 10 });
  t.deepEqual(addrs(again), ['ipconfig1=10.1.0.4', 'b2=10.1.0.32/28', 'single=10.1.0.8']);
  t.is(emu.ipOwner('10.1.0.20'), undefined);
  const next = await putConfigs(net, 'vm-1-nic', [block('c1', subnetId('nodes'))]);
  t.deepEqual(addrs(next), ['ipconfig1=10.1.0.5', 'c1=10.1.0.16/28'], 'the freed block is the lowest again');
});

test('block rules: not on the primary, one subnet per NIC, no public IP, only /28; each an Azure-shaped 400', async (t) => {
  const { net, subnetId } = await start(t);
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const onPrimary = await rejects(t, net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic',
    { ...nic, ipConfigurations: [{ ...nic.ipConfigurations![0]!, privateIPAddress: undefined, privateIPAddressPrefixLength: 28 }] }));
  t.is(onPrimary.statusCode, 400);
  t.is(onPrimary.code, 'PrivateIPAddressPrefixNotAllowedOnPrimaryIpConfiguration');
  t.regex(onPrimary.message, /is primary: a private IP address prefix \(privateIPAddressPrefixLength\) is allowed only on secondary/);
  const otherSubnet = await rejects(t, putConfigs(net, 'vm-0-nic', [block('b1', subnetId('other'))]));
  t.is(otherSubnet.code, 'IpConfigurationsOnSameNicCannotUseDifferentSubnets');
  const publicIp = await rejects(t, putConfigs(net, 'vm-0-nic', [block('b1', subnetId('nodes'), { publicIPAddress: { id: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/publicIPAddresses/pip` } })]));
  t.is(publicIp.code, 'PrivateIPAddressPrefixNotAllowedWithPublicIPAddress');
  const wide = await rejects(t, putConfigs(net, 'vm-0-nic', [block('b1', subnetId('nodes'), { privateIPAddressPrefixLength: 27 })]));
  t.is(wide.code, 'InvalidPrivateIPAddressPrefixLength');
  t.regex(wide.message, /supported IPv4 prefix length is 28/);
  t.deepEqual(addrs(await net.networkInterfaces.get(RG, 'vm-0-nic')), ['ipconfig1=10.1.0.4'], 'nothing changed');
});

test('fragmentation: a subnet with free addresses but no free aligned /28 refuses a block as a full subnet (SubnetIsFull); a single address still fits', async (t) => {
  const { emu, net, subnetId } = await start(t);
  const other = emu.state.subnets.get(subnetId('other').toLowerCase())!;
  // One address taken in each of the 14 inner /28s; the first holds the reserved, the last the broadcast.
  for (let k = 1; k < 15; k++) t.true(other.pool.take(parseIPv4(`10.3.0.${k * 16 + 8}`)!));
  t.is(other.pool.freeBlocks(16), 0);
  t.true(other.pool.free > 200);
  const nicId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/frag-nic`;
  const create = (configs: NetworkInterfaceIPConfiguration[]) => net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'frag-nic', {
    location: 'westeurope', ipConfigurations: [{ name: 'ipconfig1', primary: true, privateIPAllocationMethod: 'Dynamic', subnet: { id: subnetId('other') } }, ...configs],
  });
  const e = await rejects(t, create([block('b1', subnetId('other'))]));
  t.is(e.code, 'SubnetIsFull');
  t.regex(e.message, /Subnet other with address prefix 10\.3\.0\.0\/24 does not have enough capacity for 17 IP addresses/, "the block and the new primary");
  t.is(emu.state.nics.get(nicId.toLowerCase()), undefined, 'all or nothing');
  const ok = await create([{ name: 's1', primary: false, privateIPAllocationMethod: 'Dynamic', subnet: { id: subnetId('other') } }]);
  t.deepEqual(addrs(ok), ['ipconfig1=10.3.0.4', 's1=10.3.0.5']);
});

test('the VNet private-IP limit counts a /28 block once', async (t) => {
  const { emu, net, subnetId } = await start(t);
  const vnet = [...emu.state.vnets.values()][0]!;
  t.is(vnet.privateIps, 4, 'the four primaries');
  emu.configure({ maxPrivateIpsPerVnet: 7 });
  const after = await putConfigs(net, 'vm-0-nic', [block('b1', subnetId('nodes')), block('b2', subnetId('nodes')), block('b3', subnetId('nodes'))]);
  t.is(after.ipConfigurations!.length, 4);
  t.is(vnet.privateIps, 7, '48 addresses in three blocks count as three');
  const e = await rejects(t, putConfigs(net, 'vm-1-nic', [block('c1', subnetId('nodes'))]));
  t.is(e.statusCode, 400);
  t.is(e.code, 'PrivateIPAddressesPerVirtualNetworkLimitReached');
  t.regex(e.message, /has 7 of its limit of 7 \(a private IP address prefix counts as one\)/);
  // Giving a block back makes room again.
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { ...after, ipConfigurations: after.ipConfigurations!.slice(0, 3) });
  t.is(vnet.privateIps, 6);
  await putConfigs(net, 'vm-1-nic', [block('c1', subnetId('nodes'))]);
  t.is(vnet.privateIps, 7);
});

test('the Network RP write limit (N writes per window per subscription and region) answers 429 with Retry-After; reads and Compute writes do not count', async (t) => {
  const { emu, net, compute } = await start(t, { config: { networkWriteLimit: { enabled: true, limit: 3, windowSeconds: 60 } } });
  for (let i = 0; i < 3; i++) {
    const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
    await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { ...nic, tags: { n: String(i) } });
  }
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const e = await rejects(t, net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic));
  t.is(e.statusCode, 429);
  t.is(e.code, 'TooManyRequests');
  t.regex(e.message, /limit is 3 per 60 seconds/);
  const retryAfter = Number(e.response?.headers.get('retry-after'));
  t.true(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
  t.is(emu.calls().networkThrottled, 1);
  // A scale-set VM update is a Compute write: not counted against the Network RP.
  const vm = await compute.virtualMachineScaleSetVMs.get(RG, 'pool1', '0');
  await compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { updateIntervalInMs: 10 });
  t.is(emu.calls().networkThrottled, 1);
});

test('scale-set VM model: arm-compute drops privateIPAddressPrefixLength; blockPrefixPolicy passes it through (Compute API 2026-07-02)', async (t) => {
  const { emu, net, compute, subnetId } = await start(t);
  const vm = await compute.virtualMachineScaleSetVMs.get(RG, 'pool1', '0');
  const nicCfg = vm.networkProfileConfiguration!.networkInterfaceConfigurations![0]!;
  nicCfg.ipConfigurations!.push({ name: 'blk', subnet: { id: subnetId('nodes') }, primary: false, privateIPAddressPrefixLength: 28 } as never);
  // Without the policy the SDK's serializer leaves the field out: a single address.
  await compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { updateIntervalInMs: 10 });
  t.deepEqual(addrs(await net.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(RG, 'pool1', '0', 'pool1-nic')), ['ipconfig1=10.1.0.6', 'blk=10.1.0.8']);
  // With it, the block ip-config named in the marker header becomes a /28 (a new name: a kind never changes in place).
  compute.pipeline.addPolicy(blockPrefixPolicy() as never);
  nicCfg.ipConfigurations![1]!.name = 'blk2';
  await compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { updateIntervalInMs: 10, requestOptions: { headers: { [BLOCK_IP_CONFIGS_MARKER]: 'blk2' } } });
  const nic = await net.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(RG, 'pool1', '0', 'pool1-nic');
  t.deepEqual(addrs(nic), ['ipconfig1=10.1.0.6', 'blk2=10.1.0.16/28']);
  const putCalls = emu.calls().byKind['vmssvm.put'];
  t.is(putCalls, 2);
  // The VM model as the emulator answers it carries the field (raw JSON: the SDK's deserializer drops it too).
  const inst = [...emu.state.instances.values()].find((i) => i.instanceId === '0' && i.scaleSet.name === 'pool1')!;
  t.is(inst.nics[0]!.ipConfigs[1]!.prefixLength, 28);
});
