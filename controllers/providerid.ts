/**
 * node.spec.providerID as the Azure cloud provider writes it, for the two kinds of machine PodVNet serves:
 *   azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>
 *   azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachineScaleSets/<ss>/virtualMachines/<instance>
 * ARM ids are case-insensitive; the cloud provider lower-cases the resource group on some versions.
 */

export type MachineRef =
  | { kind: 'vm'; subscriptionId: string; resourceGroup: string; name: string; id: string }
  | { kind: 'vmss'; subscriptionId: string; resourceGroup: string; scaleSet: string; instanceId: string; id: string };

const PREFIX = /^azure:\/\/(?=\/)/i;
const VM = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines\/([^/]+)$/i;
const VMSS = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachineScaleSets\/([^/]+)\/virtualMachines\/([^/]+)$/i;

export function parseProviderID(providerID: string | undefined): MachineRef {
  if (!providerID) throw new Error('node has no spec.providerID: the Azure cloud provider sets it once the node is registered');
  if (!PREFIX.test(providerID)) throw new Error(`spec.providerID ${JSON.stringify(providerID)} is not an Azure one (azure:///subscriptions/...)`);
  const id = providerID.replace(PREFIX, '').replace(/\/+$/, '');
  const vmss = VMSS.exec(id);
  if (vmss) {
    return { kind: 'vmss', subscriptionId: vmss[1]!, resourceGroup: vmss[2]!, scaleSet: vmss[3]!, instanceId: vmss[4]!, id };
  }
  const vm = VM.exec(id);
  if (vm) return { kind: 'vm', subscriptionId: vm[1]!, resourceGroup: vm[2]!, name: vm[3]!, id };
  throw new Error(
    `spec.providerID ${JSON.stringify(providerID)} names neither a virtual machine nor a scale-set instance ` +
      '(.../providers/Microsoft.Compute/virtualMachines/NAME or .../virtualMachineScaleSets/SS/virtualMachines/ID)',
  );
}

/** Parts of any ARM id under a resource group: /subscriptions/S/resourceGroups/G/providers/NS/type/name/... */
export function parseArmId(id: string): { subscriptionId: string; resourceGroup: string; names: string[] } {
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/[^/]+\/(.+)$/i.exec(id);
  if (!m) throw new Error(`not an ARM resource id: ${JSON.stringify(id)}`);
  const rest = m[3]!.split('/');
  // type/name pairs: keep the names
  const names = rest.filter((_, i) => i % 2 === 1);
  return { subscriptionId: m[1]!, resourceGroup: m[2]!, names };
}
