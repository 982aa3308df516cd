import type { Logger } from 'pino';
import type * as DatapathModule from '../datapath/index.js';
import type { PodAddressService } from '../agent/address-service.js';

/** What the CNM driver needs from its neighbours: the agent's address service and the datapath module. */
export type { AddressOwner, AssignedAddress, PodAddressService } from '../agent/address-service.js';

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
