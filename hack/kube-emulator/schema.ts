// Structural schemas of custom resources: pruning unknown fields, applying defaults, and validating
// (OpenAPI value validations + x-kubernetes-validations CEL rules) with Kubernetes' field error messages.
import { CelError, compile, evaluate, usesOldSelf } from './cel.js';
import { fe, type FieldError } from './status.js';

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

export interface JSONSchemaProps {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps | boolean;
  items?: JSONSchemaProps;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  allOf?: JSONSchemaProps[];
  anyOf?: JSONSchemaProps[];
  oneOf?: JSONSchemaProps[];
  not?: JSONSchemaProps;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  'x-kubernetes-validations'?: ValidationRule[];
}

type V = any;
const isObj = (v: unknown): v is Record<string, V> => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

const child = (path: string, k: string): string => (path ? `${path}.${k}` : k);
const idx = (path: string, i: number | string): string => `${path}[${i}]`;

const OBJECT_META_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

/**
 * Removes fields the schema does not declare (in place) and returns their paths, e.g. "spec.foo".
 * apiVersion/kind/metadata at the root (and in embedded resources) are always kept.
 */
export function prune(obj: V, schema: JSONSchemaProps | undefined, root = true, path = ''): string[] {
  const unknown: string[] = [];
  walkPrune(obj, schema, root, path, unknown);
  return unknown;
}

function walkPrune(v: V, s: JSONSchemaProps | undefined, isRoot: boolean, path: string, out: string[]): void {
  if (!s) return;
  if (Array.isArray(v)) {
    if (s.items) v.forEach((x, i) => walkPrune(x, s.items, false, idx(path, i), out));
    return;
  }
  if (!isObj(v)) return;
  const embedded = isRoot || s['x-kubernetes-embedded-resource'];
  for (const k of Object.keys(v)) {
    if (embedded && (k === 'apiVersion' || k === 'kind')) continue;
    if (embedded && k === 'metadata') {
      if (isObj(v.metadata)) {
        for (const mk of Object.keys(v.metadata)) {
          if (!OBJECT_META_FIELDS.has(mk)) {
            out.push(child(child(path, 'metadata'), mk));
            delete v.metadata[mk];
          }
        }
      }
      continue;
    }
    const p = s.properties?.[k];
    if (p) { walkPrune(v[k], p, false, child(path, k), out); continue; }
    if (isObj(s.additionalProperties)) { walkPrune(v[k], s.additionalProperties, false, child(path, k), out); continue; }
    if (s.additionalProperties === true || s['x-kubernetes-preserve-unknown-fields']) continue;
    out.push(child(path, k));
    delete v[k];
  }
}

