// RBAC authorization (rbac.authorization.k8s.io/v1), following the documented semantics: the request
// attributes an API server derives from an HTTP request, rule matching (verbs, API groups, resources and
// `*/subresource`, resourceNames, nonResourceURLs with a trailing `*`), subjects (User, Group,
// ServiceAccount), RoleBindings (to a Role or, as a namespaced grant, to a ClusterRole),
// ClusterRoleBindings, ClusterRole aggregation, the `system:masters` group, the 403 Status the API server
// answers, and the rules a SelfSubjectRulesReview lists. Pure: the caller hands in the stored objects.
import { ApiError } from './status.js';
import { matchLabelSelectorObject } from './selectors.js';

type Obj = Record<string, any>;

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
/** Members of this group are allowed everything, before RBAC is asked (as on a real API server). */
export const MASTERS_GROUP = 'system:masters';

/** What an authorizer is asked (k8s.io/apiserver's authorizer.Attributes, flattened). */
export interface RequestAttributes {
  user: string;
  groups: string[];
  verb: string;
  /** false for paths outside the resource API (discovery, /version, /openapi/...). */
  resourceRequest: boolean;
  apiGroup: string;
  apiVersion?: string;
  resource: string;
  subresource: string;
  name: string;
  /** '' at the cluster scope. */
  namespace: string;
  /** The URL path, for non-resource requests. */
  path: string;
}

export interface Decision {
  allowed: boolean;
  /** Why: the binding that allowed it, or (denied) RBAC errors such as a binding to a missing role; may be ''. */
  reason: string;
}

/** Read access to the stored RBAC objects. */
export interface RbacPolicy {
  clusterRoles(): Obj[];
  clusterRole(name: string): Obj | undefined;
  role(namespace: string, name: string): Obj | undefined;
  clusterRoleBindings(): Obj[];
  roleBindings(namespace: string): Obj[];
}

/** A policy over a plain list of Role/ClusterRole/RoleBinding/ClusterRoleBinding objects (tests, manifests). */
export function policyOf(objects: Obj[]): RbacPolicy {
  const of = (kind: string): Obj[] => objects.filter((o) => o?.kind === kind);
  return {
    clusterRoles: () => of('ClusterRole'),
    clusterRole: (name) => of('ClusterRole').find((o) => o.metadata?.name === name),
    role: (ns, name) => of('Role').find((o) => o.metadata?.name === name && (o.metadata?.namespace ?? '') === ns),
    clusterRoleBindings: () => of('ClusterRoleBinding'),
    roleBindings: (ns) => of('RoleBinding').filter((o) => (o.metadata?.namespace ?? '') === ns),
  };
}

// ---------- HTTP request -> attributes ----------

const VERB_BY_METHOD: Record<string, string> = { POST: 'create', GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** Namespace subresources: /api/v1/namespaces/<ns>/status is the namespace's status, not a resource "status". */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

const trueish = (v: string | null): boolean => v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);

/** The name a list or watch asks for through `fieldSelector=metadata.name=<n>` (lets resourceNames apply). */
function nameFromFieldSelector(fs: string | null): string {
  if (!fs) return '';
  for (const term of fs.split(',')) {
    const m = term.trim().match(/^metadata\.name\s*==?\s*(.*)$/);
    if (m && m[1] && /^[^/%]+$/.test(m[1]) && m[1] !== '.' && m[1] !== '..') return m[1];
  }
  return '';
}

/**
 * The attributes an API server derives from a request, as its RequestInfo does: /api/<v>/... and
 * /apis/<g>/<v>/... are resource requests (`/watch/` prefix, `?watch=true`, list/watch for collections,
 * deletecollection, namespace, name, subresource); anything else is a non-resource request whose verb
 * is the lowercased HTTP method.
 */
