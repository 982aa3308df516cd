// The RBAC authorizer as a pure function: request attributes from HTTP, rule matching, subjects and
// bindings, the 403 wording, rules reviews. Tables, each row a request and the expected decision.
import test from 'ava';
import {
  authorize, bootstrapPolicy, forbiddenError, impersonate, impersonationOf, policyOf, requestAttributes, rulesFor, ruleAllows, subjectMatches,
  type RequestAttributes,
} from './rbac.js';

type Obj = Record<string, any>;
const G = 'rbac.authorization.k8s.io';
const cr = (name: string, rules: Obj[], extra: Obj = {}): Obj => ({ apiVersion: `${G}/v1`, kind: 'ClusterRole', metadata: { name, ...(extra.metadata ?? {}) }, rules, ...(extra.aggregationRule ? { aggregationRule: extra.aggregationRule } : {}) });
const role = (ns: string, name: string, rules: Obj[]): Obj => ({ apiVersion: `${G}/v1`, kind: 'Role', metadata: { name, namespace: ns }, rules });
const crb = (name: string, roleName: string, subjects: Obj[]): Obj => ({ apiVersion: `${G}/v1`, kind: 'ClusterRoleBinding', metadata: { name }, roleRef: { apiGroup: G, kind: 'ClusterRole', name: roleName }, subjects });
const rb = (ns: string, name: string, kind: 'Role' | 'ClusterRole', roleName: string, subjects: Obj[]): Obj => ({ apiVersion: `${G}/v1`, kind: 'RoleBinding', metadata: { name, namespace: ns }, roleRef: { apiGroup: G, kind, name: roleName }, subjects });
const sa = (ns: string, name: string): Obj => ({ kind: 'ServiceAccount', name, namespace: ns });
const user = (name: string): Obj => ({ kind: 'User', apiGroup: G, name });
const group = (name: string): Obj => ({ kind: 'Group', apiGroup: G, name });

const req = (over: Partial<RequestAttributes>): RequestAttributes => ({
  user: 'ann', groups: ['system:authenticated'], verb: 'get', resourceRequest: true, apiGroup: '', resource: 'pods', subresource: '', name: '', namespace: '', path: '', ...over,
});

