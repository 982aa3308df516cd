import test from 'ava';
import { AzureEmulator, EmulatorCredential } from '../hack/azure-emulator/index.js';
import { ArmAdapter, armClientFactory } from './azure.js';
import { AzureCallError } from './azure-errors.js';
import { ArmLimiter, ARM_READ_BUDGET, ARM_WRITE_BUDGET } from './limiter.js';
import { nextIpConfigs, planNode } from './plan.js';
import { parseProviderID } from './providerid.js';

async function setup(t: { teardown(fn: () => Promise<void>): void }, config: Parameters<typeof AzureEmulator.start>[0] extends infer O ? O extends { config?: infer C } ? C : never : never = {}) {
  const emu = await AzureEmulator.start({ scenario: { vms: [{ count: 2 }], scaleSets: [{ name: 'ss', count: 1 }] }, config: { asyncDurationMs: 5, ...config } });
  t.teardown(() => emu.close());
  const scenario = emu.loadScenario({ vnets: [{ name: 'pods-vnet', addressPrefixes: ['10.50.0.0/16'], subnets: [{ name: 'pods', addressPrefix: '10.50.0.0/28' }] }] });
  const limiter = new ArmLimiter({ concurrency: 8, reads: ARM_READ_BUDGET, writes: ARM_WRITE_BUDGET });
  const calls: string[] = [];
  const azure = new ArmAdapter(armClientFactory(new EmulatorCredential(), { endpoint: emu.url, extra: { tlsOptions: { ca: emu.ca } } }), limiter,
    (c) => calls.push(`${c.operation}:${c.result}`), 5);
  const nodes = emu.dump() as { virtualMachines: Array<{ id: string }> };
  return { emu, azure, limiter, calls, nodes, podSubnet: scenario.subnets['pods-vnet/pods']! };
}

const SUBNET_OF = (emu: AzureEmulator) => (emu.dump() as { subnets: Array<{ id: string }> }).subnets[0]!.id;

test('finds VM NICs with one list per resource group, then reads straight from the NIC id hint', async (t) => {
  const { emu, azure, calls } = await setup(t);
  emu.configure({ pageSize: 1 });
  const vm = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[0]!.id}`);
  const nic = await azure.getNodeNic(vm);
  t.is(nic.ipConfigs.length, 1);
  t.true(nic.ipConfigs[0]!.primary);
  t.regex(nic.macAddress, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  t.deepEqual(calls, ['nic.list:ok', 'nic.list:ok', 'nic.get:ok'], 'two pages of one NIC each, then the NIC');
  calls.length = 0;
  await azure.getNodeNic(vm, nic.nicId);
  t.deepEqual(calls, ['nic.get:ok']);
  const other = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[1]!.id}`);
  calls.length = 0;
  await azure.getNodeNic(other);
  t.deepEqual(calls, ['nic.get:ok'], 'the second page already named the second VM\'s NIC');
  // a VM created after the list: not in the index, found through the VM itself
  const late = emu.loadScenario({ vnets: [], vms: [{ namePrefix: 'late-', count: 1, subnet: SUBNET_OF(emu) }] }).nodes[0]!;
  calls.length = 0;
  const lateNic = await azure.getNodeNic(parseProviderID(late.providerID));
  t.is(lateNic.nicId.toLowerCase(), late.nicId.toLowerCase());
  t.deepEqual(calls, ['vm.get:ok', 'nic.get:ok']);
});