export function requestAttributes(method: string, pathname: string, query: URLSearchParams, user: { username: string; groups?: string[] }): RequestAttributes {
  const base: RequestAttributes = {
    user: user.username, groups: user.groups ?? [], verb: method.toLowerCase(), resourceRequest: false,
    apiGroup: '', resource: '', subresource: '', name: '', namespace: '', path: pathname,
  };
  let parts = pathname.split('/').filter(Boolean);
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return base;
  let apiGroup = '';
  parts = parts.slice(1);
  if (pathname.startsWith('/apis/')) {
    if (parts.length < 3) return base;
    apiGroup = parts[0]!;
    parts = parts.slice(1);
  }
  const apiVersion = parts[0]!;
  parts = parts.slice(1);
  let verb: string;
  if (parts[0] === 'watch' || parts[0] === 'proxy') {
    if (parts.length < 2) return base;
    verb = parts[0];
    parts = parts.slice(1);
  } else verb = VERB_BY_METHOD[method.toUpperCase()] ?? '';
  let namespace = '';
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const attrs: RequestAttributes = {
    ...base, verb, resourceRequest: true, apiGroup, apiVersion, namespace,
    resource: parts[0] ?? '', name: parts[1] ?? '', subresource: parts.length >= 3 && verb !== 'proxy' ? parts[2]! : '',
  };
  if (!attrs.name && attrs.verb === 'get') {
    attrs.verb = trueish(query.get('watch')) ? 'watch' : 'list';
    attrs.name = nameFromFieldSelector(query.get('fieldSelector'));
  }
  if (!attrs.name && attrs.verb === 'delete') attrs.verb = 'deletecollection';
  return attrs;
}

// ---------- rule matching ----------

const listHas = (list: string[] | undefined, v: string): boolean => !!list && (list.includes('*') || list.includes(v));

function resourceMatches(rule: Obj, resource: string, subresource: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  for (const r of (rule.resources ?? []) as string[]) {
    if (r === '*' || r === combined) return true;
    // `*/status` is every resource's status subresource
    if (subresource && r === `*/${subresource}`) return true;
  }
  return false;
}

function nonResourceURLMatches(rule: Obj, path: string): boolean {
  for (const u of (rule.nonResourceURLs ?? []) as string[]) {
    if (u === '*' || u === path) return true;
    if (u.endsWith('*') && path.startsWith(u.slice(0, -1))) return true;
  }
  return false;
}

/** Whether one PolicyRule allows the request. resourceNames never match a request without a name (create, plain list). */
export function ruleAllows(rule: Obj, a: RequestAttributes): boolean {
  if (!listHas(rule.verbs, a.verb)) return false;
  if (!a.resourceRequest) return nonResourceURLMatches(rule, a.path);
  if (!listHas(rule.apiGroups, a.apiGroup)) return false;
  if (!resourceMatches(rule, a.resource, a.subresource)) return false;
  const names = (rule.resourceNames ?? []) as string[];
  return names.length === 0 || names.includes(a.name);
}

// ---------- subjects and bindings ----------

export const serviceAccountUsername = (namespace: string, name: string): string => `system:serviceaccount:${namespace}:${name}`;

/** Whether a binding subject is this user; `bindingNamespace` is the default namespace of ServiceAccount subjects. */
export function subjectMatches(s: Obj, user: string, groups: string[], bindingNamespace: string): boolean {
  switch (s?.kind) {
    case 'User': return s.name === user;
    case 'Group': return groups.includes(s.name);
    case 'ServiceAccount': {
      const ns = s.namespace || bindingNamespace;
      return !!ns && serviceAccountUsername(ns, s.name) === user;
    }
    default: return false;
  }
}

function describeSubject(s: Obj, bindingNamespace: string): string {
  if (s.kind === 'ServiceAccount') return `ServiceAccount ${JSON.stringify(`${s.name}/${s.namespace || bindingNamespace}`)}`;
  return `${s.kind} ${JSON.stringify(s.name)}`;
}

