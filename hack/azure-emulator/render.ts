// Resources as Azure's REST API returns them.
import type { IpConfig, Nic, ScaleSet, ScaleSetInstance, Subnet, Vm, Vnet } from './state.js';

export function renderIpConfig(nic: Nic, c: IpConfig): Record<string, unknown> {
  return {
    name: c.name,
    id: `${nic.id}/ipConfigurations/${c.name}`,
    etag: nic.etag,
    type: 'Microsoft.Network/networkInterfaces/ipConfigurations',
    properties: {
      provisioningState: nic.provisioningState === 'Updating' ? 'Updating' : 'Succeeded',
      privateIPAddress: c.privateIPAddress,
      privateIPAllocationMethod: c.allocation,
      subnet: { id: c.subnet.id },
      primary: c.primary,
      privateIPAddressVersion: 'IPv4',
      // A block answers "10.1.2.16/28" in privateIPAddress and its length here (NIC API 2023-11-01+).
      ...(c.prefixLength === undefined ? {} : { privateIPAddressPrefixLength: c.prefixLength }),
    },
  };
}

export function renderNic(nic: Nic): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    provisioningState: nic.provisioningState,
    resourceGuid: nic.resourceGuid,
    ipConfigurations: nic.ipConfigs.map((c) => renderIpConfig(nic, c)),
    dnsSettings: { dnsServers: [], appliedDnsServers: [], internalDomainNameSuffix: 'emulator.internal.cloudapp.net' },
    macAddress: nic.macAddress,
    enableAcceleratedNetworking: nic.enableAcceleratedNetworking,
    vnetEncryptionSupported: false,
    enableIPForwarding: nic.enableIPForwarding,
    hostedWorkloads: [],
    tapConfigurations: [],
    nicType: 'Standard',
    auxiliaryMode: 'None',
    auxiliarySku: 'None',
  };
  if (nic.virtualMachineId) {
    properties.primary = true;
    properties.virtualMachine = { id: nic.virtualMachineId };
  }
  const body: Record<string, unknown> = {
    name: nic.name,
    id: nic.id,
    etag: nic.etag,
    type: 'Microsoft.Network/networkInterfaces',
    location: nic.location,
    kind: 'Regular',
    properties,
  };
  if (Object.keys(nic.tags).length) body.tags = nic.tags;
  return body;
}

/**
 * `ipConfigIds`: Azure lists every ip-config in the subnet (`properties.ipConfigurations`, unpaged) on a
 * subnet GET or list; left out when not given.
 */
export function renderSubnet(s: Subnet, ipConfigIds?: readonly string[]): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    provisioningState: 'Succeeded',
    addressPrefix: s.addressPrefix,
    delegations: [],
    privateEndpointNetworkPolicies: 'Disabled',
    privateLinkServiceNetworkPolicies: 'Enabled',
  };
  if (ipConfigIds) properties.ipConfigurations = ipConfigIds.map((id) => ({ id }));
  return {
    name: s.name,
    id: s.id,
    etag: s.etag,
    type: 'Microsoft.Network/virtualNetworks/subnets',
    properties,
  };
}

export function renderVnet(v: Vnet): Record<string, unknown> {
  return {
    name: v.name,
    id: v.id,
    etag: v.etag,
    type: 'Microsoft.Network/virtualNetworks',
    location: v.location,
    properties: {
      provisioningState: 'Succeeded',
      resourceGuid: v.resourceGuid,
      addressSpace: { addressPrefixes: v.addressPrefixes },
      subnets: [...v.subnets.values()].map((s) => renderSubnet(s)),
      virtualNetworkPeerings: [],
      enableDdosProtection: false,
    },
  };
}

/** Compute ETags are quoted integers. */
export const computeEtag = (n: number): string => `"${n}"`;

export function renderVm(vm: Vm): Record<string, unknown> {
  return {
    name: vm.name,
    id: vm.id,
    type: 'Microsoft.Compute/virtualMachines',
    location: vm.location,
    etag: computeEtag(vm.etag),
    properties: {
      vmId: vm.vmId,
      hardwareProfile: { vmSize: vm.vmSize },
      osProfile: { computerName: vm.computerName, adminUsername: 'azureuser' },
      networkProfile: {
        networkInterfaces: vm.nics.map((n, i) => ({ id: n.id, properties: { primary: i === 0 } })),
      },
      provisioningState: 'Succeeded',
    },
  };
}

function networkProfileConfiguration(instance: ScaleSetInstance): Record<string, unknown> {
  return {
    networkInterfaceConfigurations: instance.nics.map((nic, i) => ({
      name: nic.name,
      properties: {
        primary: i === 0,
        enableAcceleratedNetworking: nic.enableAcceleratedNetworking,
        enableIPForwarding: nic.enableIPForwarding,
        dnsSettings: { dnsServers: [] },
        ipConfigurations: nic.ipConfigs.map((c) => ({
          name: c.name,
          properties: {
            subnet: { id: c.subnet.id }, primary: c.primary, privateIPAddressVersion: 'IPv4',
            ...(c.prefixLength === undefined ? {} : { privateIPAddressPrefixLength: c.prefixLength }),
          },
        })),
      },
    })),
  };
}

export function renderScaleSet(ss: ScaleSet): Record<string, unknown> {
  return {
    name: ss.name,
    id: ss.id,
    type: 'Microsoft.Compute/virtualMachineScaleSets',
    location: ss.location,
    etag: computeEtag(ss.etag),
    sku: { name: ss.vmSize, tier: 'Standard', capacity: ss.instances.size },
    properties: {
      orchestrationMode: 'Uniform',
      uniqueId: ss.uniqueId,
      provisioningState: 'Succeeded',
      upgradePolicy: { mode: 'Manual' },
      virtualMachineProfile: {
        osProfile: { computerNamePrefix: ss.computerNamePrefix, adminUsername: 'azureuser' },
        networkProfile: {
          networkInterfaceConfigurations: [{
            name: ss.nicConfigName,
            properties: {
              primary: true,
              ipConfigurations: [{ name: 'ipconfig1', properties: { subnet: { id: ss.subnet.id }, primary: true, privateIPAddressVersion: 'IPv4' } }],
            },
          }],
        },
      },
    },
  };
}

export function renderScaleSetVm(instance: ScaleSetInstance): Record<string, unknown> {
  const ss = instance.scaleSet;
  return {
    name: `${ss.name}_${instance.instanceId}`,
    id: instance.id,
    type: 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines',
    location: ss.location,
    instanceId: instance.instanceId,
    etag: computeEtag(instance.etag),
    sku: { name: ss.vmSize, tier: 'Standard' },
    properties: {
      latestModelApplied: true,
      vmId: instance.vmId,
      hardwareProfile: { vmSize: ss.vmSize },
      osProfile: { computerName: instance.computerName, adminUsername: 'azureuser' },
      networkProfile: { networkInterfaces: instance.nics.map((n, i) => ({ id: n.id, properties: { primary: i === 0 } })) },
      networkProfileConfiguration: networkProfileConfiguration(instance),
      provisioningState: instance.provisioningState,
    },
  };
}
