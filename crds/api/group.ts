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
