// Lists as the API server serves them: consistent pages (limit and continue tokens that read the bucket as
// it was at the first page's resourceVersion), Exact lists of an older resourceVersion, and selectors.
import type { Api, ListQuery } from './api.js';
import { listItem } from './builtins.js';
import { apiVersionOf, type ResourceType } from './registry.js';
import { parseSelectors, matches } from './selection.js';
import { badRequest, gone } from './status.js';
import type { Obj, Store } from './store.js';

export interface Continue {
  rv: number;
  start: string;
}

export function encodeContinue(c: Continue): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: c.rv, start: c.start })).toString('base64url');
}

export function decodeContinue(s: string): Continue {
  try {
    const j = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    if (j.v !== 'meta.k8s.io/v1' || typeof j.rv !== 'number' || typeof j.start !== 'string') throw new Error('bad');
    return { rv: j.rv, start: j.start };
  } catch {
    throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
}

/** Bucket state at an older resourceVersion, by undoing later events; null if history is gone. */
function stateAt(store: Store, t: ResourceType, rv: number): Map<string, Obj> | 'live' | null {
  const events = store.eventsSince(t.bucket, rv);
  if (!events) return null;
  if (!events.length) return 'live';
  const state = new Map<string, Obj>();
  for (const k of store.sortedKeys(t.bucket)) state.set(k, store.get(t.bucket, k)!);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type === 'ADDED') state.delete(e.key);
    else state.set(e.key, e.prev!);
  }
  return state;
}

/** A list (or one page of it) of `t` in `ns` ('' = all namespaces). */
export function listObjects(api: Api, t: ResourceType, ns: string, q: ListQuery): Obj {
  const store = api.store;
  const sel = parseSelectors(t, q);
  let rv = store.currentRV();
  let start = '';
  let snapshot: Map<string, Obj> | 'live' | null = null;
  if (q.continue) {
    const c = decodeContinue(q.continue);
    snapshot = stateAt(store, t, c.rv);
    if (!snapshot) throw gone('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.');
    rv = c.rv;
    start = c.start;
  } else if (q.resourceVersion && q.resourceVersionMatch === 'Exact') {
    const want = Number(q.resourceVersion);
    if (!Number.isInteger(want)) throw badRequest(`invalid resource version "${q.resourceVersion}"`);
    snapshot = stateAt(store, t, want);
    if (!snapshot) throw gone(`too old resource version: ${want} (${store.currentRV()})`);
    rv = want;
  }
  let keys: string[];
  let getObj: (k: string) => Obj;
  if (snapshot && snapshot !== 'live') {
    const snap = snapshot;
    keys = [...snap.keys()].sort();
    getObj = (k) => snap.get(k)!;
  } else {
    keys = store.sortedKeys(t.bucket);
    getObj = (k) => store.get(t.bucket, k)!;
  }
  const prefix = t.namespaced && ns ? `${ns}/` : '';
  const limit = q.limit && q.limit > 0 ? q.limit : Infinity;
  // binary search for the start key
  let i = 0;
  const from = start || prefix;
  if (from) {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (keys[m]! < from) lo = m + 1; else hi = m; }
    i = lo;
  }
  const items: Obj[] = [];
  let lastKey = '';
  let more = false;
  let remaining = 0;
  const noSelectors = !sel.labels.length && !sel.fields.length;
  for (; i < keys.length; i++) {
    const k = keys[i]!;
    if (prefix && !k.startsWith(prefix)) break;
    const o = getObj(k);
    if (!matches(t, sel, o)) continue;
    if (items.length >= limit) {
      more = true;
      if (!noSelectors) break;
      remaining++;
      continue;
    }
    items.push(t.schema ? api.view(t, o) : listItem(api.view(t, o)));
    lastKey = k;
  }
  const metadata: Obj = { resourceVersion: String(rv) };
  if (more) {
    metadata.continue = encodeContinue({ rv, start: `${lastKey}\u0000` });
    if (noSelectors) metadata.remainingItemCount = remaining;
  }
  return { kind: t.listKind, apiVersion: apiVersionOf(t), metadata, items };
}