test('HTTP requests to attributes: verbs, collections, watch, namespaces, subresources, non-resource paths', (t) => {
  const u = { username: 'ann', groups: ['g'] };
  const q = (s = '') => new URLSearchParams(s);
  const rows: [string, string, string, Partial<RequestAttributes>][] = [
    ['GET', '/api/v1/namespaces/ns1/pods', '', { verb: 'list', resource: 'pods', namespace: 'ns1', name: '' }],
    ['GET', '/api/v1/namespaces/ns1/pods', 'watch=true', { verb: 'watch', resource: 'pods', namespace: 'ns1' }],
    ['GET', '/api/v1/namespaces/ns1/pods', 'watch=1', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ns1/pods', 'watch=false', { verb: 'list' }],
    ['GET', '/api/v1/watch/namespaces/ns1/pods', '', { verb: 'watch', resource: 'pods', namespace: 'ns1' }],
    ['GET', '/api/v1/watch/namespaces/ns1/pods/p', '', { verb: 'watch', resource: 'pods', name: 'p' }],
    ['GET', '/api/v1/namespaces/ns1/pods', 'fieldSelector=metadata.name%3Dp1', { verb: 'list', name: 'p1' }],
    ['GET', '/api/v1/namespaces/ns1/pods', 'watch=true&fieldSelector=spec.nodeName%3Dx,metadata.name%3D%3Dp2', { verb: 'watch', name: 'p2' }],
    ['GET', '/api/v1/namespaces/ns1/pods/p1', '', { verb: 'get', name: 'p1' }],
    ['HEAD', '/api/v1/namespaces/ns1/pods/p1', '', { verb: 'get' }],
    ['POST', '/api/v1/namespaces/ns1/pods', '', { verb: 'create', name: '' }],
    ['PUT', '/api/v1/namespaces/ns1/pods/p1', '', { verb: 'update', name: 'p1' }],
    ['PATCH', '/api/v1/namespaces/ns1/pods/p1/status', '', { verb: 'patch', name: 'p1', subresource: 'status' }],
    ['DELETE', '/api/v1/namespaces/ns1/pods/p1', '', { verb: 'delete', name: 'p1' }],
    ['DELETE', '/api/v1/namespaces/ns1/pods', '', { verb: 'deletecollection', name: '' }],
    ['POST', '/api/v1/namespaces/ns1/serviceaccounts/sa1/token', '', { verb: 'create', resource: 'serviceaccounts', name: 'sa1', subresource: 'token' }],
    ['GET', '/api/v1/nodes', '', { verb: 'list', resource: 'nodes', namespace: '' }],
    ['GET', '/api/v1/namespaces', '', { verb: 'list', resource: 'namespaces', namespace: '' }],
    ['GET', '/api/v1/namespaces/ns1', '', { verb: 'get', resource: 'namespaces', name: 'ns1', namespace: 'ns1' }],
    ['PUT', '/api/v1/namespaces/ns1/finalize', '', { verb: 'update', resource: 'namespaces', name: 'ns1', subresource: 'finalize' }],
    ['PATCH', '/apis/podvnet.io/v1alpha1/nodeipallocations/vm-1/status', '', { verb: 'patch', apiGroup: 'podvnet.io', apiVersion: 'v1alpha1', resource: 'nodeipallocations', subresource: 'status', name: 'vm-1' }],
    ['PUT', '/apis/apps/v1/namespaces/d/deployments/web/scale', '', { verb: 'update', apiGroup: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'd' }],
  ];
  for (const [m, p, qs, want] of rows) t.like(requestAttributes(m, p, q(qs), u), { resourceRequest: true, user: 'ann', groups: ['g'], ...want }, `${m} ${p}?${qs}`);
  for (const [m, p, verb] of [['GET', '/api', 'get'], ['GET', '/api/v1', 'get'], ['GET', '/apis', 'get'], ['GET', '/apis/podvnet.io', 'get'], ['GET', '/apis/podvnet.io/v1alpha1', 'get'], ['GET', '/openapi/v3/apis/apps/v1', 'get'], ['POST', '/logs', 'post'], ['GET', '/version/', 'get']]) {
    t.like(requestAttributes(m!, p!, q(), u), { resourceRequest: false, verb, path: p }, p);
  }
});

test('rule matching: verbs, API groups, resources, subresources, resourceNames, nonResourceURLs', (t) => {
  const rows: [Obj, Partial<RequestAttributes>, boolean][] = [
    [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { verb: 'get' }, true],
    [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { verb: 'list' }, false],
    [{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }, { verb: 'deletecollection' }, true],
    [{ apiGroups: ['apps'], resources: ['pods'], verbs: ['get'] }, {}, false],
    [{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }, { apiGroup: 'anything.io' }, true],
    [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }, { resource: 'secrets' }, true],
    [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }, { subresource: 'log' }, true],
    [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { subresource: 'status' }, false],
    [{ apiGroups: [''], resources: ['pods/status'], verbs: ['get'] }, {}, false],
    [{ apiGroups: [''], resources: ['pods/status'], verbs: ['get'] }, { subresource: 'status' }, true],
    [{ apiGroups: [''], resources: ['*/status'], verbs: ['get'] }, { resource: 'nodes', subresource: 'status' }, true],
    [{ apiGroups: [''], resources: ['*/status'], verbs: ['get'] }, { resource: 'nodes' }, false],
    [{ apiGroups: [''], resources: ['*/status'], verbs: ['get'] }, { subresource: 'log' }, false],
    [{ apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }, { subresource: 'status' }, false],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['get'] }, { name: 'a' }, true],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['get'] }, { name: 'b' }, false],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['create'] }, { verb: 'create', name: '' }, false],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['list'] }, { verb: 'list', name: '' }, false],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['list'] }, { verb: 'list', name: 'a' }, true],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: ['a'], verbs: ['deletecollection'] }, { verb: 'deletecollection' }, false],
    [{ apiGroups: [''], resources: ['pods'], resourceNames: [], verbs: ['get'] }, { name: 'z' }, true],
    [{ nonResourceURLs: ['/healthz'], verbs: ['get'] }, { resourceRequest: false, path: '/healthz' }, true],
    [{ nonResourceURLs: ['/healthz'], verbs: ['get'] }, { resourceRequest: false, path: '/healthz/etcd' }, false],
    [{ nonResourceURLs: ['/healthz/*'], verbs: ['get'] }, { resourceRequest: false, path: '/healthz/etcd' }, true],
    [{ nonResourceURLs: ['/apis*'], verbs: ['get'] }, { resourceRequest: false, path: '/apis/x' }, true],
    [{ nonResourceURLs: ['*'], verbs: ['get'] }, { resourceRequest: false, path: '/anything' }, true],
    [{ nonResourceURLs: ['*'], verbs: ['get'] }, { resourceRequest: false, verb: 'post', path: '/anything' }, false],
    [{ nonResourceURLs: ['*'], verbs: ['get'] }, { verb: 'get' }, false],
    [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, { resourceRequest: false, path: '/metrics' }, false],
  ];
  for (const [rule, over, want] of rows) t.is(ruleAllows(rule, req(over)), want, `${JSON.stringify(rule)} ${JSON.stringify(over)}`);
});

