// A subnet GET lists every ip-config in the subnet (properties.ipConfigurations), as Azure does: the
// controller derives the subnet's free addresses from it.
import test from 'ava';
import { AzureEmulator } from './server.js';
import { createNetworkClient } from './sdk.js';
import { generateSelfSignedCert } from './tls.js';

const tls = generateSelfSignedCert();
const SUB = '11111111-2222-3333-4444-0000000000aa';
const RG = 'rg1';
const subnetId = (name: string) => `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/${name}`;

test('subnet GET and list carry the id of every ip-config in the subnet, following NIC writes; other subnets not', async (t) => {
  const emu = await AzureEmulator.start({
    tls,
    scenario: {
      subscriptionId: SUB, resourceGroup: RG,
      vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.1.0.0/24' }, { name: 'other', addressPrefix: '10.3.0.0/24' }] }],
      vms: [{ namePrefix: 'vm-', count: 2, subnet: 'nodes', secondaryIpConfigs: 2 }, { namePrefix: 'o-', count: 1, subnet: 'other' }],
      scaleSets: [{ name: 'pool1', count: 1, subnet: 'nodes' }],
    },
  });
  t.teardown(() => emu.close());
  const net = createNetworkClient(emu, SUB);
  const ids = async (name: string) => ((await net.subnets.get(RG, 'vnet', name)).ipConfigurations ?? []).map((c) => c.id!).sort();

  const expected = [...emu.state.nics.values()]
    .flatMap((n) => n.ipConfigs.filter((c) => c.subnet.name === 'nodes').map((c) => `${n.id}/ipConfigurations/${c.name}`))
    .sort();
  t.is(expected.length, 2 * 3 + 1);
  t.deepEqual(await ids('nodes'), expected);
  t.true(expected.some((id) => id.includes('/virtualMachineScaleSets/pool1/virtualMachines/')), 'scale-set instance ip-configs are listed under their scale-set path');
  t.is((await ids('other')).length, 1);

  // a NIC write adds three and drops one: the list follows at once
  const nic = await net.networkInterfaces.get(RG, 'vm-1-nic');
  const keep = nic.ipConfigurations!.filter((c) => c.name !== 'ipconfig3');
  const dyn = (name: string) => ({ name, subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Dynamic', primary: false });
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-1-nic', { ...nic, ipConfigurations: [...keep, dyn('a'), dyn('b'), dyn('c')] });
  const after = await ids('nodes');
  t.is(after.length, expected.length + 2);
  t.true(after.some((id) => id.toLowerCase().endsWith('/networkinterfaces/vm-1-nic/ipconfigurations/a')));
  t.false(after.some((id) => id.toLowerCase().endsWith('/networkinterfaces/vm-1-nic/ipconfigurations/ipconfig3')));

  // free addresses as a client computes them: size - 5 reserved - listed
  t.is(256 - 5 - after.length, emu.state.subnets.get(subnetId('nodes').toLowerCase())!.pool.free);

  const listed = [];
  for await (const s of net.subnets.list(RG, 'vnet')) listed.push(s);
  t.is(listed.find((s) => s.name === 'nodes')!.ipConfigurations!.length, after.length);
  // the VNet GET stays light: its subnets carry no ip-config lists here
  const vnet = await net.virtualNetworks.get(RG, 'vnet');
  t.is(vnet.subnets!.find((s) => s.name === 'nodes')!.ipConfigurations, undefined);
});

test('a full /16 (250 NICs x 256 ip-configs): holding the list costs writes nothing, one subnet GET lists all of them', async (t) => {
  const emu = await AzureEmulator.start({
    tls,
    config: { throttling: { enabled: false } },
    scenario: {
      subscriptionId: SUB, resourceGroup: RG,
      vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.8.0.0/16' }] }],
      vms: [{ namePrefix: 'vm-', count: 250, subnet: 'nodes', secondaryIpConfigs: 255 }],
    },
  });
  t.teardown(() => emu.close());
  const net = createNetworkClient(emu, SUB);
  const start = performance.now();
  const subnet = await net.subnets.get(RG, 'vnet', 'nodes');
  const ms = performance.now() - start;
  t.is(subnet.ipConfigurations!.length, 250 * 256);
  t.is(65_536 - 5 - subnet.ipConfigurations!.length, emu.state.subnets.get(subnet.id!.toLowerCase())!.pool.free);
  t.log(`subnet GET with ${subnet.ipConfigurations!.length} ip-configs: ${ms.toFixed(0)} ms`);
  // a sanity bound only: about 1.5 s on an idle 2-core machine, several times that on a loaded CI run
  t.true(ms < 30_000, `${ms} ms`);
});
