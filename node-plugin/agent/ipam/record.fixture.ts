import type { NodeIPAllocation } from '../../../crds/api/nodeipallocation.js';

/** A node-1 record whose NIC holds `n` pod IPs, 10.1.0.<base> upwards (primary 10.1.0.4, subnet 10.1.0.0/16): for the address service's tests. */
export function recordWithIPs(n: number, base = 10): NodeIPAllocation {
  return {
    apiVersion: 'podvnet.io/v1alpha1',
    kind: 'NodeIPAllocation',
    metadata: { name: 'node-1' },
    spec: { poolName: 'p', releasedIPs: [] },
    status: {
      nic: { id: 'nic', macAddress: '00:0d:3a:00:00:01', primaryIP: '10.1.0.4', vmID: 'vm' },
      subnet: { id: 'sub', addressPrefix: '10.1.0.0/16', gatewayIP: '10.1.0.1' },
      ips: Array.from({ length: n }, (_, i) => ({ ip: `10.1.0.${base + i}`, ipConfigName: `ipc${i}` })),
    },
  };
}
