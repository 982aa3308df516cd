import type { Logger } from 'pino';
import type * as DatapathModule from '../datapath/index.js';
import type { NodeNetwork } from '../datapath/index.js';

/**
 * What the CNM driver needs from its neighbours. The shapes are those of the shared interface document:
 * the node agent's PodAddressService and the datapath module. They are restated structurally here so
 * the driver compiles and is tested on its own; the real objects fit them as they are.
 */

export interface AddressOwner {
  containerId: string;
  ifName: string;
  runtime: 'cni' | 'cnm';
  netnsPath?: string;
}
export interface AssignedAddress {
  ip: string;
  prefixLength: number;
  gateway: string;
}
export interface PodAddressService {
  acquire(owner: AddressOwner): Promise<AssignedAddress>;
  release(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): Promise<void>;
  lookup(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): AssignedAddress | undefined;
  nodeNetwork(): NodeNetwork | undefined;
}

/** The datapath functions the driver calls; `typeof import('../datapath/index.js')` satisfies it. */
export type Datapath = Pick<typeof DatapathModule, 'ensureNode' | 'attachHostVeth' | 'detachPod' | 'listAttachments'>;

export interface CnmDeps {
  addresses: PodAddressService;
  datapath: Datapath;
  logger: Logger;
  /** Directory for the driver's crash-safe state (network, endpoint and address records). */
  stateDir: string;
  /** Replaces the Docker veth handling (tests of the protocol only); defaults to ./docker-veth.ts. */
  dockerVeths?: import('./docker-veth.js').DockerVeths;
  /** Clock (tests). */
  now?: () => number;
}

/** The agent's error classes are matched by name so the driver does not depend on the agent's module. */
export function isErrorNamed(err: unknown, name: string): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === name || err.constructor.name === name;
}
