// Field ownership for server-side apply: field sets (FieldsV1), managedFields bookkeeping, and the
// apply merge with conflict detection.
import { ApiError } from './status.js';

type V = any;
const isObj = (v: unknown): v is Record<string, V> => typeof v === 'object' && v !== null && !Array.isArray(v);
const SEP = '\u0000';

/** Returns the key fields of an associative list at `path` (field names), or null if atomic. */
export type ListKeys = (path: string[], items: V[]) => string[] | null;

/** A field set: each member is a path of FieldsV1 segments ("f:spec", "k:{\"name\":\"a\"}", "v:x", "."), joined by NUL. */
export type FieldSet = Set<string>;

const itemKey = (item: V, keys: string[]): string => `k:${JSON.stringify(Object.fromEntries(keys.map((k) => [k, item[k]])))}`;

/**
 * Walks the leaves of a value as FieldsV1 paths, calling `emit(path, value)` for each; `value` renders the
 * leaf's JSON on demand ("" for "." markers and set members), so callers that need only paths pay nothing.
 */
function walkLeaves(v: V, listKeys: ListKeys, emit: (path: string, value: () => string) => void, prefix: string[] = [], names: string[] = []): void {
  if (isObj(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0 && prefix.length) { emit(prefix.join(SEP), () => '{}'); return; }
    for (const k of keys) walkLeaves(v[k], listKeys, emit, [...prefix, `f:${k}`], [...names, k]);
    return;
  }
  if (Array.isArray(v)) {
    const keys = v.length ? listKeys(names, v) : null;
    if (keys && v.every(isObj)) {
      for (const item of v) {
        const p = [...prefix, itemKey(item, keys)];
        emit([...p, '.'].join(SEP), () => '');
        for (const k of Object.keys(item)) walkLeaves(item[k], listKeys, emit, [...p, `f:${k}`], [...names, '[]', k]);
      }
      return;
    }
    if (keys && keys.length === 0 && v.every((x) => !isObj(x) && !Array.isArray(x))) {
      for (const x of v) emit([...prefix, `v:${JSON.stringify(x)}`].join(SEP), () => '');
      return;
    }
  }
  emit(prefix.join(SEP), () => JSON.stringify(v));
}

/** Leaf paths of a value (what a manager owns when it sets this value). */
export function leafPaths(v: V, listKeys: ListKeys): FieldSet {
  const out: FieldSet = new Set();
  walkLeaves(v, listKeys, (path) => out.add(path));
  return out;
}

/** Leaf paths with the JSON of their values ("." markers map to ""), in one pass. */
export function leafValues(v: V, listKeys: ListKeys): Map<string, string> {
  const out = new Map<string, string>();
  walkLeaves(v, listKeys, (path, value) => out.set(path, value()));
  return out;
}

/** FieldsV1 JSON (nested {"f:spec": {"f:x": {}}}) from a field set. */
export function toFieldsV1(set: FieldSet): Record<string, V> {
  const root: Record<string, V> = {};
  for (const p of [...set].sort()) {
    let cur = root;
    for (const seg of p.split(SEP)) cur = cur[seg] ??= {};
  }
  return root;
}

export function fromFieldsV1(f: V): FieldSet {
  const out: FieldSet = new Set();
  const walk = (n: V, prefix: string[]): void => {
    const keys = isObj(n) ? Object.keys(n) : [];
    if (keys.length === 0) { if (prefix.length) out.add(prefix.join(SEP)); return; }
    for (const k of keys) walk(n[k], [...prefix, k]);
  };
  walk(f, []);
  return out;
}

