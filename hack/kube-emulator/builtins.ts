// Rules of built-in kinds (and the generic ones every object follows): metadata validation, update
// rules, access reviews, list keys for field ownership, and which kinds PUT may create.
import type { ResourceType } from './registry.js';
import type { JSONSchemaProps } from './schema.js';
import type { ListKeys } from './fields.js';
import type { UserInfo } from './admission.js';
import { fe, type FieldError } from './status.js';
import { reviewAttributes, type Decision, type RequestAttributes, type RulesReviewStatus } from './rbac.js';

type Obj = Record<string, any>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function stableJSON(v: unknown): string {
  return JSON.stringify(canon(v));
}
function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (isObj(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function validateMeta(t: ResourceType, obj: Obj, errs: FieldError[]): void {
  const name: string = obj.metadata.name;
  if (t.kind === 'Namespace') {
    if (!DNS1123_LABEL.test(name) || name.length > 63) errs.push(fe.invalid('metadata.name', name, `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`));
  } else {
    if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
      // RBAC and events allow path-segment names; everything else wants a DNS subdomain.
      if (!(t.group === 'rbac.authorization.k8s.io' || t.kind === 'Event') || /[/%]/.test(name) || name === '.' || name === '..' || !name) {
        errs.push(fe.invalid('metadata.name', name, `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`));
      }
    }
  }
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (!QUALIFIED_NAME.test(k)) errs.push(fe.invalid('metadata.labels', k, `name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`));
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) errs.push(fe.invalid('metadata.labels', v, `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`));
  }
  for (const [k, v] of Object.entries(obj.metadata.annotations ?? {})) {
    if (typeof v !== 'string') errs.push(fe.invalid(`metadata.annotations`, k, 'annotation values must be strings'));
  }
}

function schemaAt(s: JSONSchemaProps | undefined, names: string[]): JSONSchemaProps | undefined {
  let cur = s;
  for (const n of names) {
    if (!cur) return undefined;
    if (n === '[]') cur = cur.items;
    else cur = cur.properties?.[n] ?? (isObj(cur.additionalProperties) ? (cur.additionalProperties as JSONSchemaProps) : undefined);
  }
  return cur;
}

const BUILTIN_LIST_KEYS: Record<string, string[]> = {
  containers: ['name'], initContainers: ['name'], ephemeralContainers: ['name'], env: ['name'], volumes: ['name'],
  volumeMounts: ['mountPath'], conditions: ['type'], ownerReferences: ['uid'], imagePullSecrets: ['name'], addresses: ['type'], finalizers: [],
};

export function listKeysFor(t: ResourceType): ListKeys {
  return (names, items) => {
    if (t.schema) {
      if (names[0] === 'metadata') {
        const last = names[names.length - 1]!;
        return BUILTIN_LIST_KEYS[last] ?? null;
      }
      const s = schemaAt(t.schema, names);
      if (s?.['x-kubernetes-list-type'] === 'map') return s['x-kubernetes-list-map-keys'] ?? null;
      if (s?.['x-kubernetes-list-type'] === 'set') return [];
      return null;
    }
    const last = names[names.length - 1] ?? '';
    if (last === 'ports') return items.some((x) => isObj(x) && 'containerPort' in x) ? ['containerPort', 'protocol'] : ['port', 'protocol'];
    return BUILTIN_LIST_KEYS[last] ?? null;
  };
}

