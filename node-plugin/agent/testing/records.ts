import type { NodeIPAllocation } from '../../../crds/api/nodeipallocation.js';

/**
 * Records of one node (node-1, NIC primary 10.1.0.4 in 10.1.0.0/16) for the address service's unit tests,
 * and the node settings that go with them.
 */

export const NODE_SETTINGS = { nodeName: 'node-1', bridgeName: 'podvnet0', hostInterface: 'eth0', mtu: 1500 };

function nodeRecord(spec: Partial<NodeIPAllocation['spec']>, status: Pick<NonNullable<NodeIPAllocation['status']>, 'ips'> & Partial<NonNullable<NodeIPAllocation['status']>>): NodeIPAllocation {
  return {
    apiVersion: 'podvnet.io/v1alpha1',
    kind: 'NodeIPAllocation',
    metadata: { name: 'node-1' },
    spec: { poolName: 'p', releasedIPs: [], ...spec },
    status: {
      nic: { id: 'nic', macAddress: '00:0d:3a:00:00:01', primaryIP: '10.1.0.4', vmID: 'vm' },
      subnet: { id: 'sub', addressPrefix: '10.1.0.0/16', gatewayIP: '10.1.0.1' },
      ...status,
    },
  };
}

/** The record with `n` secondary IPs, 10.1.0.<base> upwards. */
export function recordWithIPs(n: number, base = 10): NodeIPAllocation {
  return nodeRecord({}, { ips: Array.from({ length: n }, (_, i) => ({ ip: `10.1.0.${base + i}`, ipConfigName: `ipc${i}` })) });
}

/** The record of a Block pool: these /28s in status, `releasedBlocks` in spec when given. */
export function recordWithBlocks(blocks: string[], releasedBlocks?: string[]): NodeIPAllocation {
  return nodeRecord(releasedBlocks ? { releasedBlocks } : {}, {
    ips: [],
    blocks: blocks.map((prefix, i) => ({ prefix, ipConfigName: `podvnet-b${i + 1}` })),
    allocatedBlocks: blocks.length,
  });
}
