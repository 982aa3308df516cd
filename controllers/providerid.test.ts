import test from 'ava';
import { parseArmId, parseProviderID } from './providerid.js';

const SUB = '11111111-2222-3333-4444-555555555555';

test('a standalone VM', (t) => {
  t.deepEqual(parseProviderID(`azure:///subscriptions/${SUB}/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/node-a`), {
    kind: 'vm', subscriptionId: SUB, resourceGroup: 'rg-1', name: 'node-a',
    id: `/subscriptions/${SUB}/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/node-a`,
  });
});

test('a scale-set instance, in the lower case some cloud-provider versions write', (t) => {
  const ref = parseProviderID(`azure:///subscriptions/${SUB}/resourcegroups/mc_rg/providers/microsoft.compute/virtualmachinescalesets/aks-pool-1/virtualmachines/17`);
  t.like(ref, { kind: 'vmss', resourceGroup: 'mc_rg', scaleSet: 'aks-pool-1', instanceId: '17' });
});

test('rejects what is not an Azure VM, with a message naming the problem', (t) => {
  t.throws(() => parseProviderID(undefined), { message: /no spec.providerID/ });
  t.throws(() => parseProviderID('aws:///us-east-1a/i-0abc'), { message: /not an Azure one/ });
  t.throws(() => parseProviderID(`azure:///subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/availabilitySets/x`), { message: /neither a virtual machine/ });
  t.throws(() => parseProviderID(`azure://subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x`), { message: /not an Azure one/ });
});

test('parseArmId keeps the names of nested resources', (t) => {
  t.deepEqual(parseArmId(`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3/networkInterfaces/nic0`), {
    subscriptionId: SUB, resourceGroup: 'rg', names: ['ss', '3', 'nic0'],
  });
});