test('subjects: users, groups, service accounts (explicit namespace or the binding\'s)', (t) => {
  t.true(subjectMatches(user('ann'), 'ann', [], ''));
  t.false(subjectMatches(user('ann'), 'bob', [], ''));
  t.true(subjectMatches(group('devs'), 'bob', ['devs'], ''));
  t.false(subjectMatches(group('devs'), 'devs', [], ''), 'a group is not a user name');
  t.true(subjectMatches(sa('ns1', 'agent'), 'system:serviceaccount:ns1:agent', [], ''));
  t.false(subjectMatches(sa('ns1', 'agent'), 'system:serviceaccount:ns2:agent', [], ''));
  t.true(subjectMatches({ kind: 'ServiceAccount', name: 'agent' }, 'system:serviceaccount:ns3:agent', [], 'ns3'), 'RoleBinding namespace by default');
  t.false(subjectMatches({ kind: 'ServiceAccount', name: 'agent' }, 'system:serviceaccount:ns3:agent', [], ''), 'a ClusterRoleBinding needs the namespace');
  t.false(subjectMatches({ kind: 'Robot', name: 'ann' }, 'ann', [], ''));
});

const policy = policyOf([
  ...bootstrapPolicy(),
  cr('pod-reader', [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]),
  cr('node-patcher', [{ apiGroups: [''], resources: ['nodes', 'nodes/status'], verbs: ['patch'] }]),
  role('ns1', 'cm-editor', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['*'] }]),
  role('ns2', 'cm-editor', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }]),
  crb('nodes-to-bob', 'node-patcher', [user('bob')]),
  rb('ns1', 'pods-in-ns1', 'ClusterRole', 'pod-reader', [user('ann'), group('readers')]),
  rb('ns1', 'cm', 'Role', 'cm-editor', [sa('ns1', 'bot')]),
  rb('ns2', 'cm', 'Role', 'cm-editor', [{ kind: 'ServiceAccount', name: 'bot' }]),
  rb('ns1', 'to-sas', 'ClusterRole', 'pod-reader', [group('system:serviceaccounts:ns9')]),
  crb('dangling', 'no-such-role', [user('carol')]),
  rb('ns1', 'dangling', 'Role', 'gone', [user('carol')]),
  // aggregation: "monitoring" gathers the rules of every ClusterRole labelled aggregate-to-monitoring
  cr('monitoring', [], { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { 'example.com/aggregate-to-monitoring': 'true' } }] } }),
  cr('metrics-reader', [{ apiGroups: ['metrics.k8s.io'], resources: ['pods'], verbs: ['get'] }], { metadata: { labels: { 'example.com/aggregate-to-monitoring': 'true' } } }),
  crb('dave-monitoring', 'monitoring', [user('dave')]),
]);

