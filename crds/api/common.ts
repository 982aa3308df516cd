import { z } from 'zod';
import { withRules } from './rules.js';

/**
 * Schemas shared by the PodVNet resources. Each is written once here; the CRD YAML in crds/ is
 * generated from them (crds/generate.ts), so the API server and the runtime check the same rules.
 */

/** Builds a regex fragment that matches `word` in any letter case: ARM ids are case-insensitive, and
 * OpenAPI `pattern` has no flags, so the case-folding must live in the pattern itself. */
function anyCase(word: string): string {
  return [...word]
    .map((ch) => (/[a-z]/i.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch.replace('.', '\\.')))
    .join('');
}

const GUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
// Azure naming rules: resource group 1-90 of word chars, '-', '.', '(', ')', not ending in '.';
// virtual network 2-64 and subnet 1-80 of word chars, '-', '.', starting alphanumeric, ending in a word char.
const RESOURCE_GROUP = '[-\\w.()]{0,89}[-\\w()]';
const VNET_NAME = '[A-Za-z0-9][-\\w.]{0,62}\\w';
const SUBNET_NAME = '(?:[A-Za-z0-9]|[A-Za-z0-9][-\\w.]{0,78}\\w)';

export const SUBNET_ID_PATTERN =
  `^/${anyCase('subscriptions')}/(${GUID})/${anyCase('resourceGroups')}/(${RESOURCE_GROUP})` +
  `/${anyCase('providers')}/${anyCase('Microsoft.Network')}/${anyCase('virtualNetworks')}/(${VNET_NAME})` +
  `/${anyCase('subnets')}/(${SUBNET_NAME})$`;
const subnetIdRegex = new RegExp(SUBNET_ID_PATTERN);

export const SubnetID = z
  .string()
  .max(1024)
  .regex(subnetIdRegex, {
    message:
      'must be a subnet ARM id: /subscriptions/<subscription-guid>/resourceGroups/<group>/providers/' +
      'Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>',
  })
  .describe('ARM id of the subnet that pod IPs come from.');

export interface SubnetRef {
  subscriptionId: string;
  resourceGroup: string;
  virtualNetwork: string;
  subnet: string;
}

/** Splits a subnet ARM id into its parts; throws with the same message the schema gives. */
export function parseSubnetID(id: string): SubnetRef {
  const m = subnetIdRegex.exec(SubnetID.parse(id));
  if (!m) throw new Error(`unreachable: ${id} passed the schema but not the pattern`);
  return { subscriptionId: m[1]!, resourceGroup: m[2]!, virtualNetwork: m[3]!, subnet: m[4]! };
}

const IPV4_OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
export const IPV4_PATTERN = `^${IPV4_OCTET}(\\.${IPV4_OCTET}){3}$`;
export const CIDRV4_PATTERN = `^${IPV4_OCTET}(\\.${IPV4_OCTET}){3}/(3[0-2]|[12]?[0-9])$`;

export const IPv4Address = z
  .string()
  .regex(new RegExp(IPV4_PATTERN), { message: 'must be an IPv4 address in dotted-quad form, such as 10.1.0.4' });
export const IPv4CIDR = z
  .string()
  .regex(new RegExp(CIDRV4_PATTERN), { message: 'must be an IPv4 CIDR, such as 10.1.0.0/16' });

/** metav1.LabelSelector, as used by Deployments and NetworkPolicies. */
export const LabelSelectorRequirement = withRules(
  z.strictObject({
    key: z.string().min(1).max(317),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(z.string().max(63)).max(256).optional(),
  }),
  [
    {
      cel: "(self.operator == 'In' || self.operator == 'NotIn') ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: 'In and NotIn need at least one value; Exists and DoesNotExist take none',
      check: (r) => (r.operator === 'In' || r.operator === 'NotIn' ? (r.values?.length ?? 0) > 0 : (r.values?.length ?? 0) === 0),
    },
  ],
);
export const LabelSelector = z.strictObject({
  matchLabels: z.record(z.string().max(317), z.string().max(63)).optional(),
  matchExpressions: z.array(LabelSelectorRequirement).max(32).optional(),
});
export type LabelSelector = z.infer<typeof LabelSelector>;

/** metav1.Condition with the API server's own limits. */
export const Condition = z.strictObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string().describe('RFC 3339 time of the last status change.'),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof Condition>;

export const Conditions = z
  .array(Condition)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

/** The metadata fields PodVNet reads; the rest of ObjectMeta is kept as it comes. */
export const ObjectMeta = z.looseObject({
  name: z.string(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  deletionTimestamp: z.string().optional(),
  creationTimestamp: z.string().optional(),
  ownerReferences: z.array(z.looseObject({
    apiVersion: z.string(), kind: z.string(), name: z.string(), uid: z.string(),
    controller: z.boolean().optional(), blockOwnerDeletion: z.boolean().optional(),
  })).optional(),
});
