// Label and field selectors of lists and watches: parsing them against a resource type's field labels,
// matching stored objects, and what a selective watcher sees of a store event.
import type { ResourceType } from './registry.js';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector, SelectorError, type FieldRequirement, type LabelRequirement } from './selectors.js';
import { badRequest } from './status.js';
import type { Obj, StoreEvent } from './store.js';

export interface Selectors {
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

/** The field labels of a stored object: its name, its namespace if namespaced, and the type's own. */
export function fieldsOf(t: ResourceType, stored: Obj): Record<string, string> {
  const f: Record<string, string> = { 'metadata.name': stored.metadata.name };
  if (t.namespaced) f['metadata.namespace'] = stored.metadata.namespace ?? '';
  return t.fieldLabels ? { ...f, ...t.fieldLabels(stored) } : f;
}

export function parseSelectors(t: ResourceType, q: { labelSelector?: string; fieldSelector?: string }): Selectors {
  try {
    const labels = parseLabelSelector(q.labelSelector);
    const fields = parseFieldSelector(q.fieldSelector);
    const sample = fieldsOf(t, { metadata: { name: '', namespace: '' } });
    for (const r of fields) {
      if (!(r.field in sample)) {
        throw badRequest(`field label not supported: ${r.field}`);
      }
    }
    return { labels, fields };
  } catch (e) {
    if (e instanceof SelectorError) throw badRequest(e.message);
    throw e;
  }
}

export function matches(t: ResourceType, sel: Selectors, stored: Obj): boolean {
  if (sel.labels.length && !matchLabels(sel.labels, stored.metadata.labels)) return false;
  if (sel.fields.length && !matchFields(sel.fields, fieldsOf(t, stored))) return false;
  return true;
}

/**
 * What a watcher with selectors sees of a store event: objects entering the selection are ADDED,
 * leaving it DELETED, staying in it MODIFIED; null when the watcher sees nothing.
 */
export function watchEventType(t: ResourceType, sel: Selectors, e: StoreEvent): 'ADDED' | 'MODIFIED' | 'DELETED' | null {
  const now = matches(t, sel, e.obj);
  const before = e.prev ? matches(t, sel, e.prev) : false;
  if (e.type === 'ADDED') return now ? 'ADDED' : null;
  if (e.type === 'DELETED') return before || now ? 'DELETED' : null;
  if (before && now) return 'MODIFIED';
  if (now) return 'ADDED';
  if (before) return 'DELETED';
  return null;
}