test('one NIC write carries adds and removes, guarded by If-Match; a stale ETag is PreconditionFailed', async (t) => {
  const { emu, azure } = await setup(t, { mode: 'async' });
  const subnet = SUBNET_OF(emu);
  const vm = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[0]!.id}`);
  const nic = await azure.getNodeNic(vm);
  const spec = { subnetID: subnet, ipsPerNode: { min: 0, max: 250 }, scaling: { batchSize: 4, requestThresholdPercent: 50, releaseThresholdPercent: 150 } };
  const plan = planNode({ spec, nic: nic.ipConfigs, released: [] });
  emu.resetCalls();
  const after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, plan, subnet));
  t.is(emu.calls().byKind['nic.put'], 1);
  t.deepEqual(after.ipConfigs.map((c) => c.name), ['ipconfig1', 'podvnet-1', 'podvnet-2', 'podvnet-3', 'podvnet-4']);
  t.true(after.ipConfigs.every((c) => c.privateIPAddress !== undefined));
  t.not(after.etag, nic.etag);

  // another writer got there first: our old ETag no longer matches
  const err = await t.throwsAsync(azure.writeIpConfigs(nic, nic.ipConfigs), { instanceOf: AzureCallError });
  t.is(err!.failure.kind, 'PreconditionFailed');

  const released = [after.ipConfigs[2]!.privateIPAddress!];
  const shrink = planNode({ spec, nic: after.ipConfigs, released, demand: { usedIPs: 0, pendingIPs: 0 } });
  const final = await azure.writeIpConfigs(after, nextIpConfigs(after.ipConfigs, shrink, subnet));
  t.deepEqual(final.ipConfigs.map((c) => c.name), ['ipconfig1', 'podvnet-1', 'podvnet-3', 'podvnet-4']);
});

test('a scale-set instance changes its NIC through the scale-set VM update', async (t) => {
  const { emu, azure } = await setup(t);
  const subnet = SUBNET_OF(emu);
  const inst = (emu.dump() as { virtualMachineScaleSets: Array<{ instances: Array<{ id: string }> }> }).virtualMachineScaleSets[0]!.instances[0]!;
  const ref = parseProviderID(`azure://${inst.id}`);
  t.is(ref.kind, 'vmss');
  const nic = await azure.getNodeNic(ref);
  emu.resetCalls();
  const after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: ['podvnet-1', 'podvnet-2'], remove: [] }, subnet));
  t.is(emu.calls().byKind['vmssvm.put'], 1);
  t.is(emu.calls().byKind['nic.put'], undefined);
  t.deepEqual(after.ipConfigs.map((c) => c.name), ['ipconfig1', 'podvnet-1', 'podvnet-2']);
  t.truthy(after.ipConfigs[1]!.privateIPAddress);
  const stale = await t.throwsAsync(azure.writeIpConfigs(nic, nic.ipConfigs), { instanceOf: AzureCallError });
  t.is(stale!.failure.kind, 'PreconditionFailed');
});

test('scale-set NICs come from one list per scale set, each copy once, and never when the model names other ip-configs', async (t) => {
  const emu = await AzureEmulator.start({ scenario: { scaleSets: [{ name: 'ss', count: 3 }] }, config: { asyncDurationMs: 5 } });
  t.teardown(() => emu.close());
  const calls: string[] = [];
  const azure = new ArmAdapter(armClientFactory(new EmulatorCredential(), { endpoint: emu.url, extra: { tlsOptions: { ca: emu.ca } } }),
    new ArmLimiter({ concurrency: 8, reads: ARM_READ_BUDGET, writes: ARM_WRITE_BUDGET }), (c) => calls.push(c.operation), 5);
  const insts = (emu.dump() as { virtualMachineScaleSets: Array<{ instances: Array<{ id: string }> }> }).virtualMachineScaleSets[0]!.instances.map((i) => parseProviderID(`azure://${i.id}`));
  const subnet = SUBNET_OF(emu);
  const first = await azure.getNodeNic(insts[0]!);
  t.deepEqual(calls, ['vmssvm.get', 'vmssnic.list']);
  t.is(first.ipConfigs.length, 1);
  calls.length = 0;
  await azure.getNodeNic(insts[1]!);
  t.deepEqual(calls, ['vmssvm.get'], 'served from the list');
  calls.length = 0;
  await azure.getNodeNic(insts[0]!);
  t.deepEqual(calls, ['vmssvm.get', 'vmssnic.get'], 'a listed copy serves once');

  // another writer changes instance 2 after the list: the model names an ip-config the copy lacks
  const nic2 = [...emu.state.nics.values()].find((n) => n.vmss?.instance.id.toLowerCase() === insts[2]!.id.toLowerCase())!;
  emu.state.putNic(nic2.id, { location: nic2.location, ipConfigs: [...nic2.ipConfigs.map((c) => ({ name: c.name, allocation: c.allocation, privateIPAddress: c.privateIPAddress, subnetId: c.subnet.id, primary: c.primary })), { name: 'other', allocation: 'Dynamic' as const, subnetId: subnet, primary: false }] });
  calls.length = 0;
  const third = await azure.getNodeNic(insts[2]!);
  t.deepEqual(calls, ['vmssvm.get', 'vmssnic.get'], 'the stale copy is not used');
  t.deepEqual(third.ipConfigs.map((c) => c.name), ['ipconfig1', 'other']);
  t.truthy(third.ipConfigs[1]!.privateIPAddress);
});

