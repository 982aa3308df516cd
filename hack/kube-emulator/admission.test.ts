// ValidatingAdmissionPolicy enforcement with per-token identities.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { call, grant, withEmulator, withWidgets, W, widget } from './testing/index.js';

const VAP = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
const VAPB = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings';

const policy = {
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: 'own-widget' },
  spec: {
    failurePolicy: 'Fail',
    matchConditions: [{ name: 'is-agent', expression: "request.userInfo.username == 'system:serviceaccount:ns:agent'" }],
    matchConstraints: { resourceRules: [{ apiGroups: ['test.podvnet.io'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['widgets', 'widgets/status'] }] },
    variables: [{ name: 'nodeName', expression: "has(request.userInfo.extra) && 'authentication.kubernetes.io/node-name' in request.userInfo.extra ? request.userInfo.extra['authentication.kubernetes.io/node-name'][0] : ''" }],
    validations: [
      { expression: "request.operation == 'UPDATE'", messageExpression: "'the agent may not ' + request.operation.lowerAscii() + ' widgets'", reason: 'Forbidden' },
      { expression: 'request.name == variables.nodeName', messageExpression: "'agent on ' + variables.nodeName + ' may change only its own widget, not ' + request.name", reason: 'Forbidden' },
      { expression: "!has(request.subResource) || request.subResource == ''", message: 'no status writes', reason: 'Forbidden' },
      { expression: 'object.spec.owner == oldObject.spec.owner', message: 'owner is fixed', reason: 'Invalid' },
    ],
  },
};
/** What RBAC grants the agent on widgets: every write, so the admission policy is what refuses. */
const widgetWriter = [{ apiGroups: ['test.podvnet.io'], resources: ['widgets', 'widgets/status'], verbs: ['create', 'update', 'patch', 'delete'] }];
const binding = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: 'own-widget' }, spec: { policyName: 'own-widget', validationActions: ['Deny'] } };

test('policies bind to identities: the agent may update only its own object, admins are not matched', async (t) => {
  const emu = await withWidgets(t, {
    tls: false,
    users: [{ token: 'agent-token', username: 'system:serviceaccount:ns:agent', extra: { 'authentication.kubernetes.io/node-name': ['vm-1'] } }],
  });
  await grant(emu, 'widget-writer', 'system:serviceaccount:ns:agent', widgetWriter);
  t.is((await call(emu, 'POST', VAP, policy)).status, 201);
  t.is((await call(emu, 'POST', VAPB, binding)).status, 201);
  await call(emu, 'POST', W, widget('vm-1'));
  await call(emu, 'POST', W, widget('vm-2'));
  const as = (m: string, p: string, b?: unknown, ct = 'application/merge-patch+json') => call(emu, m, p, b, { 'Content-Type': ct }, 'agent-token');

  const own = await as('PATCH', `${W}/vm-1`, { spec: { size: 5 } });
  t.is(own.status, 200, own.text);
  const other = await as('PATCH', `${W}/vm-2`, { spec: { size: 5 } });
  t.is(other.status, 403);
  t.like(other.json, { kind: 'Status', reason: 'Forbidden', code: 403 });
  t.is(other.json.message, `widgets.test.podvnet.io "vm-2" is forbidden: ValidatingAdmissionPolicy 'own-widget' with binding 'own-widget' denied request: agent on vm-1 may change only its own widget, not vm-2`);
  const create = await as('POST', W, widget('vm-1x'), 'application/json');
  t.is(create.status, 403);
  t.regex(create.json.message, /the agent may not create widgets$/);
  const del = await as('DELETE', `${W}/vm-1`);
  t.regex(del.json.message, /the agent may not delete widgets$/);
  const st = await as('PATCH', `${W}/vm-1/status`, { status: { observedGeneration: 1 } });
  t.is(st.status, 403);
  t.regex(st.json.message, /no status writes$/);
  const owner = await as('PATCH', `${W}/vm-1`, { spec: { owner: 'zed' } });
  // the CRD's own CEL rule (owner is immutable) runs first, as schema validation precedes admission
  t.is(owner.status, 422);
  const admin = await call(emu, 'PATCH', `${W}/vm-2`, { spec: { size: 6 } }, { 'Content-Type': 'application/merge-patch+json' });
  t.is(admin.status, 200, 'match condition excludes other users');
  const dry = await as('PATCH', `${W}/vm-2?dryRun=All`, { spec: { size: 7 } });
  t.is(dry.status, 403, 'dry runs are admitted too');
  // authorization comes first: a verb RBAC does not grant never reaches the policy
  const list = await as('DELETE', W);
  t.is(list.status, 403);
  t.is(list.json.message, 'widgets.test.podvnet.io is forbidden: User "system:serviceaccount:ns:agent" cannot deletecollection resource "widgets" in API group "test.podvnet.io" at the cluster scope');
});