/** A ClusterRole's rules; an aggregated role (aggregationRule) has the rules of every ClusterRole its selectors pick. */
function clusterRoleRules(policy: RbacPolicy, role: Obj): Obj[] {
  const selectors = (role.aggregationRule?.clusterRoleSelectors ?? []) as Obj[];
  if (!selectors.length) return role.rules ?? [];
  const out: Obj[] = [...(role.rules ?? [])];
  for (const other of policy.clusterRoles()) {
    if (other.metadata?.name === role.metadata?.name || other.aggregationRule) continue;
    if (selectors.some((sel) => matchLabelSelectorObject(sel, other.metadata?.labels ?? {}))) out.push(...(other.rules ?? []));
  }
  return out;
}

interface Grant {
  /** "ClusterRoleBinding "x" of ClusterRole "y" to Group "z"" */
  source: string;
  rules: Obj[];
}

/**
 * Every grant that applies to the user for a request in `namespace` ('' = cluster scope or
 * non-resource): all ClusterRoleBindings, plus the RoleBindings of that namespace. A binding whose role
 * does not exist contributes an error (`clusterrole.rbac.authorization.k8s.io "x" not found`).
 */
function grants(policy: RbacPolicy, user: string, groups: string[], namespace: string, errors: string[]): Grant[] {
  const out: Grant[] = [];
  const add = (b: Obj, bindingNs: string, source: (s: Obj) => string): void => {
    const subject = ((b.subjects ?? []) as Obj[]).find((s) => subjectMatches(s, user, groups, bindingNs));
    if (!subject) return;
    const ref = b.roleRef ?? {};
    let rules: Obj[] | undefined;
    if (ref.kind === 'ClusterRole') {
      const cr = policy.clusterRole(ref.name);
      if (cr) rules = clusterRoleRules(policy, cr);
      else errors.push(`clusterrole.${RBAC_GROUP} ${JSON.stringify(ref.name)} not found`);
    } else if (ref.kind === 'Role' && bindingNs) {
      const r = policy.role(bindingNs, ref.name);
      if (r) rules = r.rules ?? [];
      else errors.push(`role.${RBAC_GROUP} ${JSON.stringify(ref.name)} not found`);
    }
    if (rules) out.push({ source: source(subject), rules });
  };
  for (const b of policy.clusterRoleBindings()) {
    add(b, '', (s) => `ClusterRoleBinding ${JSON.stringify(b.metadata?.name)} of ${b.roleRef?.kind} ${JSON.stringify(b.roleRef?.name)} to ${describeSubject(s, '')}`);
  }
  if (namespace) {
    for (const b of policy.roleBindings(namespace)) {
      add(b, namespace, (s) => `RoleBinding ${JSON.stringify(`${b.metadata?.name}/${namespace}`)} of ${b.roleRef?.kind} ${JSON.stringify(b.roleRef?.name)} to ${describeSubject(s, namespace)}`);
    }
  }
  return out;
}

const errorsReason = (errors: string[]): string => {
  if (!errors.length) return '';
  return `RBAC: ${errors.length === 1 ? errors[0] : `[${errors.join(', ')}]`}`;
};

/** The RBAC decision (system:masters first): allowed with the granting binding, or denied with RBAC's errors. */
export function authorize(policy: RbacPolicy, a: RequestAttributes): Decision {
  if (a.groups.includes(MASTERS_GROUP)) return { allowed: true, reason: '' };
  const errors: string[] = [];
  const namespace = a.resourceRequest ? a.namespace : '';
  for (const g of grants(policy, a.user, a.groups, namespace, errors)) {
    if (g.rules.some((r) => ruleAllows(r, a))) return { allowed: true, reason: `RBAC: allowed by ${g.source}` };
  }
  return { allowed: false, reason: errorsReason(errors) };
}

export interface RulesReviewStatus {
  resourceRules: Obj[];
  nonResourceRules: Obj[];
  incomplete: boolean;
  evaluationError?: string;
}

