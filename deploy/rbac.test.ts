import test from 'ava';
import { allows, flatten, type PolicyRule } from './testing/rbac.js';
import { build, find, OVERLAYS, type K8sObject } from './testing/manifests.js';

const objs = () => build('deploy/base');
const rulesOf = (kind: 'ClusterRole' | 'Role', name: string): PolicyRule[] => find(objs(), kind, name).rules as PolicyRule[];

/** Everything a ServiceAccount is granted, across its RoleBindings and ClusterRoleBindings. */
function grantsOf(all: K8sObject[], namespace: string, sa: string): { cluster: PolicyRule[]; namespaced: PolicyRule[] } {
  const bound = (b: K8sObject) => (b.subjects as Array<{ kind: string; name: string; namespace?: string }>)
    .some((s) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === namespace);
  const cluster: PolicyRule[] = [];
  const namespaced: PolicyRule[] = [];
  for (const b of all.filter((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && bound(o))) {
    const role = find(all, b.roleRef.kind, b.roleRef.name);
    (b.kind === 'ClusterRoleBinding' ? cluster : namespaced).push(...(role.rules as PolicyRule[]));
  }
  return { cluster, namespaced };
}

test('controller ClusterRole is exactly what controllers/ calls', (t) => {
  t.deepEqual(flatten(rulesOf('ClusterRole', 'podvnet-controller')), [
    'core nodes list',
    'core nodes watch',
    'podvnet.io nodeipallocations create',
    'podvnet.io nodeipallocations delete',
    'podvnet.io nodeipallocations list',
    'podvnet.io nodeipallocations patch',
    'podvnet.io nodeipallocations watch',
    'podvnet.io nodeipallocations/status patch',
    'podvnet.io nodeippools list',
    'podvnet.io nodeippools patch',
    'podvnet.io nodeippools watch',
    'podvnet.io nodeippools/status patch',
  ]);
});

test('controller Role: create any Lease, read and renew only its own, in its namespace; events only in default', (t) => {
  const rules = rulesOf('Role', 'podvnet-controller-leader-election');
  t.deepEqual(flatten(rules), [
    'coordination.k8s.io leases create',
    'coordination.k8s.io leases get podvnet-controller',
    'coordination.k8s.io leases update podvnet-controller',
  ]);
  const events = find(objs(), 'Role', 'podvnet-controller-events');
  t.is(events.metadata.namespace, 'default', 'the API server takes events about cluster-scoped objects only in default');
  t.deepEqual(flatten(events.rules as PolicyRule[]), ['events.k8s.io events create', 'events.k8s.io events patch']);
  t.false(allows(rules, { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', name: 'kube-scheduler' }));
  t.false(allows(rules, { group: 'coordination.k8s.io', resource: 'leases', verb: 'delete', name: 'podvnet-controller' }));
  const dep = find(objs(), 'Deployment', 'podvnet-controller');
  const args = dep.spec.template.spec.containers[0].args as string[];
  t.true(args.includes('--lease-name=podvnet-controller'));
  t.true(args.includes('--event-namespace=default'), 'events land where the Role allows them');
});

test('node agent ClusterRole: get pools, list/watch/patch records, nothing else', (t) => {
  const rules = rulesOf('ClusterRole', 'podvnet-node');
  t.deepEqual(flatten(rules), [
    'podvnet.io nodeipallocations list',
    'podvnet.io nodeipallocations patch',
    'podvnet.io nodeipallocations watch',
    'podvnet.io nodeippools get',
  ]);
  for (const verb of ['create', 'update', 'delete', 'deletecollection']) {
    t.false(allows(rules, { group: 'podvnet.io', resource: 'nodeipallocations', verb }), verb);
  }
  t.false(allows(rules, { group: 'podvnet.io', resource: 'nodeipallocations/status', verb: 'patch' }));
  t.false(allows(rules, { group: 'podvnet.io', resource: 'nodeippools', verb: 'patch' }));
});

test('node agent Role: get its own DaemonSet by name, for the uninstall check', (t) => {
  const rules = rulesOf('Role', 'podvnet-node-uninstall-check');
  t.deepEqual(flatten(rules), ['apps daemonsets get podvnet-node']);
  t.false(allows(rules, { group: 'apps', resource: 'daemonsets', verb: 'get', name: 'kube-proxy' }));
});

for (const overlay of ['deploy/base', ...OVERLAYS]) {
  test(`${overlay}: no wildcards, no secrets, no pods, no escalation verbs for either account`, (t) => {
    const all = build(overlay);
    const roles = all.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    t.true(roles.length >= 4);
    for (const role of roles) {
      for (const rule of role.rules as PolicyRule[]) {
        for (const field of [rule.apiGroups ?? [], rule.resources ?? [], rule.verbs]) t.false(field.includes('*'), `${role.metadata.name}: wildcard`);
        t.is(rule.nonResourceURLs, undefined);
      }
    }
    for (const sa of ['podvnet-controller', 'podvnet-node']) {
      const { cluster, namespaced } = grantsOf(all, 'podvnet-system', sa);
      t.true(cluster.length > 0, `${sa} has a ClusterRoleBinding`);
      const every = [...cluster, ...namespaced];
      for (const verb of ['get', 'list', 'watch']) t.false(allows(every, { group: '', resource: 'secrets', verb }), `${sa} ${verb} secrets`);
      for (const verb of ['bind', 'escalate', 'impersonate']) {
        t.false(allows(every, { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb }), `${sa} ${verb}`);
      }
      t.false(allows(every, { group: '', resource: 'pods', verb: 'list' }));
      t.false(allows(every, { group: '', resource: 'nodes', verb: 'patch' }));
    }
  });
}

test('every binding points at a role and a ServiceAccount that the build contains', (t) => {
  for (const overlay of ['deploy/base', ...OVERLAYS]) {
    const all = build(overlay);
    const bindings = all.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
    t.is(bindings.length, 5, overlay);
    for (const b of bindings) {
      t.notThrows(() => find(all, b.roleRef.kind, b.roleRef.name));
      if (b.kind === 'RoleBinding') t.is(b.roleRef.kind, 'Role', 'namespaced bindings grant namespaced roles only');
      for (const s of b.subjects as Array<{ kind: string; name: string; namespace: string }>) {
        t.is(s.kind, 'ServiceAccount');
        const sa = find(all, 'ServiceAccount', s.name);
        t.is(sa.metadata.namespace, s.namespace, `${b.metadata.name} subject namespace`);
      }
    }
  }
});