test('Warn action returns a warning header instead of denying', async (t) => {
  const emu = await withWidgets(t, { tls: false, users: [{ token: 'u', username: 'system:serviceaccount:ns:agent' }] });
  await grant(emu, 'widget-writer', 'system:serviceaccount:ns:agent', widgetWriter);
  await call(emu, 'POST', VAP, policy);
  await call(emu, 'POST', VAPB, { ...binding, spec: { ...binding.spec, validationActions: ['Warn'] } });
  await call(emu, 'POST', W, widget('a'));
  const r = await call(emu, 'PATCH', `${W}/a`, { spec: { size: 5 } }, { 'Content-Type': 'application/merge-patch+json' }, 'u');
  t.is(r.status, 200);
  t.regex(String(r.headers.warning), /ValidatingAdmissionPolicy 'own-widget' with binding 'own-widget' denied request: agent on  may change only its own widget, not a/);
});


const repo = fileURLToPath(new URL('../../', import.meta.url));
const haveProject = existsSync(`${repo}deploy/base/kustomization.yaml`) && existsSync(`${repo}crds/podvnet.io_nodeipallocations.yaml`) && existsSync('/usr/bin/kubectl');

(haveProject ? test : test.skip)('the project admission policy: a node agent may change only its own NodeIPAllocation demand', async (t) => {
  const emu = await withEmulator(t, {
    tls: false,
    users: [{ token: 'node-1', username: 'system:serviceaccount:podvnet-system:podvnet-node', extra: { 'authentication.kubernetes.io/node-name': ['vm-1'] } }],
  });
  const crd = YAML.parse(readFileSync(`${repo}crds/podvnet.io_nodeipallocations.yaml`, 'utf8'));
  t.is((await call(emu, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)).status, 201);
  const docs = YAML.parseAllDocuments(execFileSync('/usr/bin/kubectl', ['kustomize', `${repo}deploy/base`], { encoding: 'utf8' })).map((d) => d.toJSON());
  const vaps = docs.filter((d) => d?.kind === 'ValidatingAdmissionPolicy');
  const bindings = docs.filter((d) => d?.kind === 'ValidatingAdmissionPolicyBinding');
  t.true(vaps.length > 0);
  // the agent's real RBAC (ClusterRole podvnet-node and its binding) from deploy/base
  for (const o of docs.filter((d) => (d?.kind === 'ClusterRole' || d?.kind === 'ClusterRoleBinding') && d.metadata.name === 'podvnet-node')) {
    const plural = o.kind === 'ClusterRole' ? 'clusterroles' : 'clusterrolebindings';
    t.is((await call(emu, 'POST', `/apis/rbac.authorization.k8s.io/v1/${plural}`, o)).status, 201);
  }
  for (const v of vaps) t.is((await call(emu, 'POST', VAP, v)).status, 201);
  for (const b of bindings) t.is((await call(emu, 'POST', VAPB, b)).status, 201);
  const NIA = '/apis/podvnet.io/v1alpha1/nodeipallocations';
  const mk = (name: string) => ({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name }, spec: { poolName: 'general' } });
  t.is((await call(emu, 'POST', NIA, mk('vm-1'))).status, 201);
  t.is((await call(emu, 'POST', NIA, mk('vm-2'))).status, 201);
  const patch = (name: string, body: unknown) => call(emu, 'PATCH', `${NIA}/${name}`, body, { 'Content-Type': 'application/merge-patch+json' }, 'node-1');
  const own = await patch('vm-1', { spec: { demand: { usedIPs: 3 } } });
  t.is(own.status, 200, own.text);
  const other = await patch('vm-2', { spec: { demand: { usedIPs: 3 } } });
  t.is(other.status, 403, other.text);
  const labels = await patch('vm-1', { metadata: { labels: { a: 'b' } } });
  t.is(labels.status, 403, labels.text);
  const status = await patch('vm-1/status', { status: { ips: [] } });
  t.is(status.status, 403);
  t.regex(status.json.message, /cannot patch resource "nodeipallocations\/status" in API group "podvnet.io" at the cluster scope$/, 'RBAC refuses the status');
});

test('TokenRequest: a pod-bound service account token authenticates with the pod\'s node in user extra', async (t) => {
  const emu = await withEmulator(t, { tls: false });
  await call(emu, 'POST', '/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'agent' } });
  const pod = (await call(emu, 'POST', '/api/v1/namespaces/default/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-1' }, spec: { nodeName: 'vm-1', serviceAccountName: 'agent', containers: [{ name: 'a', image: 'x' }] } })).json;
  const tr = await call(emu, 'POST', '/api/v1/namespaces/default/serviceaccounts/agent/token', {
    apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'agent-1', uid: pod.metadata.uid } },
  });
  t.is(tr.status, 201, tr.text);
  t.like(tr.json, { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', spec: { expirationSeconds: 3600 } });
  const who = await call(emu, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, {}, tr.json.status.token);
  t.is(who.status, 201);
  t.is(who.json.status.userInfo.username, 'system:serviceaccount:default:agent');
  t.deepEqual(who.json.status.userInfo.extra['authentication.kubernetes.io/node-name'], ['vm-1']);
  t.true(who.json.status.userInfo.groups.includes('system:serviceaccounts:default'));
  t.is((await call(emu, 'POST', '/api/v1/namespaces/default/serviceaccounts/nobody/token', { spec: {} })).status, 404);
  const wrongUid = await call(emu, 'POST', '/api/v1/namespaces/default/serviceaccounts/agent/token', { spec: { boundObjectRef: { kind: 'Pod', name: 'agent-1', uid: 'other' } } });
  t.is(wrongUid.status, 409);
});
