// Every behaviour driven through the real @azure/arm-network and @azure/arm-compute clients.
import test from 'ava';
import { request as httpsRequest } from 'node:https';
import { NetworkManagementClient, type NetworkInterface } from '@azure/arm-network';
import { AzureEmulator, type EmulatorOptions } from './server.js';
import { createComputeClient, createNetworkClient, EmulatorCredential, emulatorClientOptions } from './sdk.js';
import type { IpChangeEvent } from './state.js';
import { addrs, rejects, RG, startTestEmulator, SUB, testTls } from './testing/index.js';

const SUBNETS = [{ name: 'nodes', addressPrefix: '10.1.0.0/24' }, { name: 'tiny', addressPrefix: '10.2.0.0/29' }, { name: 'other', addressPrefix: '10.3.0.0/24' }, { name: 'big', addressPrefix: '10.4.0.0/20' }];
const start = (t: { teardown: (f: () => Promise<void>) => void }, opts: EmulatorOptions = {}) => startTestEmulator(t, { subnets: SUBNETS, ...opts });

test('TLS: clients trust the emulator only with its CA; the scenario wires VM -> NIC and providerIDs', async (t) => {
  const { emu, net, compute } = await start(t);
  const untrusting = new NetworkManagementClient(new EmulatorCredential(), SUB, { endpoint: emu.url, $host: emu.url, retryOptions: { maxRetries: 0 } });
  const e = await rejects(t, untrusting.networkInterfaces.get(RG, 'vm-0-nic'));
  t.regex(e.message, /self[- ]signed|certificate/i);

  const vm = await compute.virtualMachines.get(RG, 'vm-0');
  const nicId = vm.networkProfile?.networkInterfaces?.[0]?.id;
  t.is(nicId, `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/vm-0-nic`);
  t.is(vm.etag, '"1"');
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.is(nic.virtualMachine?.id, vm.id);
  t.deepEqual(addrs(nic), ['ipconfig1=10.1.0.4'], 'first address after the 4 reserved ones');
  t.regex(nic.macAddress!, /^00-0D-3A-[0-9A-F]{2}-[0-9A-F]{2}-[0-9A-F]{2}$/);
  t.regex(nic.etag!, /^W\/"[0-9a-f-]{36}"$/);
  t.true(nic.ipConfigurations!.every((c) => c.etag === nic.etag), 'ip-configs share the NIC etag');
  t.is(nic.ipConfigurations![0]!.provisioningState, 'Succeeded');
  t.is(nic.ipConfigurations![0]!.privateIPAddressVersion, 'IPv4');
  t.true(nic.ipConfigurations![0]!.primary);
});

test('scenario result: node names, Azure providerID formats, NIC id, primary IP and MAC', async (t) => {
  const emu = await AzureEmulator.start({ tls: testTls });
  t.teardown(() => emu.close());
  const r = emu.loadScenario({ subscriptionId: SUB, resourceGroup: 'MC_rg', vms: [{ namePrefix: 'node-', count: 1 }], scaleSets: [{ name: 'aks-np1-vmss', count: 37 }] });
  const vm = r.nodes[0]!;
  t.is(vm.nodeName, 'node-0');
  t.is(vm.providerID, `azure:///subscriptions/${SUB}/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachines/node-0`);
  const inst = r.nodes[37]!;
  t.is(inst.nodeName, 'aks-np1-vmss000010', 'computer name: prefix + base-36 instance id');
  t.is(inst.providerID, `azure:///subscriptions/${SUB}/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-np1-vmss/virtualMachines/36`);
  t.is(inst.nicId, `/subscriptions/${SUB}/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-np1-vmss/virtualMachines/36/networkInterfaces/aks-np1-vmss-nic`);
  t.is(inst.primaryIP, '10.240.0.41');
  t.is(emu.ipOwner(inst.primaryIP)?.macAddress, inst.macAddress);
  t.is(emu.ipOwner(inst.primaryIP)?.nodeName, inst.nodeName);
  const compute = createComputeClient(emu, SUB);
  const got = await compute.virtualMachineScaleSetVMs.get('MC_rg', 'aks-np1-vmss', '36');
  t.is(got.osProfile?.computerName, inst.nodeName);
  t.is(got.networkProfile?.networkInterfaces?.[0]?.id, inst.nicId);
  t.is(got.networkProfileConfiguration?.networkInterfaceConfigurations?.[0]?.name, 'aks-np1-vmss-nic');
});