/** What a SelfSubjectRulesReview answers: the rules that apply to the user in `namespace`. */
export function rulesFor(policy: RbacPolicy, user: string, groups: string[], namespace: string): RulesReviewStatus {
  if (groups.includes(MASTERS_GROUP)) {
    return { resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }], incomplete: false };
  }
  const errors: string[] = [];
  const resourceRules: Obj[] = [];
  const nonResourceRules: Obj[] = [];
  for (const g of grants(policy, user, groups, namespace, errors)) {
    for (const r of g.rules) {
      if (r.nonResourceURLs?.length) nonResourceRules.push({ verbs: r.verbs ?? [], nonResourceURLs: r.nonResourceURLs });
      else {
        const out: Obj = { verbs: r.verbs ?? [], apiGroups: r.apiGroups ?? [], resources: r.resources ?? [] };
        if (r.resourceNames?.length) out.resourceNames = r.resourceNames;
        resourceRules.push(out);
      }
    }
  }
  const status: RulesReviewStatus = { resourceRules, nonResourceRules, incomplete: errors.length > 0 };
  if (errors.length) status.evaluationError = errors.join(', ');
  return status;
}

// ---------- the 403 ----------

/** How the API server words a denial (responsewriters.forbiddenMessage). */
export function forbiddenMessage(a: RequestAttributes): string {
  const user = JSON.stringify(a.user);
  if (!a.resourceRequest) return `User ${user} cannot ${a.verb} path ${JSON.stringify(a.path)}`;
  const resource = JSON.stringify(a.subresource ? `${a.resource}/${a.subresource}` : a.resource);
  const where = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : 'at the cluster scope';
  return `User ${user} cannot ${a.verb} resource ${resource} in API group ${JSON.stringify(a.apiGroup)} ${where}`;
}

/**
 * The 403 Forbidden Status: `<resource>[.<group>] ["<name>"] is forbidden: <message>[: <reason>]`, details
 * {name, group, kind: the resource}; `forbidden: <message>` with empty details for non-resource paths.
 */
export function forbiddenError(a: RequestAttributes, reason: string): ApiError {
  const msg = reason ? `${forbiddenMessage(a)}: ${reason}` : forbiddenMessage(a);
  if (!a.resourceRequest || !a.resource) return new ApiError(403, 'Forbidden', `forbidden: ${msg}`, {});
  const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const details: Obj = {};
  if (a.name) details.name = a.name;
  if (a.apiGroup) details.group = a.apiGroup;
  details.kind = a.resource;
  const subject = a.name ? `${qualified} ${JSON.stringify(a.name)}` : qualified;
  return new ApiError(403, 'Forbidden', `${subject} is forbidden: ${msg}`, details);
}

// ---------- access reviews ----------

/** The attributes a (Self)SubjectAccessReview spec asks about. */
export function reviewAttributes(spec: Obj, user: string, groups: string[]): RequestAttributes {
  const ra = spec.resourceAttributes;
  const nra = spec.nonResourceAttributes;
  if (ra) {
    return {
      user, groups, verb: ra.verb ?? '', resourceRequest: true, apiGroup: ra.group ?? '', apiVersion: ra.version ?? '',
      resource: ra.resource ?? '', subresource: ra.subresource ?? '', name: ra.name ?? '', namespace: ra.namespace ?? '', path: '',
    };
  }
  return { user, groups, verb: nra?.verb ?? '', resourceRequest: false, apiGroup: '', resource: '', subresource: '', name: '', namespace: '', path: nra?.path ?? '' };
}

// ---------- the bootstrap policy ----------

const BOOTSTRAP_META = { labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' }, annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' } };

const clusterRole = (name: string, rules: Obj[]): Obj => ({ apiVersion: `${RBAC_GROUP}/v1`, kind: 'ClusterRole', metadata: { name, ...structuredClone(BOOTSTRAP_META) }, rules });
const clusterRoleBinding = (name: string, role: string, groups: string[]): Obj => ({
  apiVersion: `${RBAC_GROUP}/v1`, kind: 'ClusterRoleBinding', metadata: { name, ...structuredClone(BOOTSTRAP_META) },
  roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: role },
  subjects: groups.map((g) => ({ apiGroup: RBAC_GROUP, kind: 'Group', name: g })),
});