/** Applies `default`s from the schema (in place) where fields are absent, as the API server does. */
export function applyDefaults(v: V, s: JSONSchemaProps | undefined): void {
  if (!s) return;
  if (Array.isArray(v)) {
    if (s.items) for (const x of v) applyDefaults(x, s.items);
    return;
  }
  if (!isObj(v)) return;
  for (const [k, p] of Object.entries(s.properties ?? {})) {
    if (!has(v, k) && p.default !== undefined) v[k] = structuredClone(p.default);
    // A null with a default and no nullable becomes the default.
    else if (v[k] === null && p.default !== undefined && !p.nullable) v[k] = structuredClone(p.default);
    if (has(v, k)) applyDefaults(v[k], p);
  }
  if (isObj(s.additionalProperties)) {
    for (const k of Object.keys(v)) if (!s.properties?.[k]) applyDefaults(v[k], s.additionalProperties);
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

function typeMatches(v: unknown, t: string): boolean {
  const jt = jsonType(v);
  if (t === 'number') return jt === 'number' || jt === 'integer';
  return jt === t;
}

/** Structural equality of JSON values (object key order ignored). */
export function deepEq(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEq(a[i], b[i])) return false;
    return true;
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    for (const k of ka) if (!has(b, k) || !deepEq(a[k], b[k])) return false;
    return true;
  }
  return false;
}
function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (isObj(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const FORMATS: Record<string, (s: string) => boolean> = {
  'date-time': (s) => DATE_TIME.test(s),
  date: (s) => /^\d{4}-\d{2}-\d{2}$/.test(s),
  ipv4: (s) => /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(s),
  uuid: (s) => /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/.test(s),
  hostname: (s) => /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i.test(s) && s.length <= 255,
};

const NO_OLD = Symbol('noOld');
type Old = V | typeof NO_OLD;

/** Correlates the items of a list-type=map list with the old list's items by their keys. */
function itemCorrelator(old: Old, s: JSONSchemaProps): (x: V) => Old {
  if (s['x-kubernetes-list-type'] !== 'map' || !Array.isArray(old)) return () => NO_OLD;
  const keys = s['x-kubernetes-list-map-keys'] ?? [];
  const keyOf = (x: V): string => JSON.stringify(keys.map((k) => x[k]));
  const byKey = new Map<string, V>();
  for (const y of old) if (isObj(y)) byKey.set(keyOf(y), y);
  return (x) => (isObj(x) && byKey.has(keyOf(x)) ? byKey.get(keyOf(x)) : NO_OLD);
}

/**
 * Value validation of `v` against `s` (no CEL). With an old value (updates), unchanged subtrees are
 * not re-validated: CRD validation ratcheting, on by default since Kubernetes 1.30.
 */
export function validateValue(v: V, s: JSONSchemaProps, path: string, errs: FieldError[], old: Old = NO_OLD): void {
  if (old !== NO_OLD && deepEq(old, v)) return;
  if (v === null) {
    if (!s.nullable && s.type && !s['x-kubernetes-int-or-string'] && !s['x-kubernetes-preserve-unknown-fields']) {
      errs.push(fe.typeInvalid(path, 'null', `${path} in body must be of type ${s.type}: "null"`));
    }
    return;
  }
  if (s['x-kubernetes-int-or-string']) {
    if (!(typeof v === 'string' || Number.isInteger(v))) {
      errs.push(fe.typeInvalid(path, jsonType(v), `${path} in body must be of type integer,string: "${jsonType(v)}"`));
      return;
    }
  } else if (s.type && !typeMatches(v, s.type)) {
    errs.push(fe.typeInvalid(path, jsonType(v), `${path} in body must be of type ${s.type}: "${jsonType(v)}"`));
    return;
  }
  if (s.enum && !s.enum.some((e) => deepEq(e, v))) errs.push(fe.notSupported(path, v, s.enum));
  if (typeof v === 'number') {
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) {
      errs.push(fe.invalid(path, v, `${path} in body should be less than ${s.exclusiveMaximum ? '' : 'or equal to '}${s.maximum}`));
    }
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) {
      errs.push(fe.invalid(path, v, `${path} in body should be greater than ${s.exclusiveMinimum ? '' : 'or equal to '}${s.minimum}`));
    }
    if (s.multipleOf !== undefined && v % s.multipleOf !== 0) errs.push(fe.invalid(path, v, `${path} in body should be a multiple of ${s.multipleOf}`));
  }
  if (typeof v === 'string') {
    const len = [...v].length;
    if (s.maxLength !== undefined && len > s.maxLength) errs.push(fe.tooLong(path, s.maxLength));
    if (s.minLength !== undefined && len < s.minLength) errs.push(fe.invalid(path, v, `${path} in body should be at least ${s.minLength} chars long`));
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) errs.push(fe.invalid(path, v, `${path} in body should match '${s.pattern}'`));
    if (s.format && FORMATS[s.format] && !FORMATS[s.format]!(v)) errs.push(fe.invalid(path, v, `${path} in body must be of type ${s.format}: ${JSON.stringify(v)}`));
  }
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) errs.push(fe.tooMany(path, v.length, s.maxItems));
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(fe.invalid(path, v.length, `${path} in body should have at least ${s.minItems} items`));
    if (s.uniqueItems && new Set(v.map((x) => JSON.stringify(canon(x)))).size !== v.length) errs.push(fe.invalid(path, v, `${path} in body shouldn't contain duplicates`));
    const lt = s['x-kubernetes-list-type'];
    if (lt === 'set') {
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const key = JSON.stringify(canon(x));
        if (seen.has(key)) errs.push(fe.duplicate(idx(path, i), x));
        seen.add(key);
      });
    } else if (lt === 'map') {
      const keys = s['x-kubernetes-list-map-keys'] ?? [];
      const seen = new Set<string>();
      v.forEach((x, i) => {
        if (!isObj(x)) return;
        const kv = Object.fromEntries(keys.map((k) => [k, x[k]]));
        const key = JSON.stringify(kv);
        if (seen.has(key)) errs.push(fe.duplicate(idx(path, i), kv));
        seen.add(key);
      });
    }
    if (s.items) {
      const correlate = itemCorrelator(old, s);
      v.forEach((x, i) => validateValue(x, s.items!, idx(path, i), errs, correlate(x)));
    }
  }
  if (isObj(v)) {
    const n = Object.keys(v).length;
    if (s.maxProperties !== undefined && n > s.maxProperties) errs.push(fe.tooMany(path, n, s.maxProperties));
    if (s.minProperties !== undefined && n < s.minProperties) errs.push(fe.invalid(path, n, `${path} in body should have at least ${s.minProperties} properties`));
    for (const r of s.required ?? []) if (!has(v, r)) errs.push(fe.required(child(path, r)));
    for (const [k, x] of Object.entries(v)) {
      const p = s.properties?.[k];
      const o: Old = old !== NO_OLD && isObj(old) && has(old, k) ? old[k] : NO_OLD;
      if (p) validateValue(x, p, child(path, k), errs, o);
      else if (isObj(s.additionalProperties)) validateValue(x, s.additionalProperties, child(path, k), errs, o);
    }
  }
  for (const sub of s.allOf ?? []) validateValue(v, { ...sub, type: sub.type }, path, errs);
  if (s.anyOf && !s.anyOf.some((sub) => { const e: FieldError[] = []; validateValue(v, sub, path, e); return e.length === 0; })) {
    errs.push(fe.invalid(path, v, `${path} in body must validate at least one schema (anyOf)`));
  }
  if (s.oneOf && s.oneOf.filter((sub) => { const e: FieldError[] = []; validateValue(v, sub, path, e); return e.length === 0; }).length !== 1) {
    errs.push(fe.invalid(path, v, `${path} in body must validate one and only one schema (oneOf)`));
  }
  if (s.not) {
    const e: FieldError[] = [];
    validateValue(v, s.not, path, e);
    if (e.length === 0) errs.push(fe.invalid(path, v, `${path} in body should not validate the given schema`));
  }
}

