import type { AzureEmulator } from '../azure-emulator/index.js';
import { cidrContains, formatCIDR, parseCIDR, type CIDR } from '../../crds/ipv4.js';

/** The sandbox's address plan: the VNet, its subnets and the two hosts beside the VMs. */
export const SANDBOX_NETWORK = {
  vnet: '10.240.0.0/16',
  nodeSubnet: '10.240.0.0/24',
  outsideHostIP: '203.0.113.80',
  vnetHostIP: '10.240.0.250',
  /** A second subnet of the VNet for SandboxOptions.podSubnet (pods in a subnet other than the nodes'). */
  podSubnet: '10.240.16.0/20',
} as const;

/** The pod subnet must be a subnet of the sandbox VNet apart from the nodes' subnet (which holds the VNet host too). */
export function checkPodSubnet(cidr: string): string {
  let c: CIDR;
  try { c = parseCIDR(cidr); } catch (e) { throw new Error(`sandbox: podSubnet: ${(e as Error).message}`); }
  const vnet = parseCIDR(SANDBOX_NETWORK.vnet);
  const nodes = parseCIDR(SANDBOX_NETWORK.nodeSubnet);
  if (!cidrContains(vnet, c.network) || c.prefixLength < vnet.prefixLength) throw new Error(`sandbox: podSubnet ${cidr} is not inside the VNet ${SANDBOX_NETWORK.vnet}`);
  if (cidrContains(c, nodes.network) || cidrContains(nodes, c.network)) throw new Error(`sandbox: podSubnet ${cidr} overlaps the nodes' subnet ${SANDBOX_NETWORK.nodeSubnet}`);
  if (c.prefixLength > 29) throw new Error(`sandbox: podSubnet ${cidr} is smaller than Azure's smallest subnet, a /29`);
  return formatCIDR(c);
}

/**
 * Keeps the fabric's view of "which NIC holds which IP" equal to Azure's: Azure's SDN starts delivering
 * an IP to a NIC when the ip-config is created and stops when it is removed.
 */
export function syncFabricWithAzure(azure: AzureEmulator, fabric: { setNicIPs(vm: string, ips: string[]): Promise<void> }, vmNames: Set<string>): () => void {
  const held = new Map<string, Set<string>>();
  let chain = Promise.resolve();
  const stop = azure.onIpChange((ev) => {
    const vm = ev.nodeName;
    if (!vm || !vmNames.has(vm)) return;
    const ips = held.get(vm) ?? new Set<string>();
    for (const ip of ev.removed) ips.delete(ip);
    for (const ip of ev.added) ips.add(ip);
    held.set(vm, ips);
    const snapshot = [...ips];
    chain = chain.then(() => fabric.setNicIPs(vm, snapshot)).catch((e: Error) => {
      process.stderr.write(`sandbox: fabric update for ${vm} failed: ${e.message}\n`);
    });
  });
  return stop;
}
