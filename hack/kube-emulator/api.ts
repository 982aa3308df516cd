// API semantics on top of the store: create/update/patch/delete with the generic registry strategies
// (status split, generation, finalizers, preconditions, CRD schemas, server-side apply, admission), the
// views of stored objects, authorization, and CRD registration. Lists are in list.ts, selectors in
// selection.ts, the scale subresource in scale.ts; the Api methods of those delegate.
import { randomUUID } from 'node:crypto';
import YAML from 'yaml';
import { Registry, apiVersionOf, bucketOf, type ResourceType } from './registry.js';
import { Store, objectKey, type Obj, type StoreEvent } from './store.js';
import {
  ApiError, alreadyExists, badRequest, fe, forbidden, invalid, notFound, staleConflict, unsupportedMediaType, conflict,
  type FieldError,
} from './status.js';
import { applyDefaults, prune, validateObject } from './schema.js';
import { jsonPatch, mergePatch, strategicMerge } from './patch.js';
import { recordUpdate, serverSideApply } from './fields.js';
import { admit as admitPolicies, type UserInfo } from './admission.js';
import { pruneBuiltin } from './builtin-fields.js';
import { builtinUpdateRules, isCreateOnUpdate, listKeysFor, review, stableJSON, validateEventCreate, validateMeta } from './builtins.js';
import { authorize as rbacAuthorize, bootstrapPolicy, rulesFor as rbacRulesFor, RBAC_GROUP, type Decision, type RbacPolicy, type RequestAttributes, type RulesReviewStatus } from './rbac.js';
import { crdEstablishedStatus, crdTypes, defaultCrd, validateCrd } from './crd.js';
import { listObjects } from './list.js';
import { getScale, updateScale } from './scale.js';
import { fieldsOf, matches, parseSelectors, watchEventType, type Selectors } from './selection.js';

export { decodeContinue, encodeContinue, type Continue } from './list.js';
export type { Selectors } from './selection.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  fieldValidation?: FieldValidation;
  subresource?: '' | 'status';
  force?: boolean;
  /** The authenticated user; ValidatingAdmissionPolicies are enforced only for requests that have one. */
  user?: UserInfo;
}

export interface WriteResult {
  obj: Obj;
  warnings: string[];
  created?: boolean;
}

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
  gracePeriodSeconds?: number;
  user?: UserInfo;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v) as T;

/** Everything in an object except metadata and status: what a generation bump tracks. */
function specPart(o: Obj, statusSplit: boolean): Obj {
  const { metadata: _m, status, resourceVersion: _r, ...rest } = o;
  return statusSplit ? rest : { ...rest, status };
}

export type AuthorizationMode = 'RBAC' | 'AlwaysAllow';

export class Api {
  readonly registry = new Registry();
  /** Called after every successful write, for controllers (GC, namespaces, CRD cleanup). */
  onChange: ((e: StoreEvent) => void) | null = null;
  /** How requests (and access reviews) are authorized. */
  authorization: AuthorizationMode = 'RBAC';

  /** The stored Roles, ClusterRoles and bindings, as the RBAC authorizer reads them. */
  readonly rbac: RbacPolicy = {
    clusterRoles: () => this.store.list(bucketOf(RBAC_GROUP, 'clusterroles')),
    clusterRole: (name) => this.store.get(bucketOf(RBAC_GROUP, 'clusterroles'), name),
    role: (ns, name) => this.store.get(bucketOf(RBAC_GROUP, 'roles'), objectKey(ns, name)),
    clusterRoleBindings: () => this.store.list(bucketOf(RBAC_GROUP, 'clusterrolebindings')),
    roleBindings: (ns) => this.store.list(bucketOf(RBAC_GROUP, 'rolebindings'), ns),
  };

  authorize(a: RequestAttributes): Decision {
    if (this.authorization === 'AlwaysAllow') return { allowed: true, reason: '' };
    return rbacAuthorize(this.rbac, a);
  }