test('paths are case-insensitive, any api-version is accepted, VMSS NICs read through the network API', async (t) => {
  const { net } = await start(t);
  const nic = await net.networkInterfaces.get('RG1', 'VM-1-NIC');
  t.is(nic.name, 'vm-1-nic');
  // arm-network sends "microsoft.Compute" in lower case and api-version 2018-10-01 here.
  const vmssNic = await net.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(RG, 'POOL1', '1', 'pool1-nic');
  t.is(vmssNic.virtualMachine?.id, `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/pool1/virtualMachines/1`);
  const listed = [];
  for await (const n of net.networkInterfaces.listVirtualMachineScaleSetNetworkInterfaces(RG, 'pool1')) listed.push(n.name);
  t.deepEqual(listed, ['pool1-nic', 'pool1-nic']);
  const perVm = [];
  for await (const n of net.networkInterfaces.listVirtualMachineScaleSetVMNetworkInterfaces(RG, 'pool1', '0')) perVm.push(n.ipConfigurations?.[0]?.privateIPAddress);
  t.deepEqual(perVm, ['10.1.0.6']);
  const cfg = await net.networkInterfaces.getVirtualMachineScaleSetIpConfiguration(RG, 'pool1', '1', 'pool1-nic', 'IPCONFIG1');
  t.is(cfg.privateIPAddress, '10.1.0.7');
  const standalone = await net.networkInterfaceIPConfigurations.get(RG, 'vm-1-nic', 'ipconfig1');
  t.is(standalone.privateIPAddress, '10.1.0.5');
  const subnet = await net.subnets.get(RG, 'VNET', 'Nodes');
  t.is(subnet.addressPrefix, '10.1.0.0/24');
  const vnet = await net.virtualNetworks.get(RG, 'vnet');
  t.deepEqual(vnet.addressSpace?.addressPrefixes, ['10.0.0.0/8']);
});