/** Update rules of built-in kinds that clients of this project can run into. */
export function builtinUpdateRules(t: ResourceType, old: Obj, next: Obj): FieldError[] {
  const errs: FieldError[] = [];
  if (t.group === '' && t.kind === 'Node') {
    const was = old.spec?.providerID ?? '';
    if (was !== '' && (next.spec?.providerID ?? '') !== was) errs.push(fe.forbidden('spec.providerID', 'node updates may not change providerID except from "" to valid'));
  }
  if (t.group === '' && (t.kind === 'ConfigMap' || t.kind === 'Secret') && old.immutable === true) {
    const msg = 'field is immutable when `immutable` is set';
    if (next.immutable !== true) errs.push(fe.forbidden('immutable', msg));
    if (stableJSON(next.data ?? {}) !== stableJSON(old.data ?? {})) errs.push(fe.forbidden('data', msg));
    if (t.kind === 'ConfigMap' && stableJSON(next.binaryData ?? {}) !== stableJSON(old.binaryData ?? {})) errs.push(fe.forbidden('binaryData', msg));
  }
  if (t.kind === 'Event' && t.group === 'events.k8s.io') errs.push(...validateEventUpdate(old, next));
  if (t.kind === 'CustomResourceDefinition' && t.group === 'apiextensions.k8s.io' && old.spec?.scope && next.spec?.scope !== old.spec.scope) {
    errs.push(fe.invalid('spec.scope', next.spec?.scope ?? '', 'field is immutable'));
  }
  return errs;
}

/** Items of built-in lists come without kind/apiVersion, as the API server encodes typed lists. */
export function listItem(o: Obj): Obj {
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest;
}

/** What access reviews ask: the emulator's authorizer (RBAC, or AlwaysAllow). */
export interface ReviewAuthorizer {
  authorize(a: RequestAttributes): Decision;
  rulesFor(user: string, groups: string[], namespace: string): RulesReviewStatus;
}

/**
 * Access reviews and whoami. SelfSubjectAccessReview and SelfSubjectRulesReview answer for the requester,
 * SubjectAccessReview and LocalSubjectAccessReview for the user the spec names; `namespace` is the URL's
 * (LocalSubjectAccessReview).
 */
export function review(t: ResourceType, obj: Obj, user: UserInfo | undefined, authz: ReviewAuthorizer, namespace = ''): Obj {
  const u = user ?? { username: 'system:anonymous', groups: ['system:unauthenticated'] };
  const spec: Obj = isObj(obj.spec) ? obj.spec : {};
  if (t.kind === 'SelfSubjectReview') return { ...obj, status: { userInfo: { username: u.username, uid: u.uid, groups: u.groups, extra: u.extra } } };
  if (t.kind === 'SelfSubjectRulesReview') {
    return { ...obj, status: authz.rulesFor(u.username, u.groups ?? [], String(spec.namespace ?? '')) };
  }
  let who = { username: u.username, groups: u.groups ?? [] };
  if (t.kind === 'SubjectAccessReview' || t.kind === 'LocalSubjectAccessReview') who = { username: String(spec.user ?? ''), groups: Array.isArray(spec.groups) ? spec.groups.map(String) : [] };
  if (t.kind === 'LocalSubjectAccessReview' && spec.resourceAttributes && !spec.resourceAttributes.namespace) spec.resourceAttributes.namespace = namespace;
  const d = authz.authorize(reviewAttributes(spec, who.username, who.groups));
  const status: Obj = { allowed: d.allowed };
  if (d.reason) status.reason = d.reason;
  return { ...obj, spec, status };
}

