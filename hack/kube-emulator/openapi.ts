// OpenAPI v3 documents, enough for kubectl: per group-version paths whose operations carry
// x-kubernetes-group-version-kind and the query parameters (fieldValidation, dryRun, fieldManager)
// kubectl checks before relying on server-side validation, plus schemas (a CRD's own schema).
import { createHash } from 'node:crypto';
import { apiVersionOf, type Registry, type ResourceType } from './registry.js';

type Obj = Record<string, any>;

const param = (name: string, schema: Obj = { type: 'string' }): Obj => ({ name, in: 'query', schema, uniqueItems: true });

function schemaName(t: ResourceType): string {
  const g = t.group ? t.group.split('.').reverse().join('.') : 'io.k8s.api.core';
  return `${g}.${t.version}.${t.kind}`;
}

export function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

export function openApiV3Doc(registry: Registry, group: string, version: string): Obj {
  const types = registry.inGroupVersion(group, version);
  const paths: Obj = {};
  const schemas: Obj = {};
  const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
  for (const t of types) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const ref = { $ref: `#/components/schemas/${schemaName(t)}` };
    const body = { content: { 'application/json': { schema: ref } } };
    const resp = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
    const op = (action: string, extra: Obj = {}): Obj => ({ 'x-kubernetes-action': action, 'x-kubernetes-group-version-kind': gvk, responses: resp, ...extra });
    const writeParams = [param('dryRun'), param('fieldManager'), param('fieldValidation')];
    const base = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.plural}` : `${prefix}/${t.plural}`;
    paths[base] = {
      get: op('list'),
      post: op('post', { requestBody: body }),
      delete: op('deletecollection'),
      parameters: [param('pretty'), ...(t.namespaced ? [{ name: 'namespace', in: 'path', required: true, schema: { type: 'string' } }] : [])],
    };
    paths[`${base}/{name}`] = {
      get: op('get'),
      put: op('put', { requestBody: body }),
      patch: op('patch', { requestBody: { content: { 'application/merge-patch+json': { schema: { type: 'object' } }, 'application/apply-patch+yaml': { schema: { type: 'object' } } } }, parameters: [...writeParams, param('force', { type: 'boolean' })] }),
      delete: op('delete'),
      parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }, param('pretty'), ...writeParams],
    };
    if (t.statusSubresource) {
      paths[`${base}/{name}/status`] = {
        get: op('get'), put: op('put', { requestBody: body }), patch: op('patch', { parameters: writeParams }),
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }, ...writeParams],
      };
    }
    const s: Obj = t.schema ? structuredClone(t.schema) : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
    s.properties = { ...(s.properties ?? {}), apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' } };
    s['x-kubernetes-group-version-kind'] = [gvk];
    schemas[schemaName(t)] = s;
  }
  schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'] = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas } };
}

export function openApiV3Index(registry: Registry, docHash: (g: string, v: string) => string): Obj {
  const paths: Obj = {};
  for (const [g, vs] of registry.groups()) {
    for (const v of vs) {
      const p = gvPath(g, v);
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${docHash(g, v)}` };
    }
  }
  return { paths };
}

export function hashOf(doc: Obj): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128);
}

/** Swagger 2.0 document (kubectl explain / older clients): definitions with GVK extensions. */
export function openApiV2(registry: Registry): Obj {
  const definitions: Obj = {};
  for (const t of registry.all()) {
    const s: Obj = t.schema ? structuredClone(t.schema) : { type: 'object' };
    s['x-kubernetes-group-version-kind'] = [{ group: t.group, version: t.version, kind: t.kind }];
    definitions[schemaName(t)] = stripV3Only(s);
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths: {}, definitions };
}

function stripV3Only(s: Obj): Obj {
  if (Array.isArray(s)) return s.map(stripV3Only);
  if (!s || typeof s !== 'object') return s;
  const out: Obj = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'nullable' || k === 'anyOf' || k === 'oneOf' || k === 'not') continue;
    out[k] = typeof v === 'object' ? stripV3Only(v) : v;
  }
  return out;
}

export { apiVersionOf };
