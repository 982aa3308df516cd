/**
 * The datapath's public types. Callers (agent, CNI, CNM) import them from './index.js'.
 */

export interface NodeNetwork {
  /** The per-node bridge that every pod's host-side veth is enslaved to. Default 'podvnet0'. */
  bridgeName: string;
  /** The node's NIC inside the node's netns, e.g. 'eth0'. It is never enslaved or readdressed. */
  hostInterface: string;
  /** The NIC's MAC: Azure's fabric delivers only to it. */
  nicMAC: string;
  /** The node's primary IP: the SNAT source for traffic leaving the VNet. */
  primaryIP: string;
  /** CIDR the pod IPs come from (may differ from the node's subnet). */
  podSubnet: string;
  /** Azure's gateway of the pod subnet (subnet .1): the pods' default gateway. */
  gatewayIP: string;
  /** Traffic to these prefixes is not SNATed. */
  vnetPrefixes: string[];
  snat: { enabled: boolean; excludeCIDRs: string[] };
  /** Pod interface MTU (callers default it to hostInterface's MTU; see hostInterfaceMTU()). */
  mtu: number;
  /**
   * Addition to the shared interface: the network namespace that plays "the node" (a path such as
   * /run/netns/vm1 or /proc/<pid>/ns/net, or a name under /run/netns). Undefined (production) means the
   * namespace this process runs in. Tests and the local sandbox point it at a simulated VM.
   */
  hostNetns?: string;
}

export interface PodInterface {
  containerId: string;
  netnsPath: string;
  ifName: string;
  ip: string;
  prefixLength: number;
}

export interface PodInterfaceResult {
  hostVeth: { name: string; mac: string };
  container: { name: string; mac: string; sandbox: string };
  ip: string;
  prefixLength: number;
  gateway: string;
}

export interface PodRef {
  containerId: string;
  ifName: string;
  netnsPath?: string;
  ip?: string;
}

export interface Attachment {
  hostVeth: string;
  containerId: string;
  ifName: string;
  ip?: string;
}

/** checkPod's failure: the message names exactly what is wrong (CNI CHECK reports it verbatim). */
export class DatapathCheckError extends Error {
  override name = 'DatapathCheckError';
}

/** A kernel operation failed; `command` is what ran, `stderr` what the tool said. */
export class DatapathError extends Error {
  override name = 'DatapathError';
  constructor(message: string, readonly command?: string, readonly stderr?: string) {
    super(message);
  }
}