/** Evaluates x-kubernetes-validations rules over `v` (and the correlated old value, for transition rules). */
export function validateCel(v: V, old: V | typeof NO_OLD, s: JSONSchemaProps, path: string, errs: FieldError[]): void {
  if (v === null || v === undefined) return;
  const typeLabel = s['x-kubernetes-int-or-string'] ? 'integer-or-string' : (s.type ?? 'object');
  const unchanged = old !== NO_OLD && deepEq(old, v);
  for (const r of s['x-kubernetes-validations'] ?? []) {
    const transition = usesOldSelf(r.rule);
    if (transition && old === NO_OLD && !r.optionalOldSelf) continue;
    if (unchanged) continue; // ratcheting: an unchanged value keeps passing
    const rpath = r.fieldPath ? `${path}${r.fieldPath}` : path;
    try {
      const env: Record<string, unknown> = { self: v };
      if (transition) env.oldSelf = old === NO_OLD ? null : old;
      const ok = evaluate(r.rule, env);
      if (ok !== true) {
        let msg = r.message ?? `failed rule: ${r.rule.trim()}`;
        if (r.messageExpression) {
          try { const m = evaluate(r.messageExpression, env); if (typeof m === 'string' && m) msg = m; } catch { /* keep message */ }
        }
        switch (r.reason) {
          case 'FieldValueForbidden': errs.push(fe.forbidden(rpath, msg)); break;
          case 'FieldValueRequired': errs.push(fe.required(rpath, msg)); break;
          case 'FieldValueDuplicate': errs.push({ ...fe.duplicate(rpath, typeLabel), detail: msg }); break;
          default: errs.push(fe.invalid(rpath, typeLabel, msg));
        }
      }
    } catch (e) {
      const m = e instanceof CelError ? e.message : String(e);
      errs.push(fe.invalid(rpath, typeLabel, `${m} evaluating rule: ${r.rule.trim()}`));
    }
  }
  const oldOf = (k: string): V | typeof NO_OLD => (old !== NO_OLD && isObj(old) && has(old, k) ? old[k] : NO_OLD);
  if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (path === '' && (k === 'metadata' || k === 'apiVersion' || k === 'kind')) continue;
      const p = s.properties?.[k] ?? (isObj(s.additionalProperties) ? s.additionalProperties : undefined);
      if (p) validateCel(x, oldOf(k), p, child(path, k), errs);
    }
  } else if (Array.isArray(v) && s.items) {
    const correlate = itemCorrelator(old, s);
    v.forEach((x, i) => validateCel(x, correlate(x), s.items!, idx(path, i), errs));
  }
}

