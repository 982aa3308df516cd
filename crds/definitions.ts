import { z } from 'zod';
import { API_GROUP, API_VERSION } from './api/group.js';
import { NodeIPPoolSpec, NodeIPPoolStatus } from './api/nodeippool.js';
import { NodeIPAllocationSpec, NodeIPAllocationStatus } from './api/nodeipallocation.js';
import { toStructuralSchema, type JSONSchema } from './openapi.js';

/** The CustomResourceDefinitions, built from the zod schemas: the one source of truth for both. */

interface ResourceNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

function readyColumn(): PrinterColumn {
  return { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
}

function crd(names: ResourceNames, spec: z.ZodType, status: z.ZodType, columns: PrinterColumn[]) {
  const schema: JSONSchema = {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: toStructuralSchema(spec),
      status: toStructuralSchema(status),
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${API_GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'podvnet' },
      // CRDs must exist before anything that uses them: Argo CD applies lower waves first.
      annotations: { 'argocd.argoproj.io/sync-wave': '-10' },
    },
    spec: {
      group: API_GROUP,
      scope: 'Cluster',
      names: { ...names, listKind: `${names.kind}List`, categories: ['podvnet'] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...columns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

export const nodeIPPoolCRD = crd(
  { kind: 'NodeIPPool', plural: 'nodeippools', singular: 'nodeippool', shortNames: ['nipp'] },
  NodeIPPoolSpec,
  NodeIPPoolStatus,
  [
    { name: 'Nodes', type: 'integer', jsonPath: '.status.nodes' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.allocation' },
    { name: 'Blocks', type: 'integer', jsonPath: '.status.allocatedBlocks', description: '/28 blocks on the nodes\' NICs (Block mode)' },
    { name: 'Allocated', type: 'integer', jsonPath: '.status.allocatedIPs', description: 'Secondary IPs on the nodes\' NICs' },
    { name: 'Used', type: 'integer', jsonPath: '.status.usedIPs', description: 'IPs held by pods' },
    { name: 'Released', type: 'integer', jsonPath: '.status.releasedIPs', priority: 1 },
    readyColumn(),
    { name: 'Subnet', type: 'string', jsonPath: '.status.subnet', description: '<vnet>/<subnet>; the full ARM id is spec.subnetID', priority: 1 },
  ],
);

export const nodeIPAllocationCRD = crd(
  { kind: 'NodeIPAllocation', plural: 'nodeipallocations', singular: 'nodeipallocation', shortNames: ['nipa'] },
  NodeIPAllocationSpec,
  NodeIPAllocationStatus,
  [
    { name: 'Pool', type: 'string', jsonPath: '.spec.poolName' },
    { name: 'Blocks', type: 'integer', jsonPath: '.status.allocatedBlocks', description: '/28 blocks on the NIC (Block mode)' },
    { name: 'Allocated', type: 'integer', jsonPath: '.status.allocatedIPs' },
    { name: 'Target', type: 'integer', jsonPath: '.status.targetIPs' },
    { name: 'Used', type: 'integer', jsonPath: '.spec.demand.usedIPs' },
    readyColumn(),
    { name: 'NIC', type: 'string', jsonPath: '.status.nic.id', priority: 1 },
  ],
);

/** File name in crds/ for each definition, in the order they apply. */
export const crdFiles: ReadonlyArray<readonly [string, ReturnType<typeof crd>]> = [
  ['podvnet.io_nodeippools.yaml', nodeIPPoolCRD],
  ['podvnet.io_nodeipallocations.yaml', nodeIPAllocationCRD],
];
