import test from 'ava';
import { evaluate } from '../hack/kube-emulator/cel.js';
import { build, find, type K8sObject } from './testing/manifests.js';

/**
 * Runs the ValidatingAdmissionPolicy the way the API server does (matchConditions, then variables,
 * then every validation), with the CEL evaluator of hack/kube-emulator, against admission requests
 * like those the node agent and the controller send.
 */

interface Admission {
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  name: string;
  subResource?: string;
  username: string;
  nodeName?: string;
  object: unknown;
  oldObject: unknown;
}

function admit(vap: K8sObject, a: Admission): { matched: boolean; denials: string[] } {
  const request = {
    operation: a.operation,
    name: a.name,
    ...(a.subResource ? { subResource: a.subResource } : {}),
    userInfo: {
      username: a.username,
      ...(a.nodeName ? { extra: { 'authentication.kubernetes.io/node-name': [a.nodeName], 'authentication.kubernetes.io/pod-name': ['podvnet-node-x1'] } } : {}),
    },
  };
  const env: Record<string, unknown> = { request, object: a.object, oldObject: a.oldObject };
  for (const mc of vap.spec.matchConditions ?? []) {
    if (evaluate(mc.expression, env) !== true) return { matched: false, denials: [] };
  }
  const variables: Record<string, unknown> = {};
  env.variables = variables;
  for (const v of vap.spec.variables ?? []) variables[v.name] = evaluate(v.expression, env);
  const denials: string[] = [];
  for (const v of vap.spec.validations) {
    if (evaluate(v.expression, env) !== true) {
      denials.push(v.messageExpression ? String(evaluate(v.messageExpression, env)) : v.message);
    }
  }
  return { matched: true, denials };
}

const AGENT = 'system:serviceaccount:podvnet-system:podvnet-node';
const CONTROLLER = 'system:serviceaccount:podvnet-system:podvnet-controller';