/**
 * The default roles and bindings of a real cluster that clients depend on: cluster-admin (bound to
 * system:masters), discovery and version/health for every authenticated user (system:discovery,
 * system:public-info-viewer), and self access reviews / whoami (system:basic-user).
 */
export function bootstrapPolicy(): Obj[] {
  const health = ['/healthz', '/livez', '/readyz', '/version', '/version/'];
  return [
    clusterRole('cluster-admin', [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, { nonResourceURLs: ['*'], verbs: ['*'] }]),
    clusterRole('system:discovery', [{ nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', ...health, '/openapi', '/openapi/*'], verbs: ['get'] }]),
    clusterRole('system:public-info-viewer', [{ nonResourceURLs: health, verbs: ['get'] }]),
    clusterRole('system:basic-user', [
      { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
      { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
    ]),
    clusterRoleBinding('cluster-admin', 'cluster-admin', [MASTERS_GROUP]),
    clusterRoleBinding('system:discovery', 'system:discovery', ['system:authenticated']),
    clusterRoleBinding('system:public-info-viewer', 'system:public-info-viewer', ['system:authenticated', 'system:unauthenticated']),
    clusterRoleBinding('system:basic-user', 'system:basic-user', ['system:authenticated']),
  ];
}

// ---------- impersonation ----------

export interface Impersonation {
  user?: string;
  groups: string[];
}

/** The Impersonate-User / Impersonate-Group headers of a request (none: undefined). */
export function impersonationOf(headers: Record<string, string | string[] | undefined>): Impersonation | undefined {
  const all = (h: string | string[] | undefined): string[] => (h === undefined ? [] : Array.isArray(h) ? h : h.split(',').map((x) => x.trim()).filter(Boolean));
  const user = all(headers['impersonate-user'])[0];
  const groups = all(headers['impersonate-group']);
  if (user === undefined && !groups.length) return undefined;
  return { user, groups };
}

/**
 * Acting as someone else (kubectl --as / --as-group): the requester needs `impersonate` on users (or
 * serviceaccounts, in the account's namespace) and on each group. Returns the identity requests then run
 * as (with system:authenticated, and the service-account groups for a service account), or the denial.
 */
export function impersonate(
  authorizer: (a: RequestAttributes) => Decision, requester: { username: string; groups?: string[] }, imp: Impersonation,
): { user: { username: string; groups: string[] } } | { denied: ApiError } {
  const base = { user: requester.username, groups: requester.groups ?? [], verb: 'impersonate', resourceRequest: true, apiGroup: '', subresource: '', path: '' };
  if (!imp.user) return { denied: new ApiError(500, 'InternalError', `Internal error occurred: requested groups ${imp.groups.join(', ')} without impersonating a user`) };
  const checks: RequestAttributes[] = [];
  const sa = imp.user.match(/^system:serviceaccount:([^:]+):([^:]+)$/);
  const groups = [...imp.groups];
  if (sa) {
    checks.push({ ...base, resource: 'serviceaccounts', name: sa[2]!, namespace: sa[1]! });
    if (!imp.groups.length) groups.push('system:serviceaccounts', `system:serviceaccounts:${sa[1]}`);
  } else checks.push({ ...base, resource: 'users', name: imp.user, namespace: '' });
  for (const g of imp.groups) checks.push({ ...base, resource: 'groups', name: g, namespace: '' });
  for (const a of checks) {
    const d = authorizer(a);
    if (!d.allowed) return { denied: forbiddenError(a, d.reason) };
  }
  if (imp.user !== 'system:anonymous' && !groups.includes('system:authenticated')) groups.push('system:authenticated');
  return { user: { username: imp.user, groups } };
}