test('bindings: ClusterRoleBindings everywhere, RoleBindings (to Roles or ClusterRoles) in their namespace only', (t) => {
  const rows: [Partial<RequestAttributes>, boolean, string?][] = [
    [{ user: 'ann', verb: 'list', namespace: 'ns1' }, true, 'RBAC: allowed by RoleBinding "pods-in-ns1/ns1" of ClusterRole "pod-reader" to User "ann"'],
    [{ user: 'ann', verb: 'list', namespace: 'ns2' }, false],
    [{ user: 'ann', verb: 'list', namespace: '' }, false, 'a RoleBinding to a ClusterRole grants nothing at the cluster scope'],
    [{ user: 'ann', verb: 'delete', namespace: 'ns1', name: 'p' }, false],
    [{ user: 'zed', groups: ['readers'], verb: 'watch', namespace: 'ns1' }, true, 'RBAC: allowed by RoleBinding "pods-in-ns1/ns1" of ClusterRole "pod-reader" to Group "readers"'],
    [{ user: 'bob', verb: 'patch', resource: 'nodes', name: 'n1' }, true, 'RBAC: allowed by ClusterRoleBinding "nodes-to-bob" of ClusterRole "node-patcher" to User "bob"'],
    [{ user: 'bob', verb: 'patch', resource: 'nodes', subresource: 'status', name: 'n1' }, true],
    [{ user: 'bob', verb: 'patch', resource: 'nodes', namespace: 'ns1' }, true, 'ClusterRoleBindings apply in every namespace'],
    [{ user: 'bob', verb: 'update', resource: 'nodes', name: 'n1' }, false],
    [{ user: 'system:serviceaccount:ns1:bot', verb: 'delete', resource: 'configmaps', namespace: 'ns1', name: 'c' }, true, 'RBAC: allowed by RoleBinding "cm/ns1" of Role "cm-editor" to ServiceAccount "bot/ns1"'],
    [{ user: 'system:serviceaccount:ns1:bot', verb: 'get', resource: 'configmaps', namespace: 'ns2', name: 'c' }, false, 'the ns2 binding names the ns2 bot'],
    [{ user: 'system:serviceaccount:ns2:bot', verb: 'get', resource: 'configmaps', namespace: 'ns2', name: 'c' }, true, 'RBAC: allowed by RoleBinding "cm/ns2" of Role "cm-editor" to ServiceAccount "bot/ns2"'],
    [{ user: 'system:serviceaccount:ns2:bot', verb: 'delete', resource: 'configmaps', namespace: 'ns2', name: 'c' }, false, 'the ns2 Role of the same name grants only get'],
    [{ user: 'system:serviceaccount:ns9:x', groups: ['system:serviceaccounts', 'system:serviceaccounts:ns9'], verb: 'get', namespace: 'ns1', name: 'p' }, true],
    [{ user: 'dave', verb: 'get', apiGroup: 'metrics.k8s.io', resource: 'pods', namespace: 'ns1', name: 'p' }, true, 'RBAC: allowed by ClusterRoleBinding "dave-monitoring" of ClusterRole "monitoring" to User "dave"'],
    [{ user: 'dave', verb: 'list', apiGroup: 'metrics.k8s.io', resource: 'pods', namespace: 'ns1' }, false],
    [{ user: 'root', groups: ['system:masters'], verb: 'escalate', apiGroup: G, resource: 'clusterroles' }, true, ''],
    [{ user: 'nobody', groups: [], verb: 'get', resource: 'secrets', namespace: 'ns1', name: 's' }, false, ''],
    [{ user: 'ann', verb: 'get', resourceRequest: false, path: '/apis/apps/v1' }, true, 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"'],
    [{ user: 'ann', verb: 'get', resourceRequest: false, path: '/metrics' }, false],
    [{ user: 'ann', verb: 'create', apiGroup: 'authorization.k8s.io', resource: 'selfsubjectaccessreviews' }, true],
    [{ user: 'ann', verb: 'create', apiGroup: 'authorization.k8s.io', resource: 'subjectaccessreviews' }, false],
    [{ user: 'ann', verb: 'create', apiGroup: 'authentication.k8s.io', resource: 'selfsubjectreviews' }, true],
    [{ user: 'carol', verb: 'get', name: 'p', namespace: '' }, false, 'RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found'],
    [{ user: 'carol', verb: 'get', name: 'p', namespace: 'ns1' }, false, 'RBAC: [clusterrole.rbac.authorization.k8s.io "no-such-role" not found, role.rbac.authorization.k8s.io "gone" not found]'],
  ];
  for (const [over, allowed, reason] of rows) {
    const d = authorize(policy, req(over));
    t.is(d.allowed, allowed, JSON.stringify(over));
    if (reason !== undefined && (reason === '' || reason.startsWith('RBAC'))) t.is(d.reason, reason, JSON.stringify(over));
  }
});

test('the 403 Status, worded as the API server words it', (t) => {
  const msg = (over: Partial<RequestAttributes>, reason = '') => forbiddenError(req(over), reason).toStatus();
  t.deepEqual(msg({ user: 'system:serviceaccount:podvnet-system:podvnet-node', verb: 'patch', apiGroup: 'podvnet.io', resource: 'nodeipallocations', subresource: 'status', name: 'vm-1' }), {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Forbidden', code: 403,
    message: 'nodeipallocations.podvnet.io "vm-1" is forbidden: User "system:serviceaccount:podvnet-system:podvnet-node" cannot patch resource "nodeipallocations/status" in API group "podvnet.io" at the cluster scope',
    details: { name: 'vm-1', group: 'podvnet.io', kind: 'nodeipallocations' },
  });
  t.like(msg({ verb: 'list', resource: 'secrets', namespace: 'default' }), {
    message: 'secrets is forbidden: User "ann" cannot list resource "secrets" in API group "" in the namespace "default"', details: { kind: 'secrets' },
  });
  t.deepEqual(msg({ verb: 'list', resource: 'secrets', namespace: 'default' }).details, { kind: 'secrets' }, 'no empty name or group');
  t.is(msg({ verb: 'get', resource: 'pods', name: 'p', namespace: 'ns1' }, 'RBAC: role.rbac.authorization.k8s.io "gone" not found').message,
    'pods "p" is forbidden: User "ann" cannot get resource "pods" in API group "" in the namespace "ns1": RBAC: role.rbac.authorization.k8s.io "gone" not found');
  t.like(msg({ resourceRequest: false, verb: 'get', path: '/metrics' }), { message: 'forbidden: User "ann" cannot get path "/metrics"', details: {} });
});

test('rules reviews: what applies in a namespace, resourceNames kept, masters get everything', (t) => {
  const ns1 = rulesFor(policy, 'ann', ['system:authenticated'], 'ns1');
  t.false(ns1.incomplete);
  t.deepEqual(ns1.resourceRules.filter((r) => r.resources.includes('pods')), [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }]);
  t.true(ns1.resourceRules.some((r) => r.resources.includes('selfsubjectaccessreviews')));
  t.true(ns1.nonResourceRules.some((r) => r.nonResourceURLs.includes('/apis/*')));
  t.false(rulesFor(policy, 'ann', ['system:authenticated'], 'ns2').resourceRules.some((r) => r.resources.includes('pods')));
  const carol = rulesFor(policy, 'carol', [], 'ns1');
  t.true(carol.incomplete);
  t.regex(carol.evaluationError ?? '', /"no-such-role" not found/);
  const named = rulesFor(policyOf([role('n', 'r', [{ apiGroups: [''], resources: ['leases'], resourceNames: ['me'], verbs: ['get'] }]), rb('n', 'b', 'Role', 'r', [user('x')])]), 'x', [], 'n');
  t.deepEqual(named.resourceRules, [{ verbs: ['get'], apiGroups: [''], resources: ['leases'], resourceNames: ['me'] }]);
  t.deepEqual(rulesFor(policy, 'root', ['system:masters'], '').resourceRules, [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }]);
});