function record(name: string, over: { spec?: object; metadata?: object } = {}) {
  return {
    apiVersion: 'podvnet.io/v1alpha1',
    kind: 'NodeIPAllocation',
    metadata: {
      name,
      labels: { 'podvnet.io/pool': 'general' },
      finalizers: ['podvnet.io/release-ip-configs'],
      ownerReferences: [{ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', name: 'general', uid: 'u-1', controller: true }],
      ...over.metadata,
    },
    spec: { poolName: 'general', demand: { usedIPs: 3, pendingIPs: 0 }, releasedIPs: [], ...over.spec },
  };
}

const update = (name: string, from: object, to: object, extra: Partial<Admission> = {}): Admission =>
  ({ operation: 'UPDATE', name, username: AGENT, nodeName: 'node-a', oldObject: from, object: to, ...extra });

const vap = () => find(build('deploy/base'), 'ValidatingAdmissionPolicy', 'podvnet-node-own-record');

test('the agent may update demand and releasedIPs of its own node\'s record', (t) => {
  const old = record('node-a');
  t.deepEqual(admit(vap(), update('node-a', old, record('node-a', { spec: { demand: { usedIPs: 40, pendingIPs: 2 } } }))), { matched: true, denials: [] });
  t.deepEqual(admit(vap(), update('node-a', old, record('node-a', { spec: { releasedIPs: ['10.1.0.9', '10.1.0.10'] } }))), { matched: true, denials: [] });
});

test('the agent may not touch another node\'s record', (t) => {
  const r = admit(vap(), update('node-b', record('node-b'), record('node-b', { spec: { demand: { usedIPs: 99, pendingIPs: 0 } } })));
  t.deepEqual(r.denials, ['the node agent on node-a may change only NodeIPAllocation node-a, not node-b']);
});

test('the agent may not change poolName, labels, annotations, finalizers or owner references', (t) => {
  const old = record('node-a');
  const changes: Array<[string, object]> = [
    ['poolName', record('node-a', { spec: { poolName: 'other' } })],
    ['labels', record('node-a', { metadata: { labels: { 'podvnet.io/pool': 'other' } } })],
    ['added annotation', record('node-a', { metadata: { annotations: { a: 'b' } } })],
    ['finalizer removed', record('node-a', { metadata: { finalizers: [] } })],
    ['finalizers dropped', { ...old, metadata: { ...old.metadata, finalizers: undefined } }],
    ['owner references', record('node-a', { metadata: { ownerReferences: [] } })],
  ];
  for (const [what, obj] of changes) {
    const r = admit(vap(), update('node-a', old, JSON.parse(JSON.stringify(obj))));
    t.is(r.denials.length, 1, what);
    t.regex(r.denials[0] ?? '', /may change only spec.demand and spec.releasedIPs/, what);
  }
});

test('the agent may not write status, create or delete records', (t) => {
  const old = record('node-a');
  t.deepEqual(admit(vap(), update('node-a', old, old, { subResource: 'status' })).denials,
    ['the node agent may not write NodeIPAllocation status; the controller owns it']);
  t.deepEqual(admit(vap(), { operation: 'CREATE', name: 'node-a', username: AGENT, nodeName: 'node-a', object: old, oldObject: null }).denials,
    ['the node agent may not create NodeIPAllocations: the controller creates and deletes them']);
  t.deepEqual(admit(vap(), { operation: 'DELETE', name: 'node-a', username: AGENT, nodeName: 'node-a', object: null, oldObject: old }).denials,
    ['the node agent may not delete NodeIPAllocations: the controller creates and deletes them']);
});

test('a token without the node claim is refused, with the reason', (t) => {
  const r = admit(vap(), update('node-a', record('node-a'), record('node-a'), { nodeName: undefined }));
  t.is(r.denials.length, 1);
  t.regex(r.denials[0]!, /carries no node name .*1\.30/s);
});

test('the policy leaves the controller and other accounts alone', (t) => {
  const old = record('node-b');
  const anything = record('node-b', { spec: { poolName: 'x' }, metadata: { finalizers: [] } });
  t.false(admit(vap(), update('node-b', old, anything, { username: CONTROLLER, nodeName: undefined })).matched);
  t.false(admit(vap(), update('node-b', old, anything, { username: 'system:serviceaccount:other:podvnet-node' })).matched);
  t.false(admit(vap(), update('node-b', old, anything, { username: 'system:node:node-b' })).matched);
});

test('the policy covers the records and their status, for every write', (t) => {
  const [rule] = vap().spec.matchConstraints.resourceRules;
  t.deepEqual(rule.apiGroups, ['podvnet.io']);
  t.deepEqual([...rule.resources].sort(), ['nodeipallocations', 'nodeipallocations/status']);
  t.deepEqual([...rule.operations].sort(), ['CREATE', 'DELETE', 'UPDATE']);
});

test('enforced by the Kubernetes API emulator: the real agent client may write its own record and nothing else', async (t) => {
  const { startKubeEmulator } = await import('../hack/kube-emulator/index.js');
  const { KubeRecordSource } = await import('../node-plugin/agent/record-source.js');
  const { emulatorTarget } = await import('../node-plugin/agent/testing/kube.js');
  const { CustomObjectsApi } = await import('@kubernetes/client-node');
  const { pino } = await import('pino');
  const { stringify } = await import('yaml');
  const { kubectl } = await import('./testing/kubectl.js');
  const emu = await startKubeEmulator({
    users: [{ token: 'agent-on-node-a', username: AGENT, extra: { 'authentication.kubernetes.io/node-name': ['node-a'] } }],
  });
  t.teardown(() => emu.close());
  const base = build('deploy/base');
  // the CRDs, the admission policy and the cluster-wide RBAC of deploy/base: the agent has exactly its real grants
  const setup = [...base.filter((o) => ['CustomResourceDefinition', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind))];
  let r = await kubectl(emu.kubeconfigPath, ['apply', '--server-side', '-f', '-'], setup.map((o) => stringify(o)).join('---\n'));
  t.is(r.code, 0, r.stderr);
  await kubectl(emu.kubeconfigPath, ['wait', '--for=condition=Established', 'crd/nodeipallocations.podvnet.io']);
  r = await kubectl(emu.kubeconfigPath, ['apply', '--server-side', '--field-manager=podvnet-controller', '-f', '-'],
    [record('node-a'), record('node-b')].map((o) => stringify(o)).join('---\n'));
  t.is(r.code, 0, r.stderr);

  const asAgent = emu.kubeConfig('agent-on-node-a');
  const silent = pino({ level: 'silent' });
  const write = { demand: { usedIPs: 7, pendingIPs: 1 }, releasedIPs: ['10.1.0.9'] };
  const agentTarget = emulatorTarget(emu, 'agent-on-node-a');
  await t.notThrowsAsync(new KubeRecordSource(agentTarget, 'node-a', silent).writeSpec(write));
  const err = await t.throwsAsync(new KubeRecordSource(agentTarget, 'node-b', silent).writeSpec(write));
  t.regex(String((err as { body?: unknown }).body ?? err?.message), /may change only NodeIPAllocation node-a, not node-b/);

  const api = asAgent.makeApiClient(CustomObjectsApi);
  const target = { group: 'podvnet.io', version: 'v1alpha1', plural: 'nodeipallocations' };
  const del = await t.throwsAsync(api.deleteClusterCustomObject({ ...target, name: 'node-a' }));
  t.is((del as unknown as { code: number }).code, 403);
  t.is(JSON.parse(String((del as { body?: unknown }).body)).message,
    `nodeipallocations.podvnet.io "node-a" is forbidden: User "${AGENT}" cannot delete resource "nodeipallocations" in API group "podvnet.io" at the cluster scope`,
    'RBAC refuses before admission');
  const create = await t.throwsAsync(api.createClusterCustomObject({ ...target, body: record('node-z') }));
  t.is((create as unknown as { code: number }).code, 403);
  t.is((err as unknown as { code: number }).code, 403);
  const admin = emu.kubeConfig().makeApiClient(CustomObjectsApi);
  const a = await admin.getClusterCustomObject({ ...target, name: 'node-a' }) as ReturnType<typeof record>;
  const b = await admin.getClusterCustomObject({ ...target, name: 'node-b' }) as ReturnType<typeof record>;
  t.deepEqual(a.spec.demand, write.demand);
  t.deepEqual(a.spec.releasedIPs, write.releasedIPs);
  t.deepEqual(b.spec.demand, { usedIPs: 3, pendingIPs: 0 }, 'the other node\'s record is untouched');
  t.deepEqual(a.metadata.finalizers, ['podvnet.io/release-ip-configs']);
});
