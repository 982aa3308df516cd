import type { LabelSelector } from '../crds/api/common.js';

/** metav1.LabelSelector semantics: all matchLabels and all matchExpressions must hold; {} selects all. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const values = r.values ?? [];
    switch (r.operator) {
      case 'In': if (!has || !values.includes(l[r.key]!)) return false; break;
      case 'NotIn': if (has && values.includes(l[r.key]!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

export interface PoolCandidate {
  name: string;
  creationTimestamp?: string | undefined;
  selector: LabelSelector;
  deleting: boolean;
}

/** Oldest first; same second: by name. Gives every reader the same winner. */
export function poolOrder(a: PoolCandidate, b: PoolCandidate): number {
  const ta = a.creationTimestamp ?? '';
  const tb = b.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Which pool serves a node: the oldest live pool whose selector matches. Also names the other matching
 * pools, which lose and say so in a condition.
 */
export function choosePool(pools: readonly PoolCandidate[], labels: Record<string, string> | undefined): { winner?: string; losers: string[] } {
  const matching = pools.filter((p) => !p.deleting && selectorMatches(p.selector, labels)).sort(poolOrder);
  const [first, ...rest] = matching;
  return first ? { winner: first.name, losers: rest.map((p) => p.name) } : { losers: [] };
}
