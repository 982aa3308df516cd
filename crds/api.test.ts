import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import {
  NodeIPAllocationSpec,
  NodeIPAllocationStatus,
  NodeIPPool,
  NodeIPPoolSpec,
  describeIssues,
  nodeIPPoolSpecRules,
  parseSubnetID,
  transitionViolations,
} from './api/index.js';
import { renderCRDs } from './generate.js';

const SUBNET = '/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/pods';

function specErrors(spec: unknown): string {
  const r = NodeIPPoolSpec.safeParse(spec);
  return r.success ? '' : describeIssues(r.error, 'spec');
}

test('a minimal pool gets every default filled in', (t) => {
  const spec = NodeIPPoolSpec.parse({ nodeSelector: {}, subnetID: SUBNET });
  t.deepEqual(spec, {
    nodeSelector: {},
    subnetID: SUBNET,
    allocation: 'Individual',
    ipsPerNode: { min: 0, max: 250 },
    scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: [] },
  });
});

test('zod rejects min > max, naming the field', (t) => {
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, ipsPerNode: { min: 20, max: 10 }, scaling: { batchSize: 4 } }), 'spec.ipsPerNode: min must not exceed max');
});

test('zod rejects a zero batch size', (t) => {
  t.regex(specErrors({ nodeSelector: {}, subnetID: SUBNET, scaling: { batchSize: 0 } }), /^spec\.scaling\.batchSize: Too small: expected number to be >=1$/);
});

test('zod rejects a malformed subnet id and says what the form is', (t) => {
  for (const bad of [
    '/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s',
    '/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v',
    SUBNET.replace('Microsoft.Network', 'Microsoft.Compute'),
    `${SUBNET}/extra`,
    '',
  ]) {
    t.regex(specErrors({ nodeSelector: {}, subnetID: bad }), /^spec\.subnetID: must be a subnet ARM id: \/subscriptions\/<subscription-guid>/, bad);
  }
});

test('ARM ids are case-insensitive in their fixed segments', (t) => {
  const lower = SUBNET.replace('resourceGroups', 'resourcegroups').replace('Microsoft.Network', 'microsoft.network');
  t.deepEqual(parseSubnetID(lower), {
    subscriptionId: '0b1f6471-1bf0-4dda-aec3-111122223333', resourceGroup: 'rg-net', virtualNetwork: 'vnet-1', subnet: 'pods',
  });
});

test('zod rejects unknown fields at every level', (t) => {
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, colour: 'blue' }), 'spec: Unrecognized key: "colour"');
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, scaling: { batchsize: 4 } }), 'spec.scaling: Unrecognized key: "batchsize"');
});

test('zod rejects the other cross-field rules with their CRD messages', (t) => {
  t.is(
    specErrors({ nodeSelector: {}, subnetID: SUBNET, scaling: { requestThresholdPercent: 80, releaseThresholdPercent: 60 } }),
    'spec.scaling: releaseThresholdPercent must be greater than requestThresholdPercent',
  );
  t.is(
    specErrors({ nodeSelector: {}, subnetID: SUBNET, scaling: { requestThresholdPercent: 100, releaseThresholdPercent: 101 }, ipsPerNode: { max: 8 } }),
    'spec: scaling.batchSize must not exceed ipsPerNode.max',
  );
  t.is(
    specErrors({ nodeSelector: { matchExpressions: [{ key: 'pool', operator: 'In' }] }, subnetID: SUBNET }),
    'spec.nodeSelector.matchExpressions.0: In and NotIn need at least one value; Exists and DoesNotExist take none',
  );
});

test('transition rules: subnetID and poolName are immutable', (t) => {
  const before = NodeIPPoolSpec.parse({ nodeSelector: {}, subnetID: SUBNET });
  const after = { ...before, subnetID: SUBNET.replace('pods', 'pods2') };
  t.deepEqual(transitionViolations(nodeIPPoolSpecRules, after, before), ['subnetID is immutable: create a new pool for another subnet']);
  t.deepEqual(transitionViolations(nodeIPPoolSpecRules, before, before), []);
});

test('a node record rejects a released IP that is not an IPv4 address', (t) => {
  const r = NodeIPAllocationSpec.safeParse({ poolName: 'p', releasedIPs: ['10.0.0.300'] });
  t.false(r.success);
  t.is(describeIssues(r.error!, 'spec'), 'spec.releasedIPs.0: must be an IPv4 address in dotted-quad form, such as 10.1.0.4');
});

