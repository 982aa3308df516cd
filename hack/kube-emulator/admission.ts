// ValidatingAdmissionPolicy enforcement: policies and bindings stored in the emulator are evaluated
// (CEL, with the subset cel.ts implements) on CREATE / UPDATE / DELETE of matching resources.
import { evaluate, CelError } from './cel.js';
import type { ResourceType } from './registry.js';
import { matchLabelSelectorObject } from './selectors.js';
import { ApiError } from './status.js';

type Obj = Record<string, any>;

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface AdmissionRequest {
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  type: ResourceType;
  subresource: string;
  name: string;
  namespace: string;
  object: Obj | null;
  oldObject: Obj | null;
  user: UserInfo;
  dryRun: boolean;
  namespaceObject: Obj | null;
}

function ruleMatches(rules: Obj[] | undefined, r: AdmissionRequest): boolean {
  const resource = r.subresource ? `${r.type.plural}/${r.subresource}` : r.type.plural;
  return (rules ?? []).some((rule) => {
    const has = (list: string[] | undefined, v: string): boolean => !!list && (list.includes('*') || list.includes(v));
    if (!has(rule.apiGroups, r.type.group) || !has(rule.apiVersions, r.type.version)) return false;
    if (!(rule.operations ?? []).some((o: string) => o === '*' || o === r.operation)) return false;
    const resources: string[] = rule.resources ?? [];
    // '*' = every resource (no subresources), '*/*' = everything, 'pods/*' = pods' subresources, '*/status'
    const resOk = resources.some((x) => {
      if (x === '*') return !r.subresource;
      if (x === '*/*' || x === resource) return true;
      if (x === `${r.type.plural}/*`) return !!r.subresource;
      return !!r.subresource && x === `*/${r.subresource}`;
    });
    if (!resOk) return false;
    if (rule.scope === 'Cluster' && r.type.namespaced) return false;
    if (rule.scope === 'Namespaced' && !r.type.namespaced) return false;
    return true;
  });
}

function matchResources(m: Obj | undefined, r: AdmissionRequest): boolean {
  if (!m) return true;
  if (m.resourceRules && !ruleMatches(m.resourceRules, r)) return false;
  if (m.excludeResourceRules && ruleMatches(m.excludeResourceRules, r)) return false;
  const labelsOf = (r.object ?? r.oldObject)?.metadata?.labels;
  if (m.objectSelector && Object.keys(m.objectSelector).length && !matchLabelSelectorObject(m.objectSelector, labelsOf)) return false;
  if (m.namespaceSelector && Object.keys(m.namespaceSelector).length && r.type.namespaced) {
    if (!matchLabelSelectorObject(m.namespaceSelector, r.namespaceObject?.metadata?.labels)) return false;
  }
  return true;
}

function requestVar(r: AdmissionRequest): Obj {
  const userInfo: Obj = { username: r.user.username };
  if (r.user.uid) userInfo.uid = r.user.uid;
  if (r.user.groups?.length) userInfo.groups = r.user.groups;
  if (r.user.extra && Object.keys(r.user.extra).length) userInfo.extra = r.user.extra;
  const req: Obj = {
    operation: r.operation, name: r.name, userInfo, dryRun: r.dryRun,
    kind: { group: r.type.group, version: r.type.version, kind: r.type.kind },
    resource: { group: r.type.group, version: r.type.version, resource: r.type.plural },
  };
  if (r.namespace) req.namespace = r.namespace;
  if (r.subresource) req.subResource = r.subresource;
  return req;
}

/**
 * Runs every bound policy that matches; throws the API server's denial (403 by default) for the
 * first failed validation of a binding with the Deny action. Returns warnings for Warn actions.
 */
export function admit(policies: Obj[], bindings: Obj[], r: AdmissionRequest): string[] {
  const warnings: string[] = [];
  for (const b of bindings) {
    const p = policies.find((x) => x.metadata.name === b.spec?.policyName);
    if (!p) continue;
    const spec = p.spec ?? {};
    if (!ruleMatches(spec.matchConstraints?.resourceRules, r)) continue;
    if (spec.matchConstraints?.excludeResourceRules && ruleMatches(spec.matchConstraints.excludeResourceRules, r)) continue;
    if (!matchResources({ ...spec.matchConstraints, resourceRules: undefined }, r)) continue;
    if (!matchResources(b.spec?.matchResources, r)) continue;
    const env: Obj = { object: r.object, oldObject: r.oldObject, request: requestVar(r), params: null, namespaceObject: r.namespaceObject };
    const failClosed = (spec.failurePolicy ?? 'Fail') === 'Fail';
    const deny = (message: string, reason: string): void => {
      const actions: string[] = b.spec?.validationActions ?? [];
      const full = `ValidatingAdmissionPolicy '${p.metadata.name}' with binding '${b.metadata.name}' denied request: ${message}`;
      if (actions.includes('Warn')) warnings.push(full);
      if (actions.includes('Deny')) {
        const code = reason === 'Invalid' ? 422 : reason === 'RequestEntityTooLarge' ? 413 : reason === 'Unauthorized' ? 401 : 403;
        const qualified = r.type.group ? `${r.type.plural}.${r.type.group}` : r.type.plural;
        const msg = code === 403 ? `${qualified} "${r.name}" is forbidden: ${full}` : code === 422 ? `${r.type.kind}${r.type.group ? `.${r.type.group}` : ''} "${r.name}" is invalid: ${full}` : full;
        throw new ApiError(code, reason || 'Forbidden', msg, { name: r.name, group: r.type.group, kind: r.type.plural });
      }
    };
    try {
      const conds: Obj[] = spec.matchConditions ?? [];
      let skip = false;
      for (const c of conds) if (evaluate(c.expression, env) !== true) { skip = true; break; }
      if (skip) continue;
      const variables: Obj = {};
      env.variables = variables;
      for (const v of spec.variables ?? []) variables[v.name] = evaluate(v.expression, env);
    } catch (e) {
      if (e instanceof CelError) {
        if (failClosed) deny(`failed to evaluate: ${e.message}`, 'Forbidden');
        continue;
      }
      throw e;
    }
    for (const v of spec.validations ?? []) {
      let ok: unknown;
      try {
        ok = evaluate(v.expression, env);
      } catch (e) {
        if (!(e instanceof CelError)) throw e;
        if (failClosed) deny(`expression '${v.expression}' resulted in error: ${e.message}`, v.reason ?? 'Forbidden');
        continue;
      }
      if (ok === true) continue;
      let message = v.message ?? `failed expression: ${v.expression}`;
      if (v.messageExpression) {
        try { const m = evaluate(v.messageExpression, env); if (typeof m === 'string' && m.trim()) message = m; } catch { /* keep the static message */ }
      }
      deny(message, v.reason ?? 'Forbidden');
    }
  }
  return warnings;
}
