import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from './testing/manifests.js';

/**
 * The Azure custom roles must grant exactly what the controller's Azure adapter calls. Each SDK call
 * the adapter makes is mapped here to the RBAC actions ARM checks for it (the call's own action, the
 * linked "join" check on the subnet an ip-config references, and the read of the long-running
 * operation's status); a call that is not in the map fails the test, so a new call cannot go out
 * without someone deciding which permission it needs.
 */

const SUBNET_JOIN = 'Microsoft.Network/virtualNetworks/subnets/join/action';
const SDK_CALL_ACTIONS: Record<string, string[]> = {
  'compute.virtualMachines.get': ['Microsoft.Compute/virtualMachines/read'],
  'compute.virtualMachineScaleSetVMs.get': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read'],
  'compute.virtualMachineScaleSetVMs.update': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write', SUBNET_JOIN, 'Microsoft.Compute/locations/operations/read'],
  'compute.virtualMachineScaleSetVMs.beginUpdate': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write', SUBNET_JOIN, 'Microsoft.Compute/locations/operations/read'],
  'compute.virtualMachineScaleSetVMs.beginUpdateAndWait': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write', SUBNET_JOIN, 'Microsoft.Compute/locations/operations/read'],
  'network.networkInterfaces.get': ['Microsoft.Network/networkInterfaces/read'],
  'network.networkInterfaces.list': ['Microsoft.Network/networkInterfaces/read'],
  'network.networkInterfaces.listVirtualMachineScaleSetVMNetworkInterfaces': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read'],
  'network.networkInterfaces.listVirtualMachineScaleSetNetworkInterfaces': ['Microsoft.Compute/virtualMachineScaleSets/networkInterfaces/read'],
  'network.networkInterfaces.getVirtualMachineScaleSetNetworkInterface': ['Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read'],
  'network.networkInterfaces.beginCreateOrUpdate': ['Microsoft.Network/networkInterfaces/write', SUBNET_JOIN, 'Microsoft.Network/locations/operations/read'],
  'network.networkInterfaces.beginCreateOrUpdateAndWait': ['Microsoft.Network/networkInterfaces/write', SUBNET_JOIN, 'Microsoft.Network/locations/operations/read'],
  'network.virtualNetworks.get': ['Microsoft.Network/virtualNetworks/read'],
  'network.subnets.get': ['Microsoft.Network/virtualNetworks/subnets/read'],
};
/** SDK members that are not ARM operations. */
const NOT_OPERATIONS = new Set(['pipeline']);

const RoleDefinition = z.strictObject({
  Name: z.string().min(1),
  IsCustom: z.literal(true),
  Description: z.string().min(1),
  Actions: z.array(z.string().regex(/^Microsoft\.(Compute|Network)\/[A-Za-z/]+$/, 'no wildcards, only Compute and Network')).min(1),
  NotActions: z.array(z.string()).length(0),
  DataActions: z.array(z.string()).length(0),
  NotDataActions: z.array(z.string()).length(0),
  AssignableScopes: z.array(z.string().regex(/^\/subscriptions\/[0-9a-f-]{36}(\/resourceGroups\/[^/]+)?$/)).min(1),
});

const roles = ['podvnet-network-operator.json', 'podvnet-operation-reader.json'].map((f) =>
  RoleDefinition.parse(JSON.parse(readFileSync(join(REPO_ROOT, 'deploy', 'azure', f), 'utf8'))));

function sdkCallsOfAdapter(): string[] {
  const src = readFileSync(join(REPO_ROOT, 'controllers', 'azure.ts'), 'utf8');
  const calls = new Set<string>();
  for (const m of src.matchAll(/\b(compute|network)\.([A-Za-z]+)\.([A-Za-z]+)\(/g)) {
    if (!NOT_OPERATIONS.has(m[2]!)) calls.add(`${m[1]}.${m[2]}.${m[3]}`);
  }
  return [...calls].sort();
}

test('role definitions are well formed, with no wildcard and no data-plane action', (t) => {
  t.is(roles.length, 2);
  t.not(roles[0]!.Name, roles[1]!.Name);
});

test('the operation reader only reads operation status', (t) => {
  t.deepEqual(roles[1]!.Actions.every((a) => a.endsWith('/locations/operations/read')), true);
});

test('the roles grant exactly the actions the controller\'s Azure calls need', (t) => {
  const calls = sdkCallsOfAdapter();
  t.true(calls.length >= 5, `found ${calls.join(', ')}`);
  const unmapped = calls.filter((c) => !(c in SDK_CALL_ACTIONS));
  t.deepEqual(unmapped, [], 'decide which Azure permission each new call needs, then add it here and to the role');
  const needed = new Set(calls.flatMap((c) => SDK_CALL_ACTIONS[c]!));
  const granted = roles.flatMap((r) => r.Actions);
  t.is(new Set(granted).size, granted.length, 'no action granted twice');
  t.deepEqual([...granted].sort(), [...needed].sort());
});

test('nothing broader than the NIC, the scale-set VM and the subnet join', (t) => {
  const granted = roles.flatMap((r) => r.Actions);
  for (const forbidden of ['Microsoft.Network/virtualNetworks/write', 'Microsoft.Network/virtualNetworks/subnets/write',
    'Microsoft.Compute/virtualMachines/write', 'Microsoft.Compute/virtualMachineScaleSets/write', 'Microsoft.Network/networkInterfaces/delete']) {
    t.false(granted.includes(forbidden), forbidden);
  }
});