test('a whole NodeIPPool object parses, keeping metadata it does not model', (t) => {
  const pool = NodeIPPool.parse({
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool',
    metadata: { name: 'default', managedFields: [{ manager: 'argocd' }] },
    spec: { nodeSelector: {}, subnetID: SUBNET },
  });
  t.is(pool.spec.scaling.batchSize, 16);
  t.truthy((pool.metadata as Record<string, unknown>).managedFields);
});

test('the committed CRD YAML is what the zod schemas generate', (t) => {
  for (const [file, text] of renderCRDs()) {
    t.is(readFileSync(new URL(file, import.meta.url), 'utf8'), text, `${file} is stale: run node --loader ts-node/esm crds/generate.ts`);
  }
});

test('the CRDs are structural: every object and array says its type and no additionalProperties:false', (t) => {
  const walk = (node: unknown, path: string): void => {
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    if ('properties' in n || 'items' in n) t.truthy(n.type, `${path} has no type`);
    t.not(n.additionalProperties, false, `${path} has additionalProperties: false`);
    for (const [k, v] of Object.entries(n)) if (k !== 'default') walk(v, `${path}.${k}`);
  };
  for (const [file, text] of renderCRDs()) {
    const crd = parse(text);
    t.is(crd.spec.scope, 'Cluster');
    t.deepEqual(crd.spec.versions[0].subresources, { status: {} });
    walk(crd.spec.versions[0].schema.openAPIV3Schema, file);
  }
});

test('Block mode: min, max and batchSize count whole /28 blocks, each refused with its own message', (t) => {
  const block = (extra: Record<string, unknown>) => specErrors({ nodeSelector: {}, subnetID: SUBNET, allocation: 'Block', ...extra });
  t.is(block({}), '', 'the defaults (min 0, max 250, batch 16) are whole blocks');
  t.is(block({ ipsPerNode: { min: 32, max: 128 }, scaling: { batchSize: 32 } }), '');
  t.is(block({ ipsPerNode: { min: 10 } }),
    'spec: with allocation Block, ipsPerNode.min counts addresses in whole /28 blocks: it must be a multiple of 16');
  t.is(block({ ipsPerNode: { max: 100 } }),
    'spec: with allocation Block, ipsPerNode.max counts addresses in whole /28 blocks: it must be a multiple of 16, or 250 (the pod limit, which takes 16 blocks)');
  t.is(block({ scaling: { batchSize: 8 } }),
    'spec: with allocation Block, scaling.batchSize counts addresses in whole /28 blocks: it must be a multiple of 16');
  // The same numbers are fine for Individual pools.
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, ipsPerNode: { min: 10, max: 100 }, scaling: { batchSize: 8 } }), '');
});

test('Block mode: an unknown mode is refused, and the fallback is only for Block pools', (t) => {
  t.regex(specErrors({ nodeSelector: {}, subnetID: SUBNET, allocation: 'Prefix' }), /^spec\.allocation: Invalid option: expected one of "Individual"\|"Block"$/);
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, fallbackToIndividual: true }), 'spec: fallbackToIndividual applies only to allocation Block');
  t.is(specErrors({ nodeSelector: {}, subnetID: SUBNET, allocation: 'Block', fallbackToIndividual: true }), '');
});

test('transition rules: allocation is immutable', (t) => {
  const before = NodeIPPoolSpec.parse({ nodeSelector: {}, subnetID: SUBNET });
  const after = { ...before, allocation: 'Block' as const };
  t.deepEqual(transitionViolations(nodeIPPoolSpecRules, after, before), ['allocation is immutable: create a new pool (on another subnet) to change the mode']);
});

test('a node record accepts only aligned /28 blocks in releasedBlocks and status.blocks', (t) => {
  t.true(NodeIPAllocationSpec.safeParse({ poolName: 'p', releasedBlocks: ['10.0.0.16/28'] }).success);
  for (const bad of ['10.0.0.8/28', '10.0.0.16/27', '10.0.0.16']) {
    const r = NodeIPAllocationSpec.safeParse({ poolName: 'p', releasedBlocks: [bad] });
    t.false(r.success, bad);
  }
  const r = NodeIPAllocationSpec.safeParse({ poolName: 'p', releasedBlocks: ['10.0.0.8/28'] });
  t.is(describeIssues(r.error!, 'spec'), 'spec.releasedBlocks.0: must be a /28 block such as 10.1.2.16/28, its first address aligned to 16');
  const status = NodeIPAllocationStatus.safeParse({ blocks: [{ prefix: '10.0.1.0/28', ipConfigName: 'podvnet-b1' }], allocatedBlocks: 1, allocatedIPs: 16 });
  t.true(status.success);
});
