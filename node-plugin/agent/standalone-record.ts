import { API_GROUP_VERSION } from '../../crds/api/group.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { azureGateway, ipToInt, parseCIDR, formatCIDR } from '../../crds/ipv4.js';
import { macFromImds, type ImdsInstance } from './imds.js';

/**
 * Standalone mode (no API server): the agent still works from a NodeIPAllocation, made here from what the
 * VM itself can see (IMDS, or ARM with its managed identity), so the address service, the CNI and CNM
 * paths and the datapath are exactly those of a cluster node. Pure functions.
 */

export const STANDALONE_POOL = 'standalone';

export interface StandaloneFacts {
  nodeName: string;
  nic: { id: string; macAddress: string; primaryIP: string; vmID: string };
  subnet: { id: string; addressPrefix: string };
  vnetAddressPrefixes: string[];
  ips: Array<{ ip: string; ipConfigName: string }>;
  targetIPs?: number | undefined;
}

export function standaloneRecord(f: StandaloneFacts): NodeIPAllocation {
  const cidr = parseCIDR(f.subnet.addressPrefix);
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'NodeIPAllocation',
    // One constant uid: a standalone node's record is never deleted and recreated.
    metadata: { name: f.nodeName, uid: `standalone-${f.nodeName}` },
    spec: { poolName: STANDALONE_POOL, releasedIPs: [] },
    status: {
      nic: f.nic,
      subnet: { id: f.subnet.id, addressPrefix: formatCIDR(cidr), gatewayIP: azureGateway(cidr) },
      vnetAddressPrefixes: f.vnetAddressPrefixes,
      ips: [...f.ips].sort((a, b) => ipToInt(a.ip) - ipToInt(b.ip)),
      allocatedIPs: f.ips.length,
      ...(f.targetIPs !== undefined ? { targetIPs: f.targetIPs } : {}),
    },
  } as NodeIPAllocation;
}

/**
 * Static mode, as the seed's plugin did: the pod IPs are the secondary addresses IMDS lists on the VM's
 * primary NIC (its first address is the VM's own), in the primary address's subnet.
 */
export function recordFromImds(instance: ImdsInstance, opts: { nodeName: string; vnetPrefixes: string[] }): NodeIPAllocation {
  const nic = instance.network.interface[0]!;
  const [primary, ...secondary] = nic.ipv4.ipAddress;
  const subnet = nic.ipv4.subnet[0]!;
  const addressPrefix = `${subnet.address}/${subnet.prefix}`;
  return standaloneRecord({
    nodeName: opts.nodeName,
    // IMDS names neither the NIC nor the subnet: these ids only say where the facts came from.
    nic: { id: `imds:${nic.macAddress.toLowerCase()}`, macAddress: macFromImds(nic.macAddress), primaryIP: primary!.privateIpAddress, vmID: instance.compute.resourceId },
    subnet: { id: `imds:${addressPrefix}`, addressPrefix },
    vnetAddressPrefixes: opts.vnetPrefixes,
    ips: secondary.map((a) => ({ ip: a.privateIpAddress, ipConfigName: `imds-${a.privateIpAddress}` })),
  });
}
