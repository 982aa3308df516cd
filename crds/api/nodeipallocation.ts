import { z } from 'zod';
import { API_GROUP_VERSION, AZURE_MAX_IP_CONFIGS_PER_NIC, BLOCK_PREFIX_LENGTH, MAX_PODS_PER_NODE } from './group.js';
import { withRules, type CrossFieldRule } from './rules.js';
import { Conditions, IPv4Address, IPv4CIDR, ObjectMeta } from './common.js';

/**
 * NodeIPAllocation: the per-node record, named after its node, created and owned by the NodeIPPool that
 * selects the node, never declared in Git. Two writers, each on its own side:
 * - the node agent writes spec.demand and spec.releasedIPs (and nothing else, on its own node's record);
 * - the controller writes status: what Azure really has on the node's NIC.
 * Release is a handshake: the agent lists IPs it has stopped handing out; the controller removes only
 * those from the NIC; once an IP is gone from status.ips the agent drops it from releasedIPs.
 * In Block mode the same handshake works per /28: the agent lists a block in releasedBlocks only when no
 * pod holds any of its addresses, and the controller removes only listed blocks.
 */

export const BLOCK_CIDR_MESSAGE = `must be a /${BLOCK_PREFIX_LENGTH} block such as 10.1.2.16/${BLOCK_PREFIX_LENGTH}, its first address aligned to ${2 ** (32 - BLOCK_PREFIX_LENGTH)}`;
const BLOCK_STEP = 2 ** (32 - BLOCK_PREFIX_LENGTH);
const ALIGNED_LAST_OCTET = Array.from({ length: 256 / BLOCK_STEP }, (_, i) => i * BLOCK_STEP).join('|');
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
/** A /28 with its host bits clear, as a pattern so the CRD schema refuses what zod refuses. */
export const BLOCK_CIDR_PATTERN = `^${OCTET}(\\.${OCTET}){2}\\.(${ALIGNED_LAST_OCTET})/${BLOCK_PREFIX_LENGTH}$`;
/** What Azure answers in privateIPAddress for a block ip-config: 10.1.2.16/28. */
export const BlockCIDR = z.string().regex(new RegExp(BLOCK_CIDR_PATTERN), { message: BLOCK_CIDR_MESSAGE });

export const Demand = z.strictObject({
  usedIPs: z.int().min(0).max(AZURE_MAX_IP_CONFIGS_PER_NIC).describe('IPs held by pods on the node.'),
  pendingIPs: z.int().min(0).max(MAX_PODS_PER_NODE).default(0)
    .describe('Pod set-ups waiting because no IP was free.'),
});
export type Demand = z.infer<typeof Demand>;

const nodeIPAllocationSpecFields = z.strictObject({
  poolName: z.string().min(1).max(253).describe('The NodeIPPool this node belongs to (set by the controller).'),
  demand: Demand.optional(),
  releasedIPs: z
    .array(IPv4Address)
    .max(AZURE_MAX_IP_CONFIGS_PER_NIC)
    .default([])
    .meta({ 'x-kubernetes-list-type': 'set' })
    .describe('IPs the agent will not hand out again; the controller may remove them from the NIC.'),
  releasedBlocks: z
    .array(BlockCIDR)
    .max(AZURE_MAX_IP_CONFIGS_PER_NIC)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'set' })
    .describe('Block mode: /28 blocks none of whose addresses a pod holds or will be given; the controller may remove them.'),
});

export const nodeIPAllocationSpecRules: ReadonlyArray<CrossFieldRule<z.output<typeof nodeIPAllocationSpecFields>>> = [
  {
    cel: 'self.poolName == oldSelf.poolName',
    message: 'poolName is immutable',
    checkTransition: (self, old) => self.poolName === old.poolName,
  },
];

export const NodeIPAllocationSpec = withRules(nodeIPAllocationSpecFields, nodeIPAllocationSpecRules);
export type NodeIPAllocationSpec = z.infer<typeof NodeIPAllocationSpec>;

export const AllocatedIP = z.strictObject({
  ip: IPv4Address,
  ipConfigName: z.string().min(1).max(80).describe('The NIC ip-configuration that holds the IP.'),
});
export type AllocatedIP = z.infer<typeof AllocatedIP>;

export const AllocatedBlock = z.strictObject({
  prefix: BlockCIDR,
  ipConfigName: z.string().min(1).max(80).describe('The NIC ip-configuration that holds the block.'),
});
export type AllocatedBlock = z.infer<typeof AllocatedBlock>;

export const NicInfo = z.strictObject({
  id: z.string().min(1).describe('ARM id of the node\'s NIC.'),
  macAddress: z.string().regex(/^([0-9A-Fa-f]{2}[-:]){5}[0-9A-Fa-f]{2}$/).describe('The NIC\'s MAC: the only one Azure delivers to.'),
  primaryIP: IPv4Address,
  vmID: z.string().min(1).describe('ARM id of the VM or scale-set instance.'),
});

export const SubnetInfo = z.strictObject({
  id: z.string().min(1),
  addressPrefix: IPv4CIDR,
  gatewayIP: IPv4Address.describe('Azure\'s gateway: the first address of the subnet.'),
});

export const NodeIPAllocationStatus = z.strictObject({
  observedGeneration: z.int().min(0).optional(),
  nic: NicInfo.optional(),
  subnet: SubnetInfo.optional(),
  vnetAddressPrefixes: z.array(IPv4CIDR).max(64).optional()
    .describe('The VNet\'s address space: traffic to it is not SNATed.'),
  ips: z.array(AllocatedIP).max(AZURE_MAX_IP_CONFIGS_PER_NIC).default([])
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['ip'] })
    .describe('Secondary IPs Azure holds for pods on this node.'),
  blocks: z.array(AllocatedBlock).max(AZURE_MAX_IP_CONFIGS_PER_NIC).optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['prefix'] })
    .describe('Block mode: the /28 blocks Azure holds for pods on this node, each one ip-config.'),
  allocatedBlocks: z.int().min(0).optional().describe('Block mode: the number of entries in blocks.'),
  allocatedIPs: z.int().min(0).optional().describe('The number of entries in ips, or in Block mode the addresses of all blocks.'),
  targetIPs: z.int().min(0).optional().describe('How many IPs the controller is steering towards.'),
  conditions: Conditions.optional(),
});
export type NodeIPAllocationStatus = z.infer<typeof NodeIPAllocationStatus>;

export const NodeIPAllocation = z.looseObject({
  apiVersion: z.literal(API_GROUP_VERSION),
  kind: z.literal('NodeIPAllocation'),
  metadata: ObjectMeta,
  spec: NodeIPAllocationSpec,
  status: NodeIPAllocationStatus.optional(),
});
export type NodeIPAllocation = z.infer<typeof NodeIPAllocation>;
