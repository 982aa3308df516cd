// The test kit of the Azure emulator: one emulator per test with the standard scenario (a VNet 10.0.0.0/8,
// two VMs and a two-instance scale set in the subnet `nodes`), the SDK clients pointed at it, and small
// helpers the SDK-driven tests share. Tests only: nothing in production imports it (tsconfig.build.json
// leaves `**/testing/**` out).
import type { NetworkInterface } from '@azure/arm-network';
import type { RestError } from '@azure/core-rest-pipeline';
import { AzureEmulator, type EmulatorOptions } from '../server.js';
import { generateSelfSignedCert } from '../tls.js';
import { createComputeClient, createNetworkClient, type TestRetryOptions } from '../sdk.js';

export const SUB = '11111111-2222-3333-4444-555555555555';
export const RG = 'rg1';

/** One certificate for every emulator a test file starts (openssl costs tens of ms a call). */
export const testTls = generateSelfSignedCert();

export interface TestEmulatorOptions extends EmulatorOptions {
  /** The subnets of the VNet `vnet`; `nodes` (10.1.0.0/24) holds the VMs and must be among them. */
  subnets?: Array<{ name: string; addressPrefix: string }>;
  /** Retry options of the SDK clients (by default the SDK's, with the emulator's short delays). */
  retry?: TestRetryOptions;
}

export const NODES_AND_OTHER = [{ name: 'nodes', addressPrefix: '10.1.0.0/24' }, { name: 'other', addressPrefix: '10.3.0.0/24' }];

/** Starts an emulator with the standard scenario, closed when the test ends, and clients for it. */
export async function startTestEmulator(t: { teardown: (f: () => Promise<void>) => void }, opts: TestEmulatorOptions = {}) {
  const { subnets = NODES_AND_OTHER, retry, ...emulatorOptions } = opts;
  const emu = await AzureEmulator.start({
    tls: testTls,
    scenario: {
      subscriptionId: SUB, resourceGroup: RG,
      vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets }],
      vms: [{ namePrefix: 'vm-', count: 2, subnet: 'nodes' }],
      scaleSets: [{ name: 'pool1', count: 2, subnet: 'nodes' }],
    },
    ...emulatorOptions,
  });
  t.teardown(() => emu.close());
  const clientOptions = retry ? { retry } : undefined;
  const net = createNetworkClient(emu, SUB, clientOptions);
  const compute = createComputeClient(emu, SUB, clientOptions);
  const subnetId = (name: string) => `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/${name}`;
  return { emu, net, compute, subnetId };
}

/** A NIC's ip-configs as `name=address`, in the NIC's order. */
export const addrs = (nic: NetworkInterface) => (nic.ipConfigurations ?? []).map((c) => `${c.name}=${c.privateIPAddress}`);

/** Asserts that `p` rejects and returns the SDK's error. */
export async function rejects(t: { throwsAsync: (p: Promise<unknown>) => Promise<unknown> }, p: Promise<unknown>): Promise<RestError> {
  const e = await t.throwsAsync(p);
  if (!(e instanceof Error)) throw new Error('expected an error');
  return e as RestError;
}
