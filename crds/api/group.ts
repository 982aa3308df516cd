/** The API group and version every PodVNet custom resource is served under. */
export const API_GROUP = 'podvnet.io';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** Label the controller puts on each NodeIPAllocation so a pool can list its records cheaply. */
export const POOL_LABEL = `${API_GROUP}/pool`;
/** Finalizer that makes a pool or record give its ip-configs back to Azure before it goes away. */
export const RELEASE_FINALIZER = `${API_GROUP}/release-ip-configs`;
/** Field manager names, so server-side apply keeps each writer to its own fields. */
export const CONTROLLER_FIELD_MANAGER = 'podvnet-controller';
export const AGENT_FIELD_MANAGER = 'podvnet-agent';

/** Azure's limits that bound every policy decision. */
export const AZURE_MAX_IP_CONFIGS_PER_NIC = 256;
export const MAX_PODS_PER_NODE = 250;

/** Block mode: each secondary ip-config carries a /28 (privateIPAddressPrefixLength), 16 addresses. */
export const BLOCK_PREFIX_LENGTH = 28;
export const BLOCK_SIZE = 2 ** (32 - BLOCK_PREFIX_LENGTH);
/** Blocks a node needs to reach MAX_PODS_PER_NODE addresses (250 pods take 16 blocks of 16). */
export const MAX_BLOCKS_PER_NODE = Math.ceil(MAX_PODS_PER_NODE / BLOCK_SIZE);