test('NIC PUT replaces the whole list; Dynamic addresses stay with their ip-config name; lowest free first', async (t) => {
  const { emu, net, subnetId } = await start(t);
  const events: IpChangeEvent[] = [];
  emu.onIpChange((ev) => events.push(ev));
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const dyn = (name: string) => ({ name, subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Dynamic', primary: false });
  // vm-0 .4, vm-1 .5, pool1 instances .6 .7
  let r = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { ...nic, ipConfigurations: [...nic.ipConfigurations!, dyn('a'), dyn('b'), dyn('c')] });
  t.deepEqual(addrs(r), ['ipconfig1=10.1.0.4', 'a=10.1.0.8', 'b=10.1.0.9', 'c=10.1.0.10']);
  t.not(r.etag, nic.etag, 'a write changes the etag');
  t.deepEqual(events.at(-1), { nicId: nic.id!, macAddress: nic.macAddress!, nodeName: 'vm-0', added: ['10.1.0.8', '10.1.0.9', '10.1.0.10'], removed: [] });
  // Drop 'a', keep 'b' and 'c' without sending their addresses, add 'd': d takes the freed .8.
  r = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { location: 'eastus', ipConfigurations: [
    { name: 'ipconfig1', subnet: { id: subnetId('nodes') }, primary: true }, dyn('c'), dyn('b'), dyn('d')] });
  t.deepEqual(addrs(r), ['ipconfig1=10.1.0.4', 'c=10.1.0.10', 'b=10.1.0.9', 'd=10.1.0.8']);
  t.is(emu.ipOwner('10.1.0.8')?.ipConfigName, 'd');
  t.deepEqual((await net.networkInterfaces.get(RG, 'vm-0-nic')).ipConfigurations!.map((c) => c.privateIPAddress), ['10.1.0.4', '10.1.0.10', '10.1.0.9', '10.1.0.8']);
  // Static address of our choice; and a new NIC created by PUT answers 201.
  let status = 0;
  const created = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'extra', { location: 'eastus', ipConfigurations: [
    { name: 'p', subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Static', privateIPAddress: '10.1.0.200' }] },
  { onResponse: (raw) => { status = raw.status; } });
  t.is(status, 201);
  t.deepEqual(addrs(created), ['p=10.1.0.200']);
  t.is(created.ipConfigurations![0]!.privateIPAllocationMethod, 'Static');
  t.is(created.provisioningState, 'Succeeded');
});

test('validation errors carry Azure codes and the {error:{code,message,details}} body', async (t) => {
  const { emu, net, subnetId } = await start(t, { config: { maxIpConfigsPerNic: 256 } });
  const base = { name: 'ipconfig1', subnet: { id: subnetId('nodes') }, primary: true };
  const put = (ipConfigurations: NetworkInterface['ipConfigurations']) =>
    net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { location: 'eastus', ipConfigurations });
  const cases: Array<[string, NetworkInterface['ipConfigurations'], RegExp]> = [
    ['PrivateIPAddressIsAllocated', [base, { name: 's', subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Static', privateIPAddress: '10.1.0.5' }], /already allocated to resource .*networkInterfaces\/vm-1-nic/],
    ['PrivateIPAddressInReservedRange', [base, { name: 's', subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Static', privateIPAddress: '10.1.0.255' }], /reserved/],
    ['PrivateIPAddressNotInSubnet', [base, { name: 's', subnet: { id: subnetId('nodes') }, privateIPAllocationMethod: 'Static', privateIPAddress: '10.9.0.9' }], /10\.1\.0\.0\/24/],
    ['InvalidResourceReference', [{ ...base, subnet: { id: subnetId('nope') } }], /subnets\/nope referenced by resource/],
    ['NetworkInterfaceMustHaveOneOneIPConfigAsPrimary', [base, { ...base, name: 'x' }], /one and only one/],
    ['NetworkInterfaceMustHaveOneOneIPConfigAsPrimary', [{ ...base, primary: false }, { ...base, name: 'x', primary: false }], /one and only one/],
    ['IpConfigurationsOnSameNicCannotUseDifferentSubnets', [base, { name: 'x', subnet: { id: subnetId('other') }, primary: false }], /different subnets/],
  ];
  for (const [code, cfgs, message] of cases) {
    const e = await rejects(t, put(cfgs));
    t.is(e.code, code);
    t.is(e.statusCode, 400, code);
    t.regex(e.message, message, code);
  }
  const bigBase = { ...base, subnet: { id: subnetId('big') } };
  const many = [bigBase, ...Array.from({ length: 256 }, (_, i) => ({ name: `p${i}`, subnet: { id: subnetId('big') }, primary: false }))];
  const e = await rejects(t, put(many));
  t.is(e.statusCode, 400);
  t.regex(e.message, /limit of 256/);
  // All-or-nothing: nothing changed, nothing leaked.
  t.deepEqual(addrs(await net.networkInterfaces.get(RG, 'vm-0-nic')), ['ipconfig1=10.1.0.4']);
  const ok = await put(many.slice(0, 256));
  t.is(ok.ipConfigurations!.length, 256, '256 ip-configs are allowed');
  t.is(emu.dump().subnets instanceof Array, true);
  const missing = await rejects(t, net.networkInterfaces.get(RG, 'no-such-nic'));
  t.is(missing.code, 'ResourceNotFound');
  t.is(missing.statusCode, 404);
  const noRg = await rejects(t, net.networkInterfaces.get('no-such-rg', 'x'));
  t.is(noRg.statusCode, 404);
});

test('SubnetIsFull when a Dynamic address cannot be found, with the count missing', async (t) => {
  const { net, subnetId } = await start(t);
  const cfg = (name: string, primary: boolean) => ({ name, subnet: { id: subnetId('tiny') }, primary });
  const r = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'small', { location: 'eastus', ipConfigurations: [cfg('a', true), cfg('b', false)] });
  t.deepEqual(addrs(r), ['a=10.2.0.4', 'b=10.2.0.5']);
  const e = await rejects(t, net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'small', { location: 'eastus', ipConfigurations: [cfg('a', true), cfg('b', false), cfg('c', false), cfg('d', false)] }));
  t.is(e.code, 'SubnetIsFull');
  t.is(e.statusCode, 400);
  t.is(e.message, 'Subnet tiny with address prefix 10.2.0.0/29 does not have enough capacity for 1 IP addresses.');
  t.deepEqual(addrs(await net.networkInterfaces.get(RG, 'small')), ['a=10.2.0.4', 'b=10.2.0.5']);
});

test('If-Match: a stale network ETag gets 412 PreconditionFailed, the current one passes', async (t) => {
  const { net } = await start(t);
  const nic = await net.networkInterfaces.get(RG, 'vm-1-nic');
  const fresh = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-1-nic', nic, { requestOptions: { customHeaders: { 'If-Match': nic.etag! } } });
  t.not(fresh.etag, nic.etag);
  const e = await rejects(t, net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-1-nic', nic, { requestOptions: { customHeaders: { 'If-Match': nic.etag! } } }));
  t.is(e.statusCode, 412);
  t.is(e.code, 'PreconditionFailed');
  t.true(e.message.includes(fresh.etag!));
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-1-nic', nic, { requestOptions: { customHeaders: { 'If-Match': '*' } } });
  t.pass();
});

test('async mode: Updating + Azure-AsyncOperation on the client-facing origin, polled to Succeeded', async (t) => {
  const { emu, subnetId } = await start(t, { config: { mode: 'async', asyncDurationMs: 60_000 } });
  // Reach it as "localhost" to check the polling URL follows the Host the client used.
  const port = new URL(emu.url).port;
  const net = createNetworkClient({ url: `https://localhost:${port}`, ca: emu.ca }, SUB);
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const responses: Array<{ status: number; asyncOp: string | undefined; body: { provisioningState?: string; status?: string } }> = [];
  const poller = await net.networkInterfaces.beginCreateOrUpdate(RG, 'vm-0-nic',
    { ...nic, ipConfigurations: [...nic.ipConfigurations!, { name: 'pod', subnet: { id: subnetId('nodes') }, primary: false }] },
    { updateIntervalInMs: 20, onResponse: (raw) => responses.push({ status: raw.status, asyncOp: raw.headers.get('azure-asyncoperation'), body: raw.parsedBody as never }) });
  const first = responses[0]!;
  t.is(first.status, 200);
  t.is(first.body.provisioningState, 'Updating');
  t.regex(first.asyncOp!, new RegExp(`^https://localhost:${port}/subscriptions/${SUB}/providers/Microsoft.Network/locations/eastus/operations/[0-9a-f-]+\\?api-version=`));
  const inFlight = await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.is(inFlight.provisioningState, 'Updating');
  t.is(inFlight.ipConfigurations![1]!.provisioningState, 'Updating');
  await poller.poll();
  t.false(poller.isDone(), 'the operation is InProgress until it ends');
  t.is(emu.finishOperations(), 1);
  const done = await poller.pollUntilDone();
  t.is(done.provisioningState, 'Succeeded', 'final GET after the operation');
  t.deepEqual(addrs(done), ['ipconfig1=10.1.0.4', 'pod=10.1.0.8']);
  const calls = emu.calls().byKind;
  t.true((calls['operation.get'] ?? 0) >= 2, `polled the operation ${calls['operation.get']} times`);
  t.is(calls['nic.put'], 1);
});

test('an LRO that fails: the poller rejects with the error, the NIC rolls back and shows Failed', async (t) => {
  const { emu, net, subnetId } = await start(t, { config: { mode: 'async', asyncDurationMs: 30 } });
  emu.injectFault({ kind: 'nic.put', as: 'operation', code: 'InternalServerError', status: 500, message: 'Allocation failed on the host.' });
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const e = await rejects(t, net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic',
    { ...nic, ipConfigurations: [...nic.ipConfigurations!, { name: 'pod', subnet: { id: subnetId('nodes') }, primary: false }] }, { updateIntervalInMs: 10 }));
  // core-lro reports a failed operation as "The long-running operation has failed. <code>. <message>".
  t.regex(e.message, /has failed\. InternalServerError\. Allocation failed on the host/);
  const after = await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.deepEqual(addrs(after), ['ipconfig1=10.1.0.4']);
  t.is(after.provisioningState, 'Failed');
  t.is(emu.ipOwner('10.1.0.8'), undefined, 'the address went back to the subnet');
  t.is(emu.calls().faulted, 1);
});

test('a write during an operation: 429 RetryableError (SDK retries after Retry-After) or a failed AnotherOperationInProgress', async (t) => {
  const { emu, net } = await start(t, { config: { mode: 'async', asyncDurationMs: 60_000, retryableRetryAfterSeconds: 1 } });
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const first = await net.networkInterfaces.beginCreateOrUpdate(RG, 'vm-0-nic', nic, { updateIntervalInMs: 20 });
  const noRetry = createNetworkClient(emu, SUB, { retry: { maxRetries: 0 } });
  const e = await rejects(t, noRetry.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic));
  t.is(e.statusCode, 429);
  t.is(e.code, 'RetryableError');
  t.is(e.response?.headers.get('retry-after'), '1');
  t.regex(JSON.stringify(e.details ?? e.response?.bodyAsText), /RetryableErrorDueToAnotherOperation/);
  // The SDK gets the 429, waits 1 s; the first operation ends meanwhile; the retry goes through.
  const started = Date.now();
  setTimeout(() => emu.finishOperations(), 300);
  const second = await net.networkInterfaces.beginCreateOrUpdate(RG, 'vm-0-nic', nic, { updateIntervalInMs: 20 });
  t.true(Date.now() - started >= 900, 'waited the Retry-After second');
  t.true((await first.pollUntilDone()).ipConfigurations!.length >= 1);
  emu.finishOperations();
  t.is((await second.pollUntilDone()).provisioningState, 'Succeeded');
  t.is(emu.calls().byKind['nic.put'], 4);

  emu.configure({ concurrentWrite: 'failedOperation' });
  const third = await net.networkInterfaces.beginCreateOrUpdate(RG, 'vm-0-nic', nic, { updateIntervalInMs: 20 });
  const conflicting = await net.networkInterfaces.beginCreateOrUpdate(RG, 'vm-0-nic', nic, { updateIntervalInMs: 20 });
  t.is(emu.finishOperations(), 2);
  const conflict = await rejects(t, conflicting.pollUntilDone());
  t.regex(conflict.message, /has failed\. AnotherOperationInProgress\./);
  t.is((await third.pollUntilDone()).provisioningState, 'Succeeded', 'the first writer still wins');
});

test('ARM throttling: 429 SubscriptionRequestsThrottled with Retry-After; the SDK waits and retries', async (t) => {
  const { emu, net } = await start(t, { config: { throttling: { writes: { capacity: 2, refillPerSecond: 0.001 } } } });
  const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
  const remaining: string[] = [];
  const onResponse = (raw: { headers: { get(n: string): string | undefined } }) => { remaining.push(raw.headers.get('x-ms-ratelimit-remaining-subscription-writes') ?? ''); };
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic, { onResponse });
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic, { onResponse });
  t.deepEqual(remaining, ['1', '0']);
  const noRetry = createNetworkClient(emu, SUB, { retry: { maxRetries: 0 } });
  const e = await rejects(t, noRetry.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic));
  t.is(e.statusCode, 429);
  t.is(e.code, 'SubscriptionRequestsThrottled');
  t.is(e.response?.headers.get('retry-after'), '1000', 'one token per 1000 s');
  t.is(e.response?.headers.get('x-ms-ratelimit-remaining-subscription-writes'), '0');
  // Refill one token per second: the SDK's retry after Retry-After: 1 gets through.
  emu.configure({ throttling: { writes: { capacity: 1, refillPerSecond: 1 } } });
  const started = Date.now();
  await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', nic);
  t.true(Date.now() - started >= 900, `retried after Retry-After (${Date.now() - started} ms)`);
  t.is(emu.calls().throttled, 2);
  await net.networkInterfaces.get(RG, 'vm-0-nic', { onResponse: (raw) => remaining.push(raw.headers.get('x-ms-ratelimit-remaining-subscription-reads') ?? '') });
  const reads = Number(remaining.at(-1));
  t.true(reads >= 240 && reads <= 249, `reads have their own bucket of 250 (${reads} left)`);
});

test('fault injection: next N calls fail with a given code; latency; call counts by kind', async (t) => {
  const { emu, net } = await start(t);
  emu.injectFault({ kind: 'nic.get', count: 2, status: 503, code: 'ServiceUnavailable' });
  await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.is(emu.calls().byKind['nic.get'], 3, 'two 503s retried by the SDK, then success');
  emu.injectFault({ kind: 'nic.get', status: 400, code: 'SomethingOdd', message: 'odd', details: [{ code: 'Inner', message: 'inner' }] });
  const e = await rejects(t, net.networkInterfaces.get(RG, 'vm-0-nic'));
  t.is(e.code, 'SomethingOdd');
  // A 429 with retry-after-ms: core-rest-pipeline waits that long, then retries.
  emu.injectFault({ kind: 'nic.get', status: 429, code: 'SubscriptionRequestsThrottled', retryAfterMs: 300 });
  const before = Date.now();
  await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.true(Date.now() - before >= 290, `waited ${Date.now() - before} ms`);
  t.deepEqual(emu.pendingFaults(), []);
  t.throws(() => emu.injectFault({ kind: 'nic.get', as: 'operation' }), { message: /needs kind nic.put or vmssvm.put/ });
  emu.configure({ latencyByKind: { 'vm.get': 150 } });
  const compute = createComputeClient(emu, SUB);
  const started = Date.now();
  await compute.virtualMachines.get(RG, 'vm-1');
  t.true(Date.now() - started >= 145);
  emu.resetCalls();
  await net.networkInterfaces.get(RG, 'vm-1-nic');
  t.deepEqual(emu.calls().byKind, { 'nic.get': 1 });
});

test('scale-set instances: NIC changed through the VM update (networkProfileConfiguration), If-Match with quoted integer ETags', async (t) => {
  const { emu, net, compute, subnetId } = await start(t, { config: { mode: 'async', asyncDurationMs: 40 } });
  const vm = await compute.virtualMachineScaleSetVMs.get(RG, 'pool1', '0');
  t.is(vm.etag, '"1"');
  const nicCfg = vm.networkProfileConfiguration!.networkInterfaceConfigurations![0]!;
  nicCfg.ipConfigurations ??= [];
  nicCfg.ipConfigurations.push({ name: 'pod-a', subnet: { id: subnetId('nodes') }, primary: false }, { name: 'pod-b', subnet: { id: subnetId('nodes') }, primary: false });
  const updated = await compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { ifMatch: '"1"', updateIntervalInMs: 10 });
  t.is(updated.etag, '"2"');
  t.is(updated.provisioningState, 'Succeeded');
  const nic = await net.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(RG, 'pool1', '0', 'pool1-nic');
  t.deepEqual(addrs(nic), ['ipconfig1=10.1.0.6', 'pod-a=10.1.0.8', 'pod-b=10.1.0.9']);
  // Drop pod-a: pod-b keeps its address.
  nicCfg.ipConfigurations = nicCfg.ipConfigurations!.filter((c) => c.name !== 'pod-a');
  await compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { ifMatch: '"2"', updateIntervalInMs: 10 });
  t.deepEqual(addrs(await net.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(RG, 'pool1', '0', 'pool1-nic')), ['ipconfig1=10.1.0.6', 'pod-b=10.1.0.9']);
  const stale = await rejects(t, compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { ifMatch: '"2"', updateIntervalInMs: 10 }));
  t.is(stale.statusCode, 412);
  t.is(stale.code, 'PreconditionFailed');
  // Errors from the address space come back from the compute API too.
  nicCfg.ipConfigurations!.push({ name: 'x', subnet: { id: subnetId('other') }, primary: false });
  const diff = await rejects(t, compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { updateIntervalInMs: 10 }));
  t.is(diff.code, 'IpConfigurationsOnSameNicCannotUseDifferentSubnets');
  // A failing scale-set VM operation.
  nicCfg.ipConfigurations!.pop();
  emu.injectFault({ kind: 'vmssvm.put', as: 'operation', status: 500, code: 'InternalExecutionError', message: 'boom' });
  const failed = await rejects(t, compute.virtualMachineScaleSetVMs.update(RG, 'pool1', '0', vm, { updateIntervalInMs: 10 }));
  t.regex(failed.message, /has failed\. InternalExecutionError\. boom/);
  t.is((await compute.virtualMachineScaleSetVMs.get(RG, 'pool1', '0')).provisioningState, 'Failed');
  // No network-API write path exists for a scale-set NIC.
  const raw = await rawRequest(emu, 'PUT', `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/pool1/virtualMachines/0/networkInterfaces/pool1-nic?api-version=2018-10-01`, { location: 'eastus' });
  t.is(raw.status, 405);
  const list = [];
  for await (const i of compute.virtualMachineScaleSetVMs.list(RG, 'pool1')) list.push(i.instanceId);
  t.deepEqual(list, ['0', '1']);
});