/** Types whose registry allows PUT to create (AllowCreateOnUpdate in the API server). */
export function isCreateOnUpdate(t: ResourceType): boolean {
  if (t.schema) return false;
  return ['Lease', 'Event', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding', 'Endpoints'].includes(t.kind);
}

const QUALIFIED = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * Event creation rules (ValidateEventCreate): `ev` is in the stored core/v1 shape; `viaEventsApi` for
 * events.k8s.io/v1 requests, which get the strict rules on top of the legacy ones.
 */
export function validateEventCreate(ev: Obj, viaEventsApi: boolean): FieldError[] {
  const errs: FieldError[] = [];
  const ns: string = ev.metadata.namespace ?? '';
  const io = ev.involvedObject ?? {};
  const ioNs: string = io.namespace ?? '';
  const hasEventTime = !!ev.eventTime;
  const reportingField = viaEventsApi ? 'reportingController' : 'reportingComponent';
  if (!hasEventTime) {
    if (ioNs === '' ? ns !== '' && ns !== 'default' : ns !== ioNs) errs.push(fe.invalid('involvedObject.namespace', ioNs, 'does not match event.namespace'));
  } else {
    if (ioNs === '' && ns !== 'default' && ns !== 'kube-system') errs.push(fe.invalid('involvedObject.namespace', ioNs, 'does not match event.namespace'));
    const rc: string = ev.reportingComponent ?? '';
    if (!rc) errs.push(fe.required(reportingField));
    else if (!QUALIFIED.test(rc) || rc.length > 316) errs.push(fe.invalid(reportingField, rc, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
    const limited: [string, string, number][] = [['reportingInstance', ev.reportingInstance ?? '', 128], ['action', ev.action ?? '', 128], ['reason', ev.reason ?? '', 128]];
    for (const [f, v, max] of limited) {
      if (!v) errs.push(fe.required(f));
      else if (v.length > max) errs.push(fe.invalid(f, '', `can have at most ${max} characters`));
    }
    if ((ev.message ?? '').length > 1024) errs.push(fe.invalid('message', '', 'can have at most 1024 characters'));
  }
  if (viaEventsApi) {
    errs.push(...validateEventSeries(ev));
    if (!hasEventTime) errs.push(fe.required('eventTime'));
    if (ev.type !== 'Normal' && ev.type !== 'Warning') errs.push(fe.invalid('type', '', `has invalid value: ${ev.type ?? ''}`));
    // field paths are those of the internal (core) Event the API server validates
    if (ev.firstTimestamp) errs.push(fe.invalid('firstTimestamp', '', 'needs to be unset'));
    if (ev.lastTimestamp) errs.push(fe.invalid('lastTimestamp', '', 'needs to be unset'));
    if (ev.count) errs.push(fe.invalid('count', '', 'needs to be unset'));
    if (ev.source?.component || ev.source?.host) errs.push(fe.invalid('source', '', 'needs to be unset'));
  }
  return errs;
}

/** validateV1EventSeries: a series counts at least 2 (the first occurrence is the event itself) and says when it was last seen. */
function validateEventSeries(ev: Obj): FieldError[] {
  if (!ev.series) return [];
  const errs: FieldError[] = [];
  if (!(Number(ev.series.count ?? 0) >= 2)) errs.push(fe.invalid('series.count', '', 'should be at least 2'));
  if (!ev.series.lastObservedTime) errs.push(fe.required('series.lastObservedTime'));
  return errs;
}

/** Fields of the internal Event (core names) that ValidateEventUpdate keeps as they were. */
const IMMUTABLE_EVENT_FIELDS = ['involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count', 'type', 'eventTime', 'action', 'related', 'reportingComponent', 'reportingInstance'];

/**
 * ValidateEventUpdate for events.k8s.io/v1 requests (`old` and `next` in the stored core/v1 shape): only the
 * series may change, and a changed series is validated again. core/v1 updates keep the legacy rules.
 */
export function validateEventUpdate(old: Obj, next: Obj): FieldError[] {
  const errs: FieldError[] = [];
  if (stableJSON(old.series ?? null) !== stableJSON(next.series ?? null)) errs.push(...validateEventSeries(next));
  for (const f of IMMUTABLE_EVENT_FIELDS) {
    // eventTime compares at microsecond precision, as the API server truncates it
    const [a, b] = f === 'eventTime' ? [microseconds(old.eventTime), microseconds(next.eventTime)] : [old[f], next[f]];
    if (stableJSON(a ?? null) !== stableJSON(b ?? null)) {
      errs.push(fe.invalid(f === 'reportingComponent' ? 'reportingController' : f, next[f] ?? '', 'field is immutable'));
    }
  }
  return errs;
}

function microseconds(t: unknown): string {
  if (typeof t !== 'string' || !t) return '';
  const m = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return t;
  return `${new Date(`${m[1]}${m[3]}`).toISOString().slice(0, 19)}.${(m[2] ?? '').padEnd(6, '0').slice(0, 6)}`;
}
