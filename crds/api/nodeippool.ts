import { z } from 'zod';
import { API_GROUP_VERSION, MAX_PODS_PER_NODE } from './group.js';
import { withRules, type CrossFieldRule } from './rules.js';
import { Conditions, IPv4CIDR, LabelSelector, ObjectMeta, SubnetID } from './common.js';

/**
 * NodeIPPool: declared by people in Git (applied by Argo CD), one per node group. It selects nodes,
 * names the subnet pod IPs come from and sets how each node's share grows and shrinks. Machines never
 * write its spec, so Git stays the only owner and Argo CD sees no drift.
 */

export const IPsPerNode = withRules(
  z.strictObject({
    min: z.int().min(0).max(MAX_PODS_PER_NODE).default(0)
      .describe('IPs each node keeps even when idle.'),
    max: z.int().min(1).max(MAX_PODS_PER_NODE).default(MAX_PODS_PER_NODE)
      .describe(`IPs a node may hold at most (Azure allows ${MAX_PODS_PER_NODE} pods per node).`),
  }),
  [{ cel: 'self.min <= self.max', message: 'min must not exceed max', check: (s) => s.min <= s.max }],
);

export const Scaling = withRules(
  z.strictObject({
    batchSize: z.int().min(1).max(MAX_PODS_PER_NODE).default(16)
      .describe('IPs added or removed in one step.'),
    requestThresholdPercent: z.int().min(1).max(100).default(50)
      .describe('Ask for a batch when fewer than this share of a batch is free.'),
    releaseThresholdPercent: z.int().min(2).max(1000).default(150)
      .describe('Give a batch back when more than this share of a batch is free.'),
    warmIPs: z.int().min(0).max(MAX_PODS_PER_NODE).optional()
      .describe('If set, keep this many free IPs instead of using the thresholds.'),
  }),
  [
    {
      cel: 'self.releaseThresholdPercent > self.requestThresholdPercent',
      message: 'releaseThresholdPercent must be greater than requestThresholdPercent',
      check: (s) => s.releaseThresholdPercent > s.requestThresholdPercent,
    },
  ],
);

export const SNAT = z.strictObject({
  enabled: z.boolean().default(true)
    .describe('Source-NAT pod traffic whose destination is outside the VNet to the node IP.'),
  excludeCIDRs: z.array(IPv4CIDR).max(64).default([])
    .meta({ 'x-kubernetes-list-type': 'set' })
    .describe('More destinations reached without SNAT: peered VNets, on-premises ranges.'),
});

const nodeIPPoolSpecFields = z.strictObject({
  nodeSelector: LabelSelector.describe('Nodes this pool serves; {} selects every node.'),
  subnetID: SubnetID,
  ipsPerNode: IPsPerNode.prefault({}),
  scaling: Scaling.prefault({}),
  snat: SNAT.prefault({}),
});

export const nodeIPPoolSpecRules: ReadonlyArray<CrossFieldRule<z.output<typeof nodeIPPoolSpecFields>>> = [
  {
    cel: 'self.subnetID == oldSelf.subnetID',
    message: 'subnetID is immutable: create a new pool for another subnet',
    checkTransition: (self, old) => self.subnetID === old.subnetID,
  },
  {
    cel: 'self.scaling.batchSize <= self.ipsPerNode.max',
    message: 'scaling.batchSize must not exceed ipsPerNode.max',
    check: (s) => s.scaling.batchSize <= s.ipsPerNode.max,
  },
];

export const NodeIPPoolSpec = withRules(nodeIPPoolSpecFields, nodeIPPoolSpecRules);
export type NodeIPPoolSpec = z.infer<typeof NodeIPPoolSpec>;

export const NODE_IP_POOL_CONDITIONS = ['Ready', 'SubnetExhausted', 'Degraded'] as const;

export const NodeIPPoolStatus = z.strictObject({
  observedGeneration: z.int().min(0).optional(),
  nodes: z.int().min(0).optional().describe('Nodes the pool selects.'),
  allocatedIPs: z.int().min(0).optional().describe('Secondary IPs on the selected nodes\' NICs.'),
  usedIPs: z.int().min(0).optional().describe('IPs held by pods, as the node agents report.'),
  releasedIPs: z.int().min(0).optional().describe('IPs the agents gave back that Azure still holds.'),
  subnet: z.string().max(160).optional().describe('The pool subnet as <vnet>/<subnet>, for printing; spec.subnetID holds its full ARM id.'),
  conditions: Conditions.optional(),
});
export type NodeIPPoolStatus = z.infer<typeof NodeIPPoolStatus>;

export const NodeIPPool = z.looseObject({
  apiVersion: z.literal(API_GROUP_VERSION),
  kind: z.literal('NodeIPPool'),
  metadata: ObjectMeta,
  spec: NodeIPPoolSpec,
  status: NodeIPPoolStatus.optional(),
});
export type NodeIPPool = z.infer<typeof NodeIPPool>;