test('lists page with nextLink; the admin endpoint injects faults and dumps state; missing token is 401', async (t) => {
  const { emu, net } = await start(t, { config: { pageSize: 2 } });
  for (let i = 2; i < 5; i++) emu.loadScenario({ subscriptionId: SUB, resourceGroup: RG, vnets: [{ name: `v${i}`, addressPrefixes: [`10.${100 + i}.0.0/16`], subnets: [{ name: 's', addressPrefix: `10.${100 + i}.0.0/24` }] }], vms: [{ namePrefix: `x${i}-`, count: 1 }] });
  const names = [];
  for await (const n of net.networkInterfaces.list(RG)) names.push(n.name);
  t.deepEqual(names, ['vm-0-nic', 'vm-1-nic', 'x2-0-nic', 'x3-0-nic', 'x4-0-nic']);
  const injected = await rawRequest(emu, 'POST', '/_emulator/faults', { kind: 'vm.get', status: 409, code: 'Conflict' });
  t.is(injected.status, 201);
  const compute = createComputeClient(emu, SUB);
  t.is((await rejects(t, compute.virtualMachines.get(RG, 'vm-0'))).code, 'Conflict');
  const state = await rawRequest(emu, 'GET', '/_emulator/state');
  t.is((state.body as { networkInterfaces: unknown[] }).networkInterfaces.length, 7);
  const who = await rawRequest(emu, 'GET', '/_emulator/ips/10.1.0.4');
  t.like(who.body as object, { nicId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/vm-0-nic`, nodeName: 'vm-0' });
  const cfg = await rawRequest(emu, 'PATCH', '/_emulator/config', { mode: 'async' });
  t.is((cfg.body as { mode: string }).mode, 'async');
  const bad = await rawRequest(emu, 'PATCH', '/_emulator/config', { mode: 'sideways' });
  t.is(bad.status, 400);
  const anon = await rawRequest(emu, 'GET', `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/vm-0-nic?api-version=2024-05-01`, undefined, false);
  t.is(anon.status, 401);
  t.is((anon.body as { error: { code: string } }).error.code, 'AuthenticationFailed');
  t.truthy(emulatorClientOptions(emu).tlsOptions.ca);
});

function rawRequest(emu: AzureEmulator, method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(`${emu.url}${path}`, {
      method, ca: emu.ca,
      headers: { ...(auth ? { authorization: 'Bearer x' } : {}), ...(data ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('NIC delete: sync 200, async 202 polled to done, 204 when absent, NicInUse while attached; addresses return to the subnet', async (t) => {
  const { emu, net, subnetId } = await start(t);
  const mk = (name: string) => net.networkInterfaces.beginCreateOrUpdateAndWait(RG, name, { location: 'eastus', ipConfigurations: [{ name: 'c', subnet: { id: subnetId('tiny') } }] }, { updateIntervalInMs: 10 });
  t.deepEqual(addrs(await mk('a')), ['c=10.2.0.4']);
  const statuses: number[] = [];
  await net.networkInterfaces.beginDeleteAndWait(RG, 'a', { onResponse: (r) => statuses.push(r.status) });
  t.deepEqual(statuses, [200]);
  t.is(emu.ipOwner('10.2.0.4'), undefined);
  emu.configure({ mode: 'async', asyncDurationMs: 30 });
  t.deepEqual(addrs(await mk('b')).length, 1);
  statuses.length = 0;
  await net.networkInterfaces.beginDeleteAndWait(RG, 'b', { updateIntervalInMs: 10, onResponse: (r) => statuses.push(r.status) });
  t.is(statuses[0], 202);
  t.true(statuses.slice(1).every((s) => s === 200), 'operation polls');
  statuses.length = 0;
  await net.networkInterfaces.beginDeleteAndWait(RG, 'b', { onResponse: (r) => statuses.push(r.status) });
  t.deepEqual(statuses, [204]);
  const inUse = await rejects(t, net.networkInterfaces.beginDeleteAndWait(RG, 'vm-0-nic'));
  t.is(inUse.code, 'NicInUse');
});
