import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeIPAllocation, NodeIPPool } from '../crds/api/index.js';
import { runHealthCheck, toLua } from './testing/lua.js';
import { build } from './testing/manifests.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(here, 'argocd', 'argocd-cm', 'nodeippool-health.lua');
const RECORD_SCRIPT = join(here, 'argocd', 'argocd-cm', 'nodeipallocation-health.lua');
const T = '2026-11-24T04:00:00Z';

type Cond = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string; observedGeneration?: number };
const cond = (type: string, status: Cond['status'], reason: string, message = '', observedGeneration?: number) =>
  ({ type, status, reason, message, lastTransitionTime: T, ...(observedGeneration === undefined ? {} : { observedGeneration }) });

/** A pool as the API server would return it; validated with the runtime schema so samples stay real. */
function pool(generation: number, status?: Record<string, unknown>) {
  const obj = {
    apiVersion: 'podvnet.io/v1alpha1',
    kind: 'NodeIPPool',
    metadata: { name: 'general', generation, uid: '5d8e0f5e-8a53-4c8e-9f5e-1d2c3b4a5f60' },
    spec: {
      nodeSelector: { matchLabels: { 'kubernetes.azure.com/agentpool': 'general' } },
      subnetID: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes',
    },
    ...(status ? { status } : {}),
  };
  NodeIPPool.parse(obj);
  return obj;
}

const cases: Array<[string, unknown, string, RegExp]> = [
  ['no status yet', pool(1), 'Progressing', /observe the pool/],
  ['status for an older generation', pool(3, { observedGeneration: 2, conditions: [cond('Ready', 'True', 'AllNodesReady')] }), 'Progressing', /generation 3 \(observed 2\)/],
  ['status without observedGeneration', pool(1, { conditions: [cond('Ready', 'True', 'AllNodesReady')] }), 'Progressing', /observed none/],
  ['observed but no conditions', pool(2, { observedGeneration: 2 }), 'Progressing', /Ready condition/],
  ['ready', pool(2, { observedGeneration: 2, nodes: 3, allocatedIPs: 48, usedIPs: 20, conditions: [cond('Ready', 'True', 'AllNodesReady', 'all nodes have IPs', 2)] }), 'Healthy', /^3 nodes, 48 IPs allocated, 20 in use$/],
  ['ready, no counts', pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'AllNodesReady')] }), 'Healthy', /^0 nodes/],
  ['not ready yet', pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'Scaling', '2 of 3 nodes have their first batch')] }), 'Progressing', /^Scaling: 2 of 3 nodes/],
  ['ready unknown', pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'Unknown', 'Pending')] }), 'Progressing', /^Pending$/],
  ['ready condition from an older generation', pool(4, { observedGeneration: 4, conditions: [cond('Ready', 'True', 'AllNodesReady', '', 3)] }), 'Progressing', /generation 3, not 4/],
  ['degraded', pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'AllNodesReady'), cond('Degraded', 'True', 'AzureAuthorizationFailed', 'LinkedAuthorizationFailed on subnets/join/action')] }), 'Degraded', /^AzureAuthorizationFailed: LinkedAuthorizationFailed/],
  ['degraded, no message', pool(1, { observedGeneration: 1, conditions: [cond('Degraded', 'True', 'NICNotFound')] }), 'Degraded', /^NICNotFound$/],
  ['subnet exhausted beats ready', pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'AllNodesReady'), cond('SubnetExhausted', 'True', 'SubnetIsFull', 'no free address in 10.1.0.0/24')] }), 'Degraded', /^SubnetIsFull: no free address/],
  ['degraded False is not degraded', pool(1, { observedGeneration: 1, conditions: [cond('Degraded', 'False', 'AsExpected'), cond('SubnetExhausted', 'False', 'AsExpected'), cond('Ready', 'True', 'AllNodesReady')] }), 'Healthy', /nodes/],
  ['stale degraded is ignored', pool(5, { observedGeneration: 5, conditions: [cond('Degraded', 'True', 'BadSelector', '', 4), cond('Ready', 'True', 'AllNodesReady', '', 5)] }), 'Healthy', /nodes/],
];

for (const [name, obj, status, message] of cases) {
  test(`NodeIPPool health: ${name} -> ${status}`, (t) => {
    const hs = runHealthCheck(SCRIPT, obj);
    t.is(hs.status, status);
    t.regex(hs.message, message);
  });
}

function nodeRecord(generation: number, status?: Record<string, unknown>) {
  const obj = {
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation',
    metadata: { name: 'aks-general-1', generation },
    spec: { poolName: 'general', releasedIPs: [] },
    ...(status ? { status } : {}),
  };
  NodeIPAllocation.parse(obj);
  return obj;
}

