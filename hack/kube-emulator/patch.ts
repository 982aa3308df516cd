// Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch (the
// subset kubectl sends for built-in types: merge keys for well-known lists and the $patch directives).
import { badRequest, ApiError } from './status.js';

type V = any;
const isObj = (v: unknown): v is Record<string, V> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: V, patch: V): V {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, V> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescapePtr(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw badRequest(`the server rejected our request due to an error in our request: invalid JSON pointer "${p}"`);
  return p.slice(1).split('/').map(unescapePtr);
}

function patchErr(msg: string): ApiError {
  return new ApiError(422, 'Invalid', msg);
}

function getAt(doc: V, path: string[]): V {
  let cur = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isObj(cur)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

/** RFC 6902 JSON patch; returns a new document. Errors are 422 like the API server's. */
export function jsonPatch(doc: V, ops: V): V {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let root = structuredClone(doc);
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw badRequest('invalid JSON patch operation');
    const path = parsePointer(op.path);
    const parentPath = path.slice(0, -1);
    const last = path[path.length - 1];
    const parent = (): V => {
      const p = getAt(root, parentPath);
      if (p === undefined || p === null || typeof p !== 'object') throw patchErr(`the server rejected our request due to an error in our request: doc is missing path: "${op.path}": missing value`);
      return p;
    };
    const add = (value: V): void => {
      if (last === undefined) { root = value; return; }
      const p = parent();
      if (Array.isArray(p)) {
        const i = last === '-' ? p.length : Number(last);
        if (!Number.isInteger(i) || i < 0 || i > p.length) throw patchErr(`add operation does not apply: doc is missing path: "${op.path}": index out of range`);
        p.splice(i, 0, value);
      } else p[last] = value;
    };
    const remove = (): V => {
      if (last === undefined) throw patchErr('cannot remove root');
      const p = parent();
      if (Array.isArray(p)) {
        const i = Number(last);
        if (!Number.isInteger(i) || i < 0 || i >= p.length) throw patchErr(`the server rejected our request due to an error in our request: unable to remove nonexistent key: ${last}: missing value`);
        return p.splice(i, 1)[0];
      }
      if (!Object.prototype.hasOwnProperty.call(p, last)) throw patchErr(`the server rejected our request due to an error in our request: unable to remove nonexistent key: ${last}: missing value`);
      const v = p[last];
      delete p[last];
      return v;
    };
    switch (op.op) {
      case 'add': add(structuredClone(op.value)); break;
      case 'remove': remove(); break;
      case 'replace': {
        if (last === undefined) { root = structuredClone(op.value); break; }
        const p = parent();
        if (Array.isArray(p) ? !(Number(last) >= 0 && Number(last) < p.length) : !Object.prototype.hasOwnProperty.call(p, last)) {
          throw patchErr(`the server rejected our request due to an error in our request: replace operation does not apply: doc is missing key: ${op.path}: missing value`);
        }
        p[Array.isArray(p) ? Number(last) : last] = structuredClone(op.value);
        break;
      }
      case 'move': case 'copy': {
        const from = parsePointer(String(op.from));
        const v = getAt(root, from);
        if (v === undefined) throw patchErr(`the server rejected our request due to an error in our request: ${op.op} operation does not apply: doc is missing from path: ${op.from}: missing value`);
        if (op.op === 'move') {
          const fp = getAt(root, from.slice(0, -1));
          const fl = from[from.length - 1]!;
          if (Array.isArray(fp)) fp.splice(Number(fl), 1); else delete fp[fl];
        }
        add(structuredClone(v));
        break;
      }
      case 'test': {
        const v = getAt(root, path);
        if (JSON.stringify(v) !== JSON.stringify(op.value)) throw patchErr(`the server rejected our request due to an error in our request: testing value ${op.path} failed: test failed`);
        break;
      }
      default: throw badRequest(`Unexpected kind: ${op.op}`);
    }
  }
  return root;
}

/** Merge keys of well-known built-in lists (patchMergeKey in the Go types). */
function mergeKeyFor(field: string, sample: V[]): string | null {
  switch (field) {
    case 'containers': case 'initContainers': case 'ephemeralContainers': case 'env': case 'volumes':
    case 'imagePullSecrets': case 'secrets': case 'clusters': case 'users': case 'contexts':
      return 'name';
    case 'volumeMounts': return 'mountPath';
    case 'volumeDevices': return 'devicePath';
    case 'conditions': case 'addresses': return 'type';
    case 'ownerReferences': return 'uid';
    case 'hostAliases': return 'ip';
    case 'taints': return 'key';
    case 'ports': {
      const first = sample.find(isObj);
      if (first && 'containerPort' in first) return 'containerPort';
      return 'port';
    }
  }
  return null;
}
const MERGE_PRIMITIVE_LISTS = new Set(['finalizers']);

/** Strategic merge patch (subset): maps merge, lists with a known merge key merge by key. */
export function strategicMerge(target: V, patch: V, field = ''): V {
  if (!isObj(patch)) return structuredClone(patch);
  if (patch.$patch === 'delete') return undefined;
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return stripDirectives(rest);
  }
  const out: Record<string, V> = isObj(target) ? { ...target } : {};
  const retain: string[] | undefined = Array.isArray(patch.$retainKeys) ? patch.$retainKeys : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = out[f].filter((x: V) => !v.includes(x));
      continue;
    }
    if (v === null) { delete out[k]; continue; }
    if (Array.isArray(v)) {
      const cur = Array.isArray(out[k]) ? out[k] : [];
      const key = mergeKeyFor(k, [...v, ...cur]);
      if (key && v.every((x) => isObj(x))) {
        const merged = cur.map((x: V) => structuredClone(x));
        for (const item of v) {
          const kv = item[key];
          const i = merged.findIndex((x: V) => isObj(x) && x[key] === kv);
          if (item.$patch === 'delete') { if (i >= 0) merged.splice(i, 1); continue; }
          if (i >= 0) merged[i] = strategicMerge(merged[i], item, key);
          else merged.push(stripDirectives(item));
        }
        const order = patch[`$setElementOrder/${k}`];
        if (Array.isArray(order)) {
          const rank = (x: V): number => { const j = order.findIndex((o: V) => isObj(o) && o[key] === x[key]); return j < 0 ? order.length : j; };
          merged.sort((a: V, b: V) => rank(a) - rank(b));
        }
        out[k] = merged;
      } else if (MERGE_PRIMITIVE_LISTS.has(k) && field !== 'list') {
        const set = [...cur];
        for (const x of v) if (!set.includes(x)) set.push(x);
        out[k] = set;
      } else out[k] = stripDirectives(v);
      continue;
    }
    if (isObj(v)) { const r = strategicMerge(out[k], v, k); if (r === undefined) delete out[k]; else out[k] = r; continue; }
    out[k] = v;
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k) && !(k in patch)) delete out[k];
  return out;
}

function stripDirectives(v: V): V {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObj(v)) return v;
  const out: Record<string, V> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    if (x === null) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}
