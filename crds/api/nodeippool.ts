import { z } from 'zod';
import { API_GROUP_VERSION, BLOCK_SIZE, MAX_PODS_PER_NODE } from './group.js';
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

export const ALLOCATION_MODES = ['Individual', 'Block'] as const;
export type AllocationMode = (typeof ALLOCATION_MODES)[number];

const nodeIPPoolSpecFields = z.strictObject({
  nodeSelector: LabelSelector.describe('Nodes this pool serves; {} selects every node.'),
  subnetID: SubnetID,
  allocation: z.enum(ALLOCATION_MODES).default('Individual')
    .describe(
      'Individual: one secondary ip-config per pod IP. Block: each ip-config carries a /28 prefix ' +
      `(${BLOCK_SIZE} addresses, counted once against the VNet's private-IP limit); ipsPerNode and ` +
      'scaling.batchSize then count addresses in whole blocks. Immutable; one mode per subnet across pools.',
    ),
  fallbackToIndividual: z.boolean().optional()
    .describe(
      'Block mode only: when the subnet has free addresses but no free aligned /28, add single ' +
      'ip-configs instead. Off by default: a fallback keeps the subnet fragmented.',
    ),
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
  {
    cel: 'self.allocation == oldSelf.allocation',
    message: 'allocation is immutable: create a new pool (on another subnet) to change the mode',
    checkTransition: (self, old) => self.allocation === old.allocation,
  },
  {
    cel: `self.allocation != 'Block' || self.ipsPerNode.min % ${BLOCK_SIZE} == 0`,
    message: `with allocation Block, ipsPerNode.min counts addresses in whole /28 blocks: it must be a multiple of ${BLOCK_SIZE}`,
    check: (s) => s.allocation !== 'Block' || s.ipsPerNode.min % BLOCK_SIZE === 0,
  },
  {
    cel: `self.allocation != 'Block' || self.ipsPerNode.max % ${BLOCK_SIZE} == 0 || self.ipsPerNode.max == ${MAX_PODS_PER_NODE}`,
    message:
      `with allocation Block, ipsPerNode.max counts addresses in whole /28 blocks: it must be a multiple of ${BLOCK_SIZE}, ` +
      `or ${MAX_PODS_PER_NODE} (the pod limit, which takes ${Math.ceil(MAX_PODS_PER_NODE / BLOCK_SIZE)} blocks)`,
    check: (s) => s.allocation !== 'Block' || s.ipsPerNode.max % BLOCK_SIZE === 0 || s.ipsPerNode.max === MAX_PODS_PER_NODE,
  },
  {
    cel: `self.allocation != 'Block' || self.scaling.batchSize % ${BLOCK_SIZE} == 0`,
    message: `with allocation Block, scaling.batchSize counts addresses in whole /28 blocks: it must be a multiple of ${BLOCK_SIZE}`,
    check: (s) => s.allocation !== 'Block' || s.scaling.batchSize % BLOCK_SIZE === 0,
  },
  {
    cel: "self.allocation == 'Block' || !has(self.fallbackToIndividual) || !self.fallbackToIndividual",
    message: 'fallbackToIndividual applies only to allocation Block',
    check: (s) => s.allocation === 'Block' || s.fallbackToIndividual !== true,
  },
];

export const NodeIPPoolSpec = withRules(nodeIPPoolSpecFields, nodeIPPoolSpecRules);
export type NodeIPPoolSpec = z.infer<typeof NodeIPPoolSpec>;

export const NODE_IP_POOL_CONDITIONS = ['Ready', 'SubnetExhausted', 'Degraded', 'AllocationModeConflict'] as const;

export const NodeIPPoolStatus = z.strictObject({
  observedGeneration: z.int().min(0).optional(),
  nodes: z.int().min(0).optional().describe('Nodes the pool selects.'),
  allocatedIPs: z.int().min(0).optional().describe('Secondary IPs on the selected nodes\' NICs.'),
  usedIPs: z.int().min(0).optional().describe('IPs held by pods, as the node agents report.'),
  releasedIPs: z.int().min(0).optional().describe('IPs the agents gave back that Azure still holds.'),
  subnet: z.string().max(160).optional().describe('The pool subnet as <vnet>/<subnet>, for printing; spec.subnetID holds its full ARM id.'),
  allocatedBlocks: z.int().min(0).optional().describe('Block mode: /28 blocks on the selected nodes\' NICs.'),
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