/** Checks that every CEL rule in the schema compiles; returns field errors for the CRD otherwise. */
export function checkRulesCompile(s: JSONSchemaProps | undefined, path: string, errs: FieldError[]): void {
  if (!s) return;
  (s['x-kubernetes-validations'] ?? []).forEach((r, i) => {
    try { compile(r.rule); } catch (e) {
      errs.push(fe.invalid(`${path}.x-kubernetes-validations[${i}].rule`, r.rule, `compilation failed: ERROR: <input>: ${(e as Error).message}`));
    }
  });
  for (const [k, p] of Object.entries(s.properties ?? {})) checkRulesCompile(p, `${path}.properties[${k}]`, errs);
  if (s.items) checkRulesCompile(s.items, `${path}.items`, errs);
  if (isObj(s.additionalProperties)) checkRulesCompile(s.additionalProperties as JSONSchemaProps, `${path}.additionalProperties`, errs);
}

/** Full validation of a custom resource: schema values then CEL rules (with the old object on update). */
export function validateObject(obj: V, old: V | undefined, s: JSONSchemaProps): FieldError[] {
  const errs: FieldError[] = [];
  const { metadata: _m, apiVersion: _a, kind: _k, ...body } = obj;
  const rootSchema: JSONSchemaProps = { ...s, properties: { ...(s.properties ?? {}) } };
  delete rootSchema.properties!.metadata;
  delete rootSchema.properties!.apiVersion;
  delete rootSchema.properties!.kind;
  rootSchema.required = (s.required ?? []).filter((r) => r !== 'metadata' && r !== 'apiVersion' && r !== 'kind');
  const oldBody: Old = old === undefined ? NO_OLD : (({ metadata: _om, apiVersion: _oa, kind: _ok, ...rest }) => rest)(old);
  validateValue(body, rootSchema, '', errs, oldBody);
  // paths at the root print without a leading dot
  for (const e of errs) e.field = e.field.replace(/^\./, '');
  const celErrs: FieldError[] = [];
  validateCel(obj, old === undefined ? NO_OLD : old, s, '', celErrs);
  for (const e of celErrs) e.field = e.field.replace(/^\./, '') || '<nil>';
  return [...errs, ...celErrs];
}