const recordCases: Array<[string, unknown, string, RegExp]> = [
  ['no status', nodeRecord(1), 'Progressing', /read this node's NIC/],
  ['older generation', nodeRecord(2, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'Synced')] }), 'Progressing', /generation 2/],
  ['synced', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'Synced', '16 usable IPs, target 16')] }), 'Healthy', /^Synced: 16 usable IPs/],
  ['at the limit', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'True', 'AtLimit', 'demand exceeds the 250 IPs')] }), 'Healthy', /^AtLimit/],
  ['growing', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'Growing', 'adding 16 now')] }), 'Progressing', /^Growing: adding 16 now$/],
  ['no NIC', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'NICNotFound', 'nic-1 not found')] }), 'Degraded', /^NICNotFound/],
  ['bad providerID', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'InvalidProviderID', 'kind://x')] }), 'Degraded', /^InvalidProviderID/],
  ['subnet full', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'SubnetFull', 'SubnetIsFull')] }), 'Degraded', /^SubnetFull/],
  ['azure error', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'AzureError', 'nic.put: AuthorizationFailed: no write access')] }), 'Degraded', /^AzureError: nic.put: AuthorizationFailed/],
  ['unknown', nodeRecord(1, { observedGeneration: 1, conditions: [cond('Ready', 'Unknown', 'Pending')] }), 'Progressing', /^Pending$/],
];

for (const [name, obj, status, message] of recordCases) {
  test(`NodeIPAllocation health: ${name} -> ${status}`, (t) => {
    const hs = runHealthCheck(RECORD_SCRIPT, obj);
    t.is(hs.status, status);
    t.regex(hs.message, message);
  });
}

test('the record health check treats as permanent exactly the reasons the controller gives up on', (t) => {
  // Every module of the node reconciler that sets a record's Ready condition. status.ts is left out: it
  // writes the pool's conditions (NodesNotReady), which the pool's own health check reads.
  const controllers = join(here, '..', 'controllers');
  const src = readdirSync(controllers)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'status.ts')
    .map((f) => readFileSync(join(controllers, f), 'utf8'))
    .join('\n');
  const falseReasons = new Set([...src.matchAll(/type: 'Ready', status: 'False', reason: '(\w+)'/g)].map((m) => m[1]!));
  t.true(falseReasons.has('Growing'), [...falseReasons].join(','));
  const lua = readFileSync(RECORD_SCRIPT, 'utf8');
  const permanent = new Set([...lua.matchAll(/(\w+) = true/g)].map((m) => m[1]!));
  for (const p of permanent) t.true(falseReasons.has(p), `${p} is a reason the controller uses`);
  for (const r of falseReasons) if (r !== 'Growing') t.true(permanent.has(r), `${r}: Degraded or Progressing? decide in nodeipallocation-health.lua`);
});

test('the health checks the argocd-cm kustomization ships are the tested scripts, under the keys Argo CD reads', (t) => {
  const [cm] = build('deploy/argocd/argocd-cm');
  t.is(cm?.kind, 'ConfigMap');
  t.is(cm?.metadata.name, 'argocd-cm');
  t.is(cm?.metadata.namespace, 'argocd');
  t.deepEqual(Object.keys(cm?.data ?? {}).sort(), [
    'resource.customizations.health.podvnet.io_NodeIPAllocation',
    'resource.customizations.health.podvnet.io_NodeIPPool',
    'resource.customizations.ignoreResourceUpdates.podvnet.io_NodeIPAllocation',
    'resource.customizations.ignoreResourceUpdates.podvnet.io_NodeIPPool',
  ]);
  t.is(cm?.data['resource.customizations.health.podvnet.io_NodeIPPool'], readFileSync(SCRIPT, 'utf8'));
  t.is(cm?.data['resource.customizations.health.podvnet.io_NodeIPAllocation'], readFileSync(RECORD_SCRIPT, 'utf8'));
});

test('reconcile optimizations ignore only machine-written counters and demand, never conditions or Git fields', async (t) => {
  const { parse } = await import('yaml');
  const [cm] = build('deploy/argocd/argocd-cm');
  const pool = parse(cm!.data['resource.customizations.ignoreResourceUpdates.podvnet.io_NodeIPPool']) as { jsonPointers: string[] };
  const rec = parse(cm!.data['resource.customizations.ignoreResourceUpdates.podvnet.io_NodeIPAllocation']) as { jsonPointers: string[] };
  for (const p of pool.jsonPointers) {
    t.regex(p, /^\/status\/(nodes|allocatedIPs|usedIPs|releasedIPs)$/, 'pool health reads conditions and observedGeneration: never ignore those');
    t.true(p.slice('/status/'.length) in NodeIPPool.shape.status.unwrap().shape, `${p} is a real status field`);
  }
  t.deepEqual(rec.jsonPointers, ['/spec/demand', '/spec/releasedIPs', '/status']);
});

test('toLua escapes strings so any message survives the trip', (t) => {
  const message = 'quote " backslash \\ newline \n tab \t unicode é ✓';
  const hs = runHealthCheck(SCRIPT, pool(1, { observedGeneration: 1, conditions: [cond('Ready', 'False', 'Scaling', message)] }));
  t.is(hs.message, `Scaling: ${message}`);
  t.is(toLua([1, 'a', { b: null }]), '{1, "a", {}}');
});
