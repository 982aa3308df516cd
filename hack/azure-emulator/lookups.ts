// From a route's path parameters to the resource they name, or Azure's 404 for it. Every route that reads
// a NIC, VNet, VM, scale set or instance finds it here, so each lookup and its error exist once.
import { errors } from './errors.js';
import type { Params } from './http.js';
import { ids, key, type EmulatorState, type IpConfig, type Nic, type ScaleSet, type ScaleSetInstance, type Vm, type Vnet } from './state.js';

/** Lists and writes in a resource group that does not exist answer ResourceGroupNotFound. */
export function requireResourceGroup(st: EmulatorState, p: Params): void {
  if (!st.hasResourceGroup(p.sub!, p.rg!)) throw errors.resourceGroupNotFound(p.rg!);
}

/** A filter for resources in the route's subscription and resource group (names compare case-insensitively). */
export const inResourceGroup = (p: Params) => (x: { subscriptionId: string; resourceGroup: string }): boolean =>
  x.subscriptionId.toLowerCase() === p.sub!.toLowerCase() && x.resourceGroup.toLowerCase() === p.rg!.toLowerCase();

export const inSubscription = (p: Params) => (x: { subscriptionId: string }): boolean => x.subscriptionId.toLowerCase() === p.sub!.toLowerCase();

export function nicOr404(st: EmulatorState, p: Params): Nic {
  const nic = st.nics.get(key(ids.nic(p.sub!, p.rg!, p.nic!)));
  if (!nic) throw errors.notFound('Microsoft.Network/networkInterfaces', p.nic!, p.rg!);
  return nic;
}

export function ipConfigOr404(nic: Nic, p: Params): IpConfig {
  const c = nic.ipConfigs.find((x) => x.name.toLowerCase() === p.cfg!.toLowerCase());
  if (!c) throw errors.notFound('Microsoft.Network/networkInterfaces/ipConfigurations', `${p.nic}/${p.cfg}`, p.rg!);
  return c;
}

export function vnetOr404(st: EmulatorState, p: Params): Vnet {
  const v = st.vnets.get(key(ids.vnet(p.sub!, p.rg!, p.vnet!)));
  if (!v) throw errors.notFound('Microsoft.Network/virtualNetworks', p.vnet!, p.rg!);
  return v;
}

export function vmOr404(st: EmulatorState, p: Params): Vm {
  const vm = st.vms.get(key(ids.vm(p.sub!, p.rg!, p.vm!)));
  if (!vm) throw errors.notFound('Microsoft.Compute/virtualMachines', p.vm!, p.rg!);
  return vm;
}

export function scaleSetOr404(st: EmulatorState, p: Params): ScaleSet {
  const ss = st.scaleSets.get(key(ids.vmss(p.sub!, p.rg!, p.ss!)));
  if (!ss) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets', p.ss!, p.rg!);
  return ss;
}

/** A scale-set instance; a missing scale set is named as such, as Azure does. */
export function instanceOr404(st: EmulatorState, p: Params): ScaleSetInstance {
  const inst = st.instances.get(key(`${ids.vmss(p.sub!, p.rg!, p.ss!)}/virtualMachines/${p.vm}`));
  if (inst) return inst;
  scaleSetOr404(st, p);
  throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets/virtualMachines', `${p.ss}/${p.vm}`, p.rg!);
}

export function instanceNicOr404(st: EmulatorState, p: Params): Nic {
  const nic = instanceOr404(st, p).nics.find((n) => n.name.toLowerCase() === p.nic!.toLowerCase());
  if (!nic) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces', `${p.ss}/${p.vm}/${p.nic}`, p.rg!);
  return nic;
}