test('SubnetIsFull from a failed long-running operation, 409 and 404 are told apart', async (t) => {
  const { emu, azure, podSubnet } = await setup(t, { mode: 'async' });
  const vm = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[0]!.id}`);
  emu.configure({ allowMultipleSubnetsPerNic: true });
  const nic = await azure.getNodeNic(vm);
  // the /28 has 11 usable addresses
  const names = Array.from({ length: 12 }, (_, i) => `podvnet-${i + 1}`);
  const full = await t.throwsAsync(azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: names, remove: [] }, podSubnet)), { instanceOf: AzureCallError });
  t.is(full!.failure.kind, 'SubnetFull');
  emu.injectFault({ kind: 'nic.put', as: 'operation', status: 409, code: 'AnotherOperationInProgress', message: 'busy' });
  const fresh = await azure.getNodeNic(vm, nic.nicId);
  const busy = await t.throwsAsync(azure.writeIpConfigs(fresh, fresh.ipConfigs), { instanceOf: AzureCallError });
  t.is(busy!.failure.kind, 'Conflict');
  const gone = await t.throwsAsync(azure.getNodeNic(parseProviderID(vm.id.replace(/vm-0$/, 'vm-9').replace(/^/, 'azure://'))), { instanceOf: AzureCallError });
  t.is(gone!.failure.kind, 'NotFound');
});

test('a 429 pauses the whole subscription until Retry-After', async (t) => {
  const { emu, azure, limiter } = await setup(t);
  const vm = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[0]!.id}`);
  emu.injectFault({ kind: 'nic.list', status: 429, code: 'SubscriptionRequestsThrottled', message: 'slow down', retryAfterSeconds: 1 });
  emu.injectFault({ kind: 'vm.get', status: 429, code: 'SubscriptionRequestsThrottled', message: 'slow down', retryAfterSeconds: 1 });
  const err = await t.throwsAsync(azure.getNodeNic(vm), { instanceOf: AzureCallError });
  t.like(err!.failure, { kind: 'Throttled', retryAfterMs: 1000 });
  t.true(limiter.pausedFor(vm.subscriptionId) > 800);
  const start = Date.now();
  await azure.getNodeNic(vm);
  t.true(Date.now() - start >= 800, 'the next call waited for the pause');
});

test('reads the subnet prefix, its gateway, its free addresses and the VNet address space in two reads', async (t) => {
  const { emu, azure, podSubnet } = await setup(t);
  emu.resetCalls();
  // the /28 has 16 - 5 reserved = 11 usable addresses, none taken yet
  t.deepEqual(await azure.getSubnet(podSubnet), { id: podSubnet, addressPrefix: '10.50.0.0/28', gatewayIP: '10.50.0.1', vnetAddressPrefixes: ['10.50.0.0/16'], freeIPs: 11 });
  t.deepEqual(emu.calls().byKind, { 'subnet.get': 1, 'vnet.get': 1 });
  // the node subnet holds the primary ip-config of two VMs and a scale-set instance, then three more
  const nodeSubnet = SUBNET_OF(emu);
  const before = (await azure.getSubnet(nodeSubnet)).freeIPs;
  t.is(before, emu.state.subnets.get(nodeSubnet.toLowerCase())!.pool.free);
  const vm = parseProviderID(`azure://${(emu.dump() as { virtualMachines: Array<{ id: string }> }).virtualMachines[0]!.id}`);
  const nic = await azure.getNodeNic(vm);
  await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, { add: ['podvnet-1', 'podvnet-2', 'podvnet-3'], remove: [] }, nodeSubnet));
  t.is((await azure.getSubnet(nodeSubnet)).freeIPs, before! - 3, 'every ip-config Azure lists in the subnet counts');
});

test('a role without subnets/read: the subnet comes from the VNet read, headroom unknown and said why', async (t) => {
  const { emu, azure, podSubnet } = await setup(t);
  emu.injectFault({ kind: 'subnet.get', status: 403, code: 'AuthorizationFailed', message: "The client does not have authorization to perform action 'Microsoft.Network/virtualNetworks/subnets/read'.", count: 1 });
  const s = await azure.getSubnet(podSubnet);
  t.like(s, { id: podSubnet, addressPrefix: '10.50.0.0/28', gatewayIP: '10.50.0.1', vnetAddressPrefixes: ['10.50.0.0/16'], freeIPs: undefined });
  t.regex(s.headroomUnknown!, /subnets\/read/);
  // any other failure of the subnet read is the caller's to handle
  emu.injectFault({ kind: 'subnet.get', status: 500, code: 'InternalServerError', message: 'boom', count: 10 });
  await t.throwsAsync(azure.getSubnet(podSubnet), { instanceOf: AzureCallError });
});
