/**
 * A small evaluator of Kubernetes RBAC rules (the authorizer's matching, without aggregation), so the
 * tests can ask "may this role do X?" as well as compare the exact rule set.
 */

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

export interface Request {
  group: string;
  resource: string; // "pods" or "pods/status"
  verb: string;
  name?: string;
}

const has = (list: string[] | undefined, v: string) => !!list && (list.includes('*') || list.includes(v));

export function ruleAllows(rule: PolicyRule, req: Request): boolean {
  if (!has(rule.verbs, req.verb)) return false;
  if (!has(rule.apiGroups, req.group)) return false;
  const [base] = req.resource.split('/');
  const resourceOK = has(rule.resources, req.resource) || (req.resource.includes('/') && rule.resources?.includes(`${base}/*`)) ||
    (!req.resource.includes('/') && rule.resources?.includes('*/*'));
  if (!resourceOK) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return req.name !== undefined && rule.resourceNames.includes(req.name);
  return true;
}

export const allows = (rules: PolicyRule[], req: Request): boolean => rules.some((r) => ruleAllows(r, req));

/** Rules flattened to "group resource verb [name]" strings: an order-free form to compare exactly. */
export function flatten(rules: PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) {
      const names = r.resourceNames && r.resourceNames.length > 0 ? r.resourceNames : [undefined];
      for (const n of names) out.add(`${g || 'core'} ${res} ${v}${n ? ` ${n}` : ''}`);
    }
  }
  return [...out].sort();
}