  rulesFor(user: string, groups: string[], namespace: string): RulesReviewStatus {
    if (this.authorization === 'AlwaysAllow') {
      return { resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }], incomplete: false };
    }
    return rbacRulesFor(this.rbac, user, groups, namespace);
  }

  constructor(readonly store: Store) {
    for (const crd of store.list(bucketOf('apiextensions.k8s.io', 'customresourcedefinitions'))) this.syncCrd(crd);
    if (!store.get(bucketOf('', 'namespaces'), 'default')) {
      for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
        this.create(this.type('', 'v1', 'namespaces'), '', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, {});
      }
    }
    // the default roles and bindings a real cluster creates at start (and re-creates when missing)
    for (const o of bootstrapPolicy()) {
      const plural = o.kind === 'ClusterRole' ? 'clusterroles' : 'clusterrolebindings';
      if (!store.get(bucketOf(RBAC_GROUP, plural), o.metadata.name)) this.create(this.type(RBAC_GROUP, 'v1', plural), '', o, {});
    }
  }

  type(group: string, version: string, plural: string): ResourceType {
    const t = this.registry.lookup(group, version, plural);
    if (!t) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    return t;
  }

  // ---------- views ----------

  view(t: ResourceType, stored: Obj): Obj {
    if (t.fromStorage) return t.fromStorage(stored);
    const av = apiVersionOf(t);
    return stored.apiVersion === av ? stored : { ...stored, apiVersion: av };
  }

  private toStorage(t: ResourceType, obj: Obj): Obj {
    return t.toStorage ? t.toStorage(obj) : obj;
  }

  fieldsOf(t: ResourceType, stored: Obj): Record<string, string> { return fieldsOf(t, stored); }

  parseSelectors(t: ResourceType, q: { labelSelector?: string; fieldSelector?: string }): Selectors { return parseSelectors(t, q); }

  matches(t: ResourceType, sel: Selectors, stored: Obj): boolean { return matches(t, sel, stored); }

  /** What a watcher with selectors sees of a store event (selection.ts). */
  watchEventType(t: ResourceType, sel: Selectors, e: StoreEvent): 'ADDED' | 'MODIFIED' | 'DELETED' | null { return watchEventType(t, sel, e); }

  // ---------- reads ----------

  get(t: ResourceType, ns: string, name: string): Obj {
    const o = this.store.get(t.bucket, objectKey(t.namespaced ? ns : undefined, name));
    if (!o) throw notFound(t, name);
    return this.view(t, o);
  }

  list(t: ResourceType, ns: string, q: ListQuery): Obj { return listObjects(this, t, ns, q); }

  // ---------- writes ----------

  private checkBody(t: ResourceType, ns: string, body: unknown, name?: string): Obj {
    if (!isObj(body)) throw badRequest('the object provided is unrecognized (must be of type Object)');
    const obj = clone(body);
    const av = apiVersionOf(t);
    if (obj.apiVersion !== undefined && obj.apiVersion !== av) {
      throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${av})`);
    }
    if (obj.kind !== undefined && obj.kind !== t.kind) {
      throw badRequest(`${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: the kind in the data (${obj.kind}) does not match the expected kind (${t.kind})`);
    }
    obj.apiVersion = av;
    obj.kind = t.kind;
    if (!isObj(obj.metadata)) obj.metadata = {};
    if (t.namespaced) {
      if (obj.metadata.namespace && ns && obj.metadata.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = ns || obj.metadata.namespace;
    } else delete obj.metadata.namespace;
    if (name !== undefined && obj.metadata.name && obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (name !== undefined && !obj.metadata.name) obj.metadata.name = name;
    return obj;
  }

  private checkNamespace(t: ResourceType, ns: string, name: string): void {
    if (!t.namespaced) return;
    const nsObj = this.store.get(bucketOf('', 'namespaces'), ns);
    if (!nsObj) throw notFound({ group: '', plural: 'namespaces', kind: 'Namespace' }, ns);
    if (nsObj.metadata.deletionTimestamp) {
      throw forbidden(t, name, `unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  /** Pruning, defaulting and validation for custom resources; metadata checks for all. */
  private admit(t: ResourceType, obj: Obj, old: Obj | undefined, fv: FieldValidation, warnings: string[]): void {
    const errs: FieldError[] = [];
    // obj is in the stored shape: views with a conversion (events.k8s.io Events) are checked as stored
    const unknown = t.schema ? prune(obj, t.schema) : pruneBuiltin(t.toStorage ? '' : t.group, t.kind, obj) ?? [];
    if (unknown.length) {
      if (fv === 'Strict') {
        throw badRequest(`${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
      }
      if (fv === 'Warn') for (const u of unknown) warnings.push(`unknown field "${u}"`);
    }
    if (t.schema) {
      applyDefaults(obj, t.schema);
      errs.push(...validateObject(obj, old, t.schema));
    }
    validateMeta(t, obj, errs);
    if (t.kind === 'CustomResourceDefinition') errs.push(...validateCrd(obj));
    if (errs.length) throw invalid(t.kind, t.group, obj.metadata.name, errs);
  }

  /** ValidatingAdmissionPolicy enforcement for user requests. */
  private policies(op: 'CREATE' | 'UPDATE' | 'DELETE', t: ResourceType, sub: string, obj: Obj | null, old: Obj | null, user: UserInfo | undefined, dryRun: boolean, warnings: string[]): void {
    if (!user) return;
    const bindings = this.store.list(bucketOf('admissionregistration.k8s.io', 'validatingadmissionpolicybindings'));
    if (!bindings.length) return;
    const policies = this.store.list(bucketOf('admissionregistration.k8s.io', 'validatingadmissionpolicies'));
    const meta = (obj ?? old)!.metadata;
    const namespaceObject = t.namespaced ? this.store.get(bucketOf('', 'namespaces'), meta.namespace) ?? null : null;
    warnings.push(...admitPolicies(policies, bindings, {
      operation: op, type: t, subresource: sub, name: meta.name, namespace: t.namespaced ? meta.namespace : '',
      object: obj ? this.view(t, obj) : null, oldObject: old ? this.view(t, old) : null, user, dryRun, namespaceObject,
    }));
  }

  private manager(opts: WriteOptions, fallback: string): string {
    return opts.fieldManager || fallback;
  }

  create(t: ResourceType, ns: string, body: unknown, opts: WriteOptions, userAgentManager = 'unknown', managedFields?: Obj[]): WriteResult {
    const obj = this.checkBody(t, ns, body);
    if (t.review) return { obj: review(t, obj, opts.user, this, ns), warnings: [] };
    const warnings: string[] = [];
    if (!obj.metadata.name) {
      if (obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
      else throw invalid(t.kind, t.group, '', [fe.required('metadata.name', 'name or generateName is required')]);
    }
    const name = obj.metadata.name;
    if (obj.metadata.resourceVersion !== undefined && obj.metadata.resourceVersion !== '') {
      // what the storage layer answers (as a 500) when a client sends an object it read before
      throw new ApiError(500, 'InternalError', 'Internal error occurred: resourceVersion should not be set on objects to be created', { causes: [{ message: 'resourceVersion should not be set on objects to be created' }] });
    }
    this.checkNamespace(t, obj.metadata.namespace, name);
    const key = objectKey(t.namespaced ? obj.metadata.namespace : undefined, name);
    if (this.store.get(t.bucket, key)) throw alreadyExists(t, name);
    const m = obj.metadata;
    delete m.resourceVersion;
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.managedFields;
    delete m.selfLink;
    m.uid = randomUUID();
    m.creationTimestamp = now();
    if (t.generation || t.schema) m.generation = 1; else delete m.generation;
    if (t.statusSubresource && t.kind !== 'Namespace') delete obj.status;
    this.prepareCreate(t, obj);
    const sobj = this.toStorage(t, obj);
    this.admit(t, sobj, undefined, opts.fieldValidation ?? 'Warn', warnings);
    if (t.kind === 'Event' && (t.group === '' || t.group === 'events.k8s.io')) {
      const evErrs = validateEventCreate(sobj, t.group === 'events.k8s.io');
      if (evErrs.length) throw invalid(t.kind, t.group, name, evErrs);
    }
    this.policies('CREATE', t, '', sobj, null, opts.user, !!opts.dryRun, warnings);
    if (managedFields) sobj.metadata.managedFields = managedFields;
    else recordUpdate(undefined, sobj, this.manager(opts, userAgentManager), apiVersionOf(t), '', t.statusSubresource, listKeysFor(t), now());
    if (opts.dryRun) return { obj: this.view(t, sobj), warnings, created: true };
    const stored = this.store.put(t.bucket, sobj);
    this.afterWrite(t, stored);
    return { obj: this.view(t, stored), warnings, created: true };
  }

  private prepareCreate(t: ResourceType, obj: Obj): void {
    if (t.kind === 'Namespace' && t.group === '') {
      obj.spec = { finalizers: ['kubernetes'], ...(obj.spec ?? {}) };
      obj.status = { phase: 'Active' };
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name };
    }
    if (t.kind === 'CustomResourceDefinition') {
      defaultCrd(obj);
      obj.metadata.finalizers = [...new Set([...(obj.metadata.finalizers ?? []), 'customresourcecleanup.apiextensions.k8s.io'])];
    }
    if (t.kind === 'Secret' && t.group === '') obj.type ??= 'Opaque';
    if ((t.kind === 'Deployment' || t.kind === 'ReplicaSet' || t.kind === 'StatefulSet') && t.group === 'apps') obj.spec = { replicas: 1, ...(obj.spec ?? {}) };
    if (t.kind === 'Service' && t.group === '') {
      obj.spec = { type: 'ClusterIP', ...(obj.spec ?? {}) };
    }
  }

  /**
   * The common update path (PUT and every patch after it is applied): preconditions, status split,
   * immutable metadata, generation, finalizers, admission, no-op detection, and deletion on last finalizer.
   */
  private updateWith(t: ResourceType, old: Obj, next: Obj, opts: WriteOptions, checkRV: 'required' | 'ifSet', manager: string, warnings: string[], ssa = false): Obj {
    const sub = opts.subresource ?? '';
    const name = old.metadata.name;
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw staleConflict(t, name);
    if ((rv === undefined || rv === '') && checkRV === 'required' && !t.allowUnconditionalUpdate) {
      throw invalid(t.kind, t.group, name, [fe.invalid('metadata.resourceVersion', '0x0', 'must be specified for an update')]);
    }
    if (next.metadata.uid && next.metadata.uid !== old.metadata.uid) {
      throw conflict(t, name, `Precondition failed: UID in precondition: ${next.metadata.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    const o = old;
    const m = next.metadata;
    m.name = o.metadata.name;
    if (t.namespaced) m.namespace = o.metadata.namespace;
    m.uid = o.metadata.uid;
    m.creationTimestamp = o.metadata.creationTimestamp;
    m.resourceVersion = o.metadata.resourceVersion;
    if (o.metadata.deletionTimestamp) {
      m.deletionTimestamp = o.metadata.deletionTimestamp;
      m.deletionGracePeriodSeconds = o.metadata.deletionGracePeriodSeconds;
    } else {
      delete m.deletionTimestamp;
      delete m.deletionGracePeriodSeconds;
    }
    if (o.metadata.generation !== undefined) m.generation = o.metadata.generation; else delete m.generation;
    if (!ssa) {
      // a request that sets managedFields itself (kubectl's client-side-apply upgrade does) replaces them
      const fromClient = next.metadata.managedFields;
      const replaced = Array.isArray(fromClient) && stableJSON(fromClient) !== stableJSON(o.metadata.managedFields ?? []);
      m.managedFields = replaced ? (fromClient.length ? fromClient : undefined) : o.metadata.managedFields;
      if (m.managedFields === undefined) delete m.managedFields;
    }
    if (t.statusSubresource) {
      if (sub === 'status') {
        // only status changes; metadata is reset except what status writers may not touch anyway
        const status = next.status;
        const keepMeta = next.metadata.managedFields;
        for (const k of Object.keys(next)) if (k !== 'status') delete next[k];
        Object.assign(next, clone(o), { status });
        if (status === undefined) delete next.status;
        next.metadata = { ...clone(o.metadata), managedFields: ssa ? keepMeta : o.metadata.managedFields };
      } else {
        if (o.status === undefined) delete next.status; else next.status = clone(o.status);
      }
    }
    if (o.metadata.deletionTimestamp) {
      const added = (next.metadata.finalizers ?? []).filter((f: string) => !(o.metadata.finalizers ?? []).includes(f));
      if (added.length) throw invalid(t.kind, t.group, name, [fe.forbidden('metadata.finalizers', `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f: string) => JSON.stringify(f)).join(', ')}}`)]);
    }
    if (t.kind === 'Namespace' && t.group === '') {
      if (sub !== 'status') next.spec = clone(o.spec);
      next.metadata.labels = { ...(next.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name };
    }
    this.admit(t, next, this.view(t, o), opts.fieldValidation ?? 'Warn', warnings);
    const ruleErrs = builtinUpdateRules(t, o, next);
    if (ruleErrs.length) throw invalid(t.kind, t.group, name, ruleErrs);
    if ((t.generation || t.schema) && stableJSON(specPart(next, t.statusSubresource)) !== stableJSON(specPart(o, t.statusSubresource))) {
      m.generation = (o.metadata.generation ?? 0) + 1;
      next.metadata.generation = m.generation;
    }
    if (!ssa) recordUpdate(o, next, manager, apiVersionOf(t), sub, t.statusSubresource, listKeysFor(t), now());
    this.policies('UPDATE', t, sub, next, o, opts.user, !!opts.dryRun, warnings);
    return next;
  }

  /** Stores the result of an update (no-op updates keep the old resourceVersion and emit nothing). */
  private commit(t: ResourceType, old: Obj, next: Obj, opts: WriteOptions): Obj {
    const stored = this.toStorage(t, next);
    const withoutRV = (x: Obj): string => stableJSON({ ...x, metadata: { ...x.metadata, resourceVersion: undefined, managedFields: (x.metadata.managedFields ?? []).map((e: Obj) => ({ ...e, time: undefined })) } });
    if (withoutRV(stored) === withoutRV(old)) return this.view(t, old);
    if (opts.dryRun) return this.view(t, stored);
    if (stored.metadata.deletionTimestamp && !(stored.metadata.finalizers ?? []).length) {
      const final = this.store.remove(t.bucket, objectKey(stored.metadata.namespace, stored.metadata.name));
      this.afterWrite(t, final!);
      return this.view(t, { ...stored, metadata: { ...stored.metadata, resourceVersion: final!.metadata.resourceVersion } });
    }
    const r = this.store.put(t.bucket, stored);
    this.afterWrite(t, r);
    return this.view(t, r);
  }

  update(t: ResourceType, ns: string, name: string, body: unknown, opts: WriteOptions, userAgentManager = 'unknown'): WriteResult {
    const next = this.checkBody(t, ns, body, name);
    const key = objectKey(t.namespaced ? ns : undefined, name);
    const old = this.store.get(t.bucket, key);
    if (!old) {
      if ((opts.subresource ?? '') === '' && isCreateOnUpdate(t)) return this.create(t, ns, body, opts, userAgentManager);
      throw notFound(t, name);
    }
    const warnings: string[] = [];
    const merged = this.updateWith(t, old, this.toStorage(t, next), opts, 'required', this.manager(opts, userAgentManager), warnings);
    return { obj: this.commit(t, old, merged, opts), warnings };
  }

  patch(t: ResourceType, ns: string, name: string, contentType: string, raw: string, opts: WriteOptions, userAgentManager = 'unknown'): WriteResult {
    const key = objectKey(t.namespaced ? ns : undefined, name);
    const old = this.store.get(t.bucket, key);
    const ct = contentType.split(';')[0]!.trim();
    const warnings: string[] = [];
    if (ct === 'application/apply-patch+yaml' || ct === 'application/apply-patch+json') {
      return this.apply(t, ns, name, raw, old, opts);
    }
    if (!old) throw notFound(t, name);
    let patch: unknown;
    try { patch = JSON.parse(raw); } catch (e) { throw badRequest(`error decoding patch: ${(e as Error).message}`); }
    const current = this.view(t, old);
    let next: Obj;
    switch (ct) {
      case 'application/merge-patch+json': next = mergePatch(current, patch); break;
      case 'application/json-patch+json': next = jsonPatch(current, patch); break;
      case 'application/strategic-merge-patch+json':
        if (!t.strategicMerge) throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
        next = strategicMerge(current, patch);
        break;
      default: throw unsupportedMediaType(contentType);
    }
    if (!isObj(next)) throw badRequest('patch produced a non-object');
    const checked = this.checkBody(t, ns, { ...next, apiVersion: apiVersionOf(t), kind: t.kind }, name);
    // a patch only conflicts if it carried its own resourceVersion
    const patchedRV = isObj(patch) && isObj((patch as Obj).metadata) ? (patch as Obj).metadata.resourceVersion : undefined;
    if (ct !== 'application/json-patch+json' && patchedRV === undefined) checked.metadata.resourceVersion = old.metadata.resourceVersion;
    const merged = this.updateWith(t, old, this.toStorage(t, checked), opts, 'ifSet', this.manager(opts, userAgentManager), warnings);
    return { obj: this.commit(t, old, merged, opts), warnings };
  }

  private apply(t: ResourceType, ns: string, name: string, raw: string, old: Obj | undefined, opts: WriteOptions): WriteResult {
    let applied: unknown;
    try { applied = YAML.parse(raw); } catch (e) { throw badRequest(`error decoding YAML: ${(e as Error).message}`); }
    if (!isObj(applied)) throw badRequest('apply patch must be an object');
    if (!opts.fieldManager) throw badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
    if (!applied.apiVersion || !applied.kind) throw badRequest('invalid object: apiVersion and kind must be set');
    const body = this.checkBody(t, ns, applied, name);
    const warnings: string[] = [];
    const sub = opts.subresource ?? '';
    const ssaOpts = { manager: opts.fieldManager, force: !!opts.force, apiVersion: apiVersionOf(t), subresource: sub, statusSplit: t.statusSubresource, listKeys: listKeysFor(t), now: now() };
    if (!old) {
      if (sub) throw notFound(t, name);
      // creating: run the applied config through create, owned by the applier
      const created = serverSideApply(undefined, body, ssaOpts);
      delete created.metadata.resourceVersion;
      return this.create(t, ns, created, opts, opts.fieldManager, created.metadata.managedFields);
    }
    const live = this.view(t, old);
    if (body.metadata.resourceVersion !== undefined && body.metadata.resourceVersion !== old.metadata.resourceVersion) throw staleConflict(t, name);
    const merged = serverSideApply(live, body, ssaOpts);
    merged.metadata.resourceVersion = old.metadata.resourceVersion;
    const next = this.updateWith(t, old, this.toStorage(t, merged), opts, 'ifSet', opts.fieldManager, warnings, true);
    return { obj: this.commit(t, old, next, opts), warnings };
  }

  delete(t: ResourceType, ns: string, name: string, opts: DeleteOptions): { obj: Obj; deleted: boolean } {
    const key = objectKey(t.namespaced ? ns : undefined, name);
    const old = this.store.get(t.bucket, key);
    if (!old) throw notFound(t, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== old.metadata.uid) throw conflict(t, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) throw conflict(t, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    this.policies('DELETE', t, '', null, old, opts.user, !!opts.dryRun, []);
    const finalizers: string[] = [...(old.metadata.finalizers ?? [])];
    const policy = opts.propagationPolicy;
    const dependents = this.store.dependents.get(old.metadata.uid);
    if (policy === 'Orphan' && dependents?.size && !finalizers.includes('orphan')) finalizers.push('orphan');
    if (policy === 'Foreground' && dependents?.size && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (t.kind === 'Namespace' && t.group === '') finalizers.push('\u0000namespace-lifecycle');
    if (finalizers.length) {
      if (old.metadata.deletionTimestamp && finalizers.filter((f) => !f.startsWith('\u0000')).length === (old.metadata.finalizers ?? []).length) {
        return { obj: this.view(t, old), deleted: false };
      }
      const next = clone(old) as Obj;
      next.metadata.finalizers = finalizers.filter((f) => !f.startsWith('\u0000'));
      if (!next.metadata.finalizers.length) delete next.metadata.finalizers;
      if (!next.metadata.deletionTimestamp) {
        // like the registry's markAsDeleting: the first deletion request bumps a tracked generation
        if ((next.metadata.generation ?? 0) > 0) next.metadata.generation += 1;
        next.metadata.deletionTimestamp = now();
      }
      next.metadata.deletionGracePeriodSeconds ??= 0;
      if (t.kind === 'Namespace' && t.group === '') next.status = { ...(next.status ?? {}), phase: 'Terminating' };
      if (opts.dryRun) return { obj: this.view(t, next), deleted: false };
      const stored = this.store.put(t.bucket, next);
      this.afterWrite(t, stored);
      return { obj: this.view(t, stored), deleted: false };
    }
    if (opts.dryRun) return { obj: this.view(t, old), deleted: true };
    const final = this.store.remove(t.bucket, key)!;
    this.afterWrite(t, final);
    return { obj: this.view(t, final), deleted: true };
  }

  private afterWrite(t: ResourceType, stored: Obj): void {
    if (t.kind === 'CustomResourceDefinition' && t.group === 'apiextensions.k8s.io') {
      const exists = this.store.get(t.bucket, stored.metadata.name);
      if (exists) this.syncCrd(exists); else this.registry.removeCrd(stored.metadata.name);
    }
  }

  // ---------- scale subresource ----------

  /** autoscaling/v1 Scale of an object whose type has a scale subresource. */
  getScale(t: ResourceType, ns: string, name: string): Obj { return getScale(this, t, ns, name); }

  /** Applies a new Scale (from PUT or a patch of the current one) to spec replicas. */
  updateScale(t: ResourceType, ns: string, name: string, change: (current: Obj) => Obj, opts: WriteOptions): Obj {
    return updateScale(this, t, ns, name, change, opts);
  }

  // ---------- CRDs ----------

  syncCrd(crd: Obj): void {
    this.registry.setCrd(crd.metadata.name, crdTypes(crd));
    const established = (crd.status?.conditions ?? []).some((c: Obj) => c.type === 'Established' && c.status === 'True');
    if (established || crd.metadata.deletionTimestamp) return;
    // the apiextensions controllers report names accepted and established right after the write
    const status = crdEstablishedStatus(crd, now());
    const bucket = bucketOf('apiextensions.k8s.io', 'customresourcedefinitions');
    queueMicrotask(() => {
      const cur = this.store.get(bucket, crd.metadata.name);
      if (cur && cur.metadata.uid === crd.metadata.uid && !cur.status?.conditions?.length) this.store.put(bucket, { ...cur, status });
    });
  }


  /** Replaces the stored object unconditionally (controllers); returns the stored result. */
  controllerWrite(bucket: string, obj: Obj): Obj {
    const t = this.registry.byBucket(bucket);
    if (obj.metadata.deletionTimestamp && !(obj.metadata.finalizers ?? []).length) {
      const final = this.store.remove(bucket, objectKey(obj.metadata.namespace, obj.metadata.name))!;
      if (t) this.afterWrite(t, final);
      return final;
    }
    const r = this.store.put(bucket, obj);
    if (t) this.afterWrite(t, r);
    return r;
  }
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

