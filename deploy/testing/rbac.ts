// Test kit (never shipped): evaluates RBAC rules the way the API server (and the Kubernetes emulator) does.
import { ruleAllows as emulatorRuleAllows } from '../../hack/kube-emulator/rbac.js';

/**
 * Static questions about RBAC rules, so the tests can ask "may this role do X?" as well as compare the
 * exact rule set. Matching is the emulator's authorizer's (hack/kube-emulator/rbac.ts): wildcards, a status subresource of any resource,
 * resourceNames (never matching a request without a name: create, plain list).
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

/** One rule against one request, with the API server's matching (the emulator's RBAC authorizer). */
export function ruleAllows(rule: PolicyRule, req: Request): boolean {
  const [resource = '', subresource = ''] = req.resource.split('/');
  return emulatorRuleAllows(rule, {
    user: '', groups: [], verb: req.verb, resourceRequest: true, apiGroup: req.group, resource, subresource, name: req.name ?? '', namespace: '', path: '',
  });
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