/** Human path for conflict messages: .spec.containers[name="a"].image */
export function displayPath(p: string): string {
  return p.split(SEP).map((seg) => {
    if (seg.startsWith('f:')) return `.${seg.slice(2)}`;
    if (seg.startsWith('k:')) {
      const kv = JSON.parse(seg.slice(2)) as Record<string, V>;
      return `[${Object.entries(kv).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
    }
    if (seg.startsWith('v:')) return `[${seg.slice(2)}]`;
    return '';
  }).join('');
}

/** Value at a field path; `undefined` when absent. */
function valueAt(obj: V, p: string): V {
  let cur = obj;
  for (const seg of p.split(SEP)) {
    if (cur === undefined) return undefined;
    if (seg === '.') return cur;
    if (seg.startsWith('f:')) cur = isObj(cur) ? cur[seg.slice(2)] : undefined;
    else if (seg.startsWith('k:')) {
      const kv = JSON.parse(seg.slice(2)) as Record<string, V>;
      cur = Array.isArray(cur) ? cur.find((x) => isObj(x) && Object.entries(kv).every(([k, v]) => JSON.stringify(x[k]) === JSON.stringify(v))) : undefined;
    } else if (seg.startsWith('v:')) {
      const val = JSON.parse(seg.slice(2));
      cur = Array.isArray(cur) && cur.some((x) => JSON.stringify(x) === JSON.stringify(val)) ? val : undefined;
    }
  }
  return cur;
}

/** Removes the field at a path (in place). */
function removeAt(obj: V, p: string): void {
  const segs = p.split(SEP);
  if (segs[segs.length - 1] === '.') segs.pop();
  let cur = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i]!;
    cur = valueAt(cur, seg);
    if (cur === undefined || cur === null) return;
  }
  const last = segs[segs.length - 1]!;
  if (last.startsWith('f:') && isObj(cur)) delete cur[last.slice(2)];
  else if ((last.startsWith('k:') || last.startsWith('v:')) && Array.isArray(cur)) {
    const target = valueAt(cur, last);
    const i = cur.indexOf(target);
    if (i >= 0) cur.splice(i, 1);
  }
}

/** Merge of an applied configuration into the live object: maps merge, associative lists merge by key. */
export function applyMerge(live: V, applied: V, listKeys: ListKeys, names: string[] = []): V {
  if (isObj(applied)) {
    const out: Record<string, V> = isObj(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(applied)) out[k] = applyMerge(out[k], v, listKeys, [...names, k]);
    return out;
  }
  if (Array.isArray(applied) && Array.isArray(live)) {
    const keys = listKeys(names, [...applied, ...live]);
    if (keys && keys.length && applied.every(isObj)) {
      const out = live.map((x) => x);
      const keyOf = (x: V): string => JSON.stringify(keys.map((k) => x[k]));
      const at = new Map<string, number>();
      out.forEach((x, i) => { if (isObj(x)) at.set(keyOf(x), i); });
      for (const item of applied) {
        const i = at.get(keyOf(item));
        if (i !== undefined) out[i] = applyMerge(out[i], item, listKeys, [...names, '[]']);
        else { at.set(keyOf(item), out.length); out.push(structuredClone(item)); }
      }
      return out;
    }
    if (keys && keys.length === 0) {
      const out = [...live];
      const seen = new Set(out.map((y) => JSON.stringify(y)));
      for (const x of applied) if (!seen.has(JSON.stringify(x))) { seen.add(JSON.stringify(x)); out.push(x); }
      return out;
    }
  }
  return structuredClone(applied);
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, V>;
  subresource?: string;
}

interface Owner {
  entry: ManagedFieldsEntry;
  set: FieldSet;
}

const IGNORED_TOP = new Set(['apiVersion', 'kind']);
const IGNORED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']);

/** The part of an object whose fields are tracked (no identity/system metadata; status or not). */
export function trackedView(obj: V, subresource: string, statusSplit: boolean): V {
  const out: Record<string, V> = {};
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (IGNORED_TOP.has(k)) continue;
    if (statusSplit && subresource === 'status' && k !== 'status') continue;
    if (statusSplit && subresource !== 'status' && k === 'status') continue;
    if (k === 'metadata' && isObj(v)) {
      const m: Record<string, V> = {};
      for (const [mk, mv] of Object.entries(v)) if (!IGNORED_META.has(mk)) m[mk] = mv;
      if (Object.keys(m).length) out.metadata = m;
      continue;
    }
    out[k] = v;
  }
  return out;
}

function owners(obj: V): Owner[] {
  const mf = obj?.metadata?.managedFields;
  if (!Array.isArray(mf)) return [];
  return mf.map((e: ManagedFieldsEntry) => ({ entry: e, set: fromFieldsV1(e.fieldsV1) }));
}

const sameOwner = (a: ManagedFieldsEntry, manager: string, op: string, sub: string): boolean =>
  a.manager === manager && a.operation === op && (a.subresource ?? '') === sub;

function finish(list: Owner[]): ManagedFieldsEntry[] | undefined {
  const out = list.filter((o) => o.set.size > 0).map((o) => {
    const e: ManagedFieldsEntry = { ...o.entry, fieldsV1: toFieldsV1(o.set) };
    return e;
  });
  return out.length ? out : undefined;
}

function diffPaths(oldV: V, newV: V, listKeys: ListKeys): { changed: FieldSet; removed: FieldSet } {
  const o = leafValues(oldV, listKeys);
  const n = leafValues(newV, listKeys);
  const changed: FieldSet = new Set();
  const removed: FieldSet = new Set();
  for (const [p, val] of n) if (o.get(p) !== val) changed.add(p);
  for (const p of o.keys()) if (!n.has(p)) removed.add(p);
  return { changed, removed };
}

/**
 * Records an Update (PUT / non-apply PATCH / create) by `manager`. newObj.metadata.managedFields holds
 * the ownership to start from (the stored one, or what the request itself set) and is replaced.
 */
export function recordUpdate(oldObj: V | undefined, newObj: V, manager: string, apiVersion: string, subresource: string, statusSplit: boolean, listKeys: ListKeys, now: string): void {
  const list = owners(newObj);
  const { changed, removed } = diffPaths(trackedView(oldObj ?? {}, subresource, statusSplit), trackedView(newObj, subresource, statusSplit), listKeys);
  if (changed.size === 0 && removed.size === 0 && oldObj) return;
  for (const o of list) for (const p of [...changed, ...removed]) o.set.delete(p);
  let mine = list.find((o) => sameOwner(o.entry, manager, 'Update', subresource));
  if (!mine) {
    mine = { entry: { manager, operation: 'Update', apiVersion, time: now, fieldsType: 'FieldsV1', fieldsV1: {} }, set: new Set() };
    if (subresource) mine.entry.subresource = subresource;
    list.push(mine);
  }
  mine.entry = { ...mine.entry, time: now, apiVersion };
  for (const p of changed) mine.set.add(p);
  const mf = finish(list);
  if (mf) newObj.metadata.managedFields = mf; else delete newObj.metadata.managedFields;
}

/**
 * Server-side apply of `applied` onto `live` (undefined when creating) by `manager`.
 * Returns the new object with managedFields, or throws a 409 Conflict listing the conflicting fields.
 */
export function serverSideApply(live: V | undefined, applied: V, opts: { manager: string; force: boolean; apiVersion: string; subresource: string; statusSplit: boolean; listKeys: ListKeys; now: string }): V {
  const { manager, force, subresource, statusSplit, listKeys } = opts;
  const base = live ? structuredClone(live) : { apiVersion: applied.apiVersion, kind: applied.kind, metadata: { name: applied.metadata?.name, namespace: applied.metadata?.namespace } };
  const list = owners(base);
  const appliedView = trackedView(applied, subresource, statusSplit);
  const appliedVals = leafValues(appliedView, listKeys);
  const appliedSet: FieldSet = new Set(appliedVals.keys());
  // conflicts: another manager owns a path we set, and the values differ
  const conflicts = new Map<string, string[]>();
  const liveView = trackedView(base, subresource, statusSplit);
  const liveVals = leafValues(liveView, listKeys);
  // a leaf differs if its JSON differs; a path that is a subtree in one and a leaf in the other differs too
  const differs = (p: string): boolean => liveVals.get(p) !== appliedVals.get(p);
  for (const o of list) {
    if (sameOwner(o.entry, manager, 'Apply', subresource)) continue;
    for (const p of appliedSet) {
      if (!o.set.has(p) || p.endsWith('.')) continue;
      if (differs(p)) {
        const key = `${o.entry.manager}\u0001${o.entry.apiVersion}`;
        conflicts.set(key, [...(conflicts.get(key) ?? []), p]);
      }
    }
  }
  if (conflicts.size && !force) {
    const total = [...conflicts.values()].reduce((n, ps) => n + ps.length, 0);
    const causes: { reason: string; message: string; field: string }[] = [];
    const parts: string[] = [];
    for (const [key, ps] of conflicts) {
      const [mgr, av] = key.split('\u0001');
      for (const p of ps) causes.push({ reason: 'FieldManagerConflict', message: `conflict with "${mgr}" using ${av}`, field: displayPath(p) });
      parts.push(ps.length === 1 ? `conflict with "${mgr}" using ${av}: ${displayPath(ps[0]!)}` : `conflicts with "${mgr}" using ${av}:\n${ps.map((p) => `- ${displayPath(p)}`).join('\n')}`);
    }
    throw new ApiError(409, 'Conflict', `Apply failed with ${total} conflict${total === 1 ? '' : 's'}: ${parts.join('\n')}`, { causes });
  }
  if (force) for (const o of list) if (!sameOwner(o.entry, manager, 'Apply', subresource)) for (const p of appliedSet) if (!p.endsWith('.')) {
    if (differs(p)) o.set.delete(p);
  }
  // fields this manager applied before but no longer does: removed unless someone else owns them
  let mine = list.find((o) => sameOwner(o.entry, manager, 'Apply', subresource));
  let result = base;
  if (mine) {
    const dropped = [...mine.set].filter((p) => !appliedSet.has(p));
    const others = list.filter((o) => o !== mine);
    // deepest first so list items go after their fields
    dropped.sort((a, b) => b.length - a.length);
    for (const p of dropped) if (!others.some((o) => o.set.has(p))) removeAt(result, p);
  }
  const { metadata: am, apiVersion: _a, kind: _k, ...appliedBody } = applied;
  const metaApplied: Record<string, V> = {};
  for (const [k, v] of Object.entries(am ?? {})) if (!IGNORED_META.has(k)) metaApplied[k] = v;
  result = applyMerge(result, appliedBody, listKeys);
  result.metadata = applyMerge(result.metadata ?? {}, metaApplied, listKeys, ['metadata']);
  if (!mine) {
    mine = { entry: { manager, operation: 'Apply', apiVersion: opts.apiVersion, time: opts.now, fieldsType: 'FieldsV1', fieldsV1: {} }, set: new Set() };
    if (subresource) mine.entry.subresource = subresource;
    list.push(mine);
  }
  mine.entry = { ...mine.entry, time: opts.now, apiVersion: opts.apiVersion };
  mine.set = appliedSet;
  const mf = finish(list);
  if (mf) result.metadata.managedFields = mf; else delete result.metadata.managedFields;
  return result;
}