test('the bootstrap policy: cluster-admin for system:masters, discovery and self reviews for everyone authenticated', (t) => {
  const objs = bootstrapPolicy();
  t.deepEqual(objs.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name).sort(), ['cluster-admin', 'system:basic-user', 'system:discovery', 'system:public-info-viewer']);
  const p = policyOf(objs);
  // without the system:masters short-cut, cluster-admin's binding alone allows everything
  const d = authorize(p, req({ user: 'root', groups: ['system:masters'], verb: 'delete', resource: 'nodes', name: 'n' }));
  t.true(d.allowed);
  t.true(authorize(p, req({ user: 'x', groups: ['system:authenticated'], verb: 'get', resourceRequest: false, path: '/openapi/v3' })).allowed);
  t.false(authorize(p, req({ user: 'x', groups: ['system:authenticated'], verb: 'post', resourceRequest: false, path: '/apis' })).allowed);
  t.false(authorize(p, req({ user: 'x', groups: ['system:unauthenticated'], verb: 'get', resourceRequest: false, path: '/apis' })).allowed);
  t.true(authorize(p, req({ user: 'x', groups: ['system:unauthenticated'], verb: 'get', resourceRequest: false, path: '/version' })).allowed);
  for (const o of objs) t.is(o.metadata.labels['kubernetes.io/bootstrapping'], 'rbac-defaults');
});

