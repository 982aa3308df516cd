// Azure's error body: {"error":{"code","message","details":[...]}} with the HTTP status ARM uses.

export interface AzureErrorDetail { code: string; message: string }

export class AzureError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: AzureErrorDetail[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { code: string; message: string; details: AzureErrorDetail[] } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/**
 * Emulator's choices: the codes Azure uses for these are not in public docs (or not found in them here);
 * each is a 400 that no retry fixes, with a message saying which rule was broken.
 */
export const PREFIX_ON_PRIMARY_CODE = 'PrivateIPAddressPrefixNotAllowedOnPrimaryIpConfiguration';
export const PREFIX_WITH_PUBLIC_IP_CODE = 'PrivateIPAddressPrefixNotAllowedWithPublicIPAddress';
export const PREFIX_LENGTH_UNSUPPORTED_CODE = 'InvalidPrivateIPAddressPrefixLength';
export const VNET_PRIVATE_IP_LIMIT_CODE = 'PrivateIPAddressesPerVirtualNetworkLimitReached';
export const NETWORK_RP_THROTTLED_CODE = 'TooManyRequests';

/** Emulator's choice: the code Azure uses for more ip-configs than a NIC allows is not in public docs. */
export const IP_CONFIG_LIMIT_CODE = 'NetworkInterfaceIpConfigurationCountExceedsLimit';

export const errors = {
  notFound: (type: string, name: string, rg: string) =>
    new AzureError(404, 'ResourceNotFound', `The Resource '${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`),
  resourceGroupNotFound: (rg: string) =>
    new AzureError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`),
  subscriptionNotFound: (sub: string) =>
    new AzureError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`),
  badRequest: (message: string) => new AzureError(400, 'InvalidRequestFormat', `Cannot parse the request. ${message}`),
  invalidParameter: (message: string) => new AzureError(400, 'InvalidParameter', message),
  unsupportedRoute: (method: string, path: string) =>
    new AzureError(404, 'InvalidResourceType', `The resource type could not be found for ${method} ${path}.`),
  methodNotAllowed: (method: string, type: string) =>
    new AzureError(405, 'MethodNotAllowed', `The ${method} method is not allowed on resources of type '${type}'.`),
  authMissing: () =>
    new AzureError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing."),
  authInvalid: () =>
    new AzureError(401, 'InvalidAuthenticationToken', 'The access token is invalid.'),
  preconditionFailed: (id: string, given: string, current: string | undefined) =>
    new AzureError(412, 'PreconditionFailed',
      `Precondition failed for resource ${id}: the If-Match value ${given} does not match the current ETag ${current ?? '(resource does not exist)'}.`),
  subnetIsFull: (subnet: string, prefix: string, count: number) =>
    new AzureError(400, 'SubnetIsFull', `Subnet ${subnet} with address prefix ${prefix} does not have enough capacity for ${count} IP addresses.`),
  privateIpIsAllocated: (ipConfigId: string, ip: string, ownerId: string) =>
    new AzureError(400, 'PrivateIPAddressIsAllocated',
      `IP configuration ${ipConfigId} is using the private IP address ${ip} which is already allocated to resource ${ownerId}.`),
  privateIpInReservedRange: (ip: string, prefix: string) =>
    new AzureError(400, 'PrivateIPAddressInReservedRange',
      `Private static IP address ${ip} falls within reserved IP range of subnet prefix ${prefix}.`),
  privateIpNotInSubnet: (ip: string, subnetId: string, prefix: string) =>
    new AzureError(400, 'PrivateIPAddressNotInSubnet',
      `Private static IP address ${ip} does not belong to the range of subnet prefix ${prefix} of subnet ${subnetId}.`),
  invalidResourceReference: (refId: string, byId: string) =>
    new AzureError(400, 'InvalidResourceReference',
      `Resource ${refId} referenced by resource ${byId} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.`,
      [{ code: 'NotFound', message: `Resource ${refId} not found.` }]),
  onePrimary: (nicId: string) =>
    new AzureError(400, 'NetworkInterfaceMustHaveOneOneIPConfigAsPrimary',
      `Network interface ${nicId} must have one and only one IP configuration as primary.`),
  differentSubnets: (nicId: string) =>
    new AzureError(400, 'IpConfigurationsOnSameNicCannotUseDifferentSubnets',
      `IP configurations on same NIC ${nicId} cannot use different subnets.`),
  tooManyIpConfigs: (nicId: string, count: number, limit: number) =>
    new AzureError(400, IP_CONFIG_LIMIT_CODE,
      `Network interface ${nicId} has ${count} IP configurations, which exceeds the limit of ${limit} IP configurations per network interface.`),
  duplicateName: (nicId: string, name: string) =>
    new AzureError(400, 'DuplicateResourceName', `Network interface ${nicId} has two IP configurations named '${name}'.`),
  retryableDueToAnotherOperation: (opName: string, opId: string, resourceId: string, retryAfterSeconds: number) =>
    new AzureError(429, 'RetryableError', 'A retryable error occurred.',
      [{ code: 'RetryableErrorDueToAnotherOperation',
        message: `Operation ${opName} (${opId}) is updating resource ${resourceId}. The call can be retried in ${retryAfterSeconds} seconds.` }],
      { 'Retry-After': String(retryAfterSeconds) }),
  anotherOperationInProgress: (opName: string, opId: string, resourceId: string) =>
    new AzureError(409, 'AnotherOperationInProgress',
      `Another operation on this or dependent resource is in progress. To retry later, please check operation status at ${opId}. Operation ${opName} is in progress on resource ${resourceId}.`),
  throttled: (kind: 'read' | 'write', sub: string, retryAfterSeconds: number) =>
    new AzureError(429, 'SubscriptionRequestsThrottled',
      `Number of '${kind}' requests for subscription '${sub}' actor 'podvnet-emulator' exceeded. Please try again after '${retryAfterSeconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.`,
      [], { 'Retry-After': String(retryAfterSeconds) }),
  prefixOnPrimary: (ipConfigId: string) =>
    new AzureError(400, PREFIX_ON_PRIMARY_CODE,
      `IP configuration ${ipConfigId} is primary: a private IP address prefix (privateIPAddressPrefixLength) is allowed only on secondary IP configurations.`),
  prefixWithPublicIp: (ipConfigId: string) =>
    new AzureError(400, PREFIX_WITH_PUBLIC_IP_CODE,
      `IP configuration ${ipConfigId} has a private IP address prefix and a public IP address: an IP configuration with privateIPAddressPrefixLength cannot have a public IP address.`),
  unsupportedPrefixLength: (ipConfigId: string, length: number) =>
    new AzureError(400, PREFIX_LENGTH_UNSUPPORTED_CODE,
      `IP configuration ${ipConfigId} asks for privateIPAddressPrefixLength ${length}; the supported IPv4 prefix length is 28.`),
  prefixNotDynamic: (ipConfigId: string) =>
    new AzureError(400, 'InvalidParameter',
      `IP configuration ${ipConfigId}: a private IP address prefix must use privateIPAllocationMethod Dynamic (static prefixes are not emulated).`),
  vnetPrivateIpLimit: (vnetId: string, nicId: string, used: number, adding: number, limit: number) =>
    new AzureError(400, VNET_PRIVATE_IP_LIMIT_CODE,
      `Network interface ${nicId} would add ${adding} private IP addresses to virtual network ${vnetId}, which has ${used} of its limit of ${limit} (a private IP address prefix counts as one).`),
  networkThrottled: (sub: string, location: string, retryAfterSeconds: number, limit: number, windowSeconds: number) =>
    new AzureError(429, NETWORK_RP_THROTTLED_CODE,
      `Too many write requests to Microsoft.Network for subscription '${sub}' in region '${location}': the limit is ${limit} per ${windowSeconds} seconds. Retry after ${retryAfterSeconds} seconds.`,
      [], { 'Retry-After': String(retryAfterSeconds) }),
  nicInUse: (nicId: string, vmId: string) =>
    new AzureError(400, 'NicInUse', `Network Interface ${nicId} is used by existing resource ${vmId}. In order to delete the network interface, it must be dissociated from the resource.`),
};
