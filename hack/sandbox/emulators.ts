import { AzureEmulator, type ScenarioNode } from '../azure-emulator/index.js';
import { startKubeEmulator, type KubeEmulator } from '../kube-emulator/index.js';
import { SANDBOX_NETWORK } from './network.js';

/**
 * The sandbox's two emulators: Azure with the scenario loaded (the VNet and its subnets, standalone VMs, a
 * scale set) and the Kubernetes API server; with the machines, the subnets and the one pods get addresses of.
 */
export interface Emulated {
  azure: AzureEmulator;
  kube: KubeEmulator;
  machines: ScenarioNode[];
  subnetPrefixes: string[];
  subnetID: string;
}

export async function startEmulators(opts: { vms?: number; scaleSetInstances?: number }, podSubnet: string | undefined, say: (line: string) => void): Promise<Emulated> {
  say('starting the Azure ARM emulator (HTTPS, real SDK clients) and the Kubernetes API emulator');
  // Plain Azure refuses ip-configs of two subnets on one NIC (IpConfigurationsOnSameNicCannotUseDifferentSubnets).
  const azure = await AzureEmulator.start(podSubnet ? { config: { allowMultipleSubnetsPerNic: true } } : {});
  const subnets = [{ name: 'nodes', addressPrefix: SANDBOX_NETWORK.nodeSubnet }, ...(podSubnet ? [{ name: 'pods', addressPrefix: podSubnet }] : [])];
  const scenario = azure.loadScenario({
    vnets: [{ name: 'sandbox-vnet', addressPrefixes: [SANDBOX_NETWORK.vnet], subnets }],
    vms: [{ namePrefix: 'vm-', count: opts.vms ?? 2, subnet: 'nodes' }],
    scaleSets: (opts.scaleSetInstances ?? 1) > 0 ? [{ name: 'pool1', count: opts.scaleSetInstances ?? 1, subnet: 'nodes', computerNamePrefix: 'vmss-pool1-' }] : [],
  });
  const kube = await startKubeEmulator({});
  const subnetID = Object.entries(scenario.subnets).find(([k]) => k.endsWith(podSubnet ? '/pods' : '/nodes'))?.[1];
  if (!subnetID) throw new Error(`sandbox: the scenario has no ${podSubnet ? 'pods' : 'nodes'} subnet`);
  if (podSubnet) say(`pods get addresses of ${podSubnet}, a subnet other than the nodes' ${SANDBOX_NETWORK.nodeSubnet} (the emulator allows several subnets per NIC)`);
  return { azure, kube, machines: scenario.nodes, subnetPrefixes: subnets.map((x) => x.addressPrefix), subnetID };
}