test('over HTTP: RBAC by default, 403 before routing, discovery for all, grants take effect at once; AlwaysAllow', async (t) => {
  const { withEmulator, call, grant } = await import('./testing/index.js');
  const emu = await withEmulator(t, { tls: false, users: [{ token: 'ann-token', username: 'ann', groups: ['devs'] }] });
  const as = (m: string, p: string, b?: unknown) => call(emu, m, p, b, {}, 'ann-token');
  t.is((await as('GET', '/apis')).status, 200, 'system:discovery');
  t.is((await as('GET', '/api/v1')).status, 200);
  t.is((await as('GET', '/openapi/v3')).status, 200);
  const secrets = await as('GET', '/api/v1/namespaces/default/secrets');
  t.is(secrets.status, 403);
  t.deepEqual(secrets.json, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Forbidden', code: 403,
    message: 'secrets is forbidden: User "ann" cannot list resource "secrets" in API group "" in the namespace "default"', details: { kind: 'secrets' },
  });
  t.regex((await as('GET', '/api/v1/namespaces/default/secrets?watch=1')).json.message, /cannot watch resource "secrets"/);
  t.regex((await as('GET', '/api/v1/namespaces/default/nosuchthings')).json.message, /nosuchthings is forbidden/, 'authorization comes before routing (no 404 leak)');
  t.is((await call(emu, 'GET', '/api/v1/namespaces/default/nosuchthings')).status, 404);
  await grant(emu, 'ann-secrets', 'ann', [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }], 'default');
  t.is((await as('GET', '/api/v1/namespaces/default/secrets')).status, 200, 'a new RoleBinding applies to the next request');
  t.is((await as('GET', '/api/v1/namespaces/kube-system/secrets')).status, 403);
  const ssar = await as('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { spec: { resourceAttributes: { namespace: 'default', verb: 'list', resource: 'secrets' } } });
  t.like(ssar.json, { kind: 'SelfSubjectAccessReview', status: { allowed: true, reason: 'RBAC: allowed by RoleBinding "ann-secrets/default" of Role "ann-secrets" to User "ann"' } });
  const rules = await as('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { spec: { namespace: 'default' } });
  t.true(rules.json.status.resourceRules.some((r: Obj) => r.resources.includes('secrets')));
  t.is((await as('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { spec: { user: 'x', resourceAttributes: { verb: 'get', resource: 'pods' } } })).status, 403, 'asking about others needs a grant');
  const local = await call(emu, 'POST', '/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews', { spec: { user: 'ann', groups: ['devs'], resourceAttributes: { verb: 'list', resource: 'secrets' } } });
  t.like(local.json, { status: { allowed: true } });
  const nonRes = await call(emu, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { spec: { user: 'ann', groups: ['system:authenticated'], nonResourceAttributes: { verb: 'get', path: '/metrics' } } });
  t.deepEqual(nonRes.json.status, { allowed: false });

  const open = await withEmulator(t, { tls: false, authorization: 'AlwaysAllow', users: [{ token: 'u', username: 'anyone' }] });
  t.is((await call(open, 'GET', '/api/v1/namespaces/kube-system/secrets', undefined, {}, 'u')).status, 200);
  t.like((await call(open, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { spec: { resourceAttributes: { verb: 'delete', resource: 'nodes' } } }, {}, 'u')).json, { status: { allowed: true } });
});

test('impersonation: needs the impersonate verb on users, service accounts (in their namespace) and groups', (t) => {
  const p = policyOf([
    cr('as-bots', [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['impersonate'] }]),
    rb('ci', 'ops-as-bots', 'ClusterRole', 'as-bots', [user('ops')]),
    cr('as-jane', [{ apiGroups: [''], resources: ['users'], resourceNames: ['jane'], verbs: ['impersonate'] }, { apiGroups: [''], resources: ['groups'], resourceNames: ['qa'], verbs: ['impersonate'] }]),
    crb('ops-as-jane', 'as-jane', [user('ops')]),
  ]);
  const az = (a: RequestAttributes) => authorize(p, a);
  const ops = { username: 'ops', groups: ['system:authenticated'] };
  t.deepEqual(impersonate(az, ops, { user: 'system:serviceaccount:ci:bot', groups: [] }), {
    user: { username: 'system:serviceaccount:ci:bot', groups: ['system:serviceaccounts', 'system:serviceaccounts:ci', 'system:authenticated'] },
  });
  const other = impersonate(az, ops, { user: 'system:serviceaccount:prod:bot', groups: [] });
  t.true('denied' in other && other.denied.message === 'serviceaccounts "bot" is forbidden: User "ops" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "prod"');
  t.deepEqual(impersonate(az, ops, { user: 'jane', groups: ['qa'] }), { user: { username: 'jane', groups: ['qa', 'system:authenticated'] } });
  const group = impersonate(az, ops, { user: 'jane', groups: ['system:masters'] });
  t.true('denied' in group && group.denied.message === 'groups "system:masters" is forbidden: User "ops" cannot impersonate resource "groups" in API group "" at the cluster scope');
  t.true('denied' in impersonate(az, ops, { user: 'john', groups: [] }));
  t.deepEqual(impersonationOf({ 'impersonate-user': 'jane', 'impersonate-group': ['a', 'b'] }), { user: 'jane', groups: ['a', 'b'] });
  t.is(impersonationOf({ authorization: 'Bearer x' }), undefined);
});
