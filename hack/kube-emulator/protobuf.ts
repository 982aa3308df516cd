// Decoding of the Kubernetes protobuf envelope ("k8s\0" + runtime.Unknown) for the few core kinds
// that kubectl's typed generators send as protobuf (`kubectl create namespace|configmap|secret|
// serviceaccount|token`, `kubectl auth can-i|whoami`, `kubectl create role|clusterrole|rolebinding|clusterrolebinding`). Everything else is answered with 415 so clients use JSON.
import { ApiError } from './status.js';

type Obj = Record<string, any>;
type Kind = 'string' | 'bytes' | 'int' | 'bool' | 'map' | 'mapBytes' | 'time' | { msg: string } | { rep: 'string' } | { rep: { msg: string } };
type MessageSpec = Record<number, [string, Kind]>;

const MESSAGES: Record<string, MessageSpec> = {
  Unknown: { 1: ['typeMeta', { msg: 'TypeMeta' }], 2: ['raw', 'bytes'], 3: ['contentEncoding', 'string'], 4: ['contentType', 'string'] },
  TypeMeta: { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] },
  ObjectMeta: {
    1: ['name', 'string'], 2: ['generateName', 'string'], 3: ['namespace', 'string'], 5: ['uid', 'string'], 6: ['resourceVersion', 'string'],
    7: ['generation', 'int'], 11: ['labels', 'map'], 12: ['annotations', 'map'], 13: ['ownerReferences', { rep: { msg: 'OwnerReference' } }],
    14: ['finalizers', { rep: 'string' }],
  },
  OwnerReference: { 1: ['kind', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'], 5: ['apiVersion', 'string'], 6: ['controller', 'bool'], 7: ['blockOwnerDeletion', 'bool'] },
  ObjectReference: { 1: ['kind', 'string'], 2: ['namespace', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'], 5: ['apiVersion', 'string'], 6: ['resourceVersion', 'string'], 7: ['fieldPath', 'string'] },
  LocalObjectReference: { 1: ['name', 'string'] },
  Namespace: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'NamespaceSpec' }] },
  TokenRequest: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'TokenRequestSpec' }] },
  TokenRequestSpec: { 1: ['audiences', { rep: 'string' }], 3: ['boundObjectRef', { msg: 'BoundObjectReference' }], 4: ['expirationSeconds', 'int'] },
  BoundObjectReference: { 1: ['kind', 'string'], 2: ['apiVersion', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'] },
  NamespaceSpec: { 1: ['finalizers', { rep: 'string' }] },
  ConfigMap: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['data', 'map'], 3: ['binaryData', 'mapBytes'], 4: ['immutable', 'bool'] },
  Secret: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['data', 'mapBytes'], 3: ['type', 'string'], 4: ['stringData', 'map'], 5: ['immutable', 'bool'] },
  // authorization.k8s.io/v1 access reviews (kubectl auth can-i [--list])
  SelfSubjectAccessReview: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'SelfSubjectAccessReviewSpec' }] },
  SelfSubjectAccessReviewSpec: { 1: ['resourceAttributes', { msg: 'ResourceAttributes' }], 2: ['nonResourceAttributes', { msg: 'NonResourceAttributes' }] },
  SubjectAccessReview: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'SubjectAccessReviewSpec' }] },
  LocalSubjectAccessReview: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'SubjectAccessReviewSpec' }] },
  SubjectAccessReviewSpec: {
    1: ['resourceAttributes', { msg: 'ResourceAttributes' }], 2: ['nonResourceAttributes', { msg: 'NonResourceAttributes' }],
    3: ['user', 'string'], 4: ['groups', { rep: 'string' }], 6: ['uid', 'string'],
  },
  ResourceAttributes: {
    1: ['namespace', 'string'], 2: ['verb', 'string'], 3: ['group', 'string'], 4: ['version', 'string'], 5: ['resource', 'string'],
    6: ['subresource', 'string'], 7: ['name', 'string'],
  },
  NonResourceAttributes: { 1: ['path', 'string'], 2: ['verb', 'string'] },
  SelfSubjectRulesReview: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['spec', { msg: 'SelfSubjectRulesReviewSpec' }] },
  SelfSubjectRulesReviewSpec: { 1: ['namespace', 'string'] },
  // rbac.authorization.k8s.io/v1 (kubectl create role|clusterrole|rolebinding|clusterrolebinding)
  PolicyRule: { 1: ['verbs', { rep: 'string' }], 2: ['apiGroups', { rep: 'string' }], 3: ['resources', { rep: 'string' }], 4: ['resourceNames', { rep: 'string' }], 5: ['nonResourceURLs', { rep: 'string' }] },
  Role: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['rules', { rep: { msg: 'PolicyRule' } }] },
  ClusterRole: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['rules', { rep: { msg: 'PolicyRule' } }], 3: ['aggregationRule', { msg: 'AggregationRule' }] },
  AggregationRule: { 1: ['clusterRoleSelectors', { rep: { msg: 'LabelSelector' } }] },
  LabelSelector: { 1: ['matchLabels', 'map'], 2: ['matchExpressions', { rep: { msg: 'LabelSelectorRequirement' } }] },
  LabelSelectorRequirement: { 1: ['key', 'string'], 2: ['operator', 'string'], 3: ['values', { rep: 'string' }] },
  Subject: { 1: ['kind', 'string'], 2: ['apiGroup', 'string'], 3: ['name', 'string'], 4: ['namespace', 'string'] },
  RoleRef: { 1: ['apiGroup', 'string'], 2: ['kind', 'string'], 3: ['name', 'string'] },
  RoleBinding: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['subjects', { rep: { msg: 'Subject' } }], 3: ['roleRef', { msg: 'RoleRef' }] },
  ClusterRoleBinding: { 1: ['metadata', { msg: 'ObjectMeta' }], 2: ['subjects', { rep: { msg: 'Subject' } }], 3: ['roleRef', { msg: 'RoleRef' }] },
  ServiceAccount: {
    1: ['metadata', { msg: 'ObjectMeta' }], 2: ['secrets', { rep: { msg: 'ObjectReference' } }],
    3: ['imagePullSecrets', { rep: { msg: 'LocalObjectReference' } }], 4: ['automountServiceAccountToken', 'bool'],
  },
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + n);
    if (out.length !== n) throw new Error('truncated field');
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

function decode(buf: Buffer, type: string): Obj {
  const spec = MESSAGES[type]!;
  const r = new Reader(buf);
  const out: Obj = {};
  while (r.pos < buf.length) {
    const key = Number(r.varint());
    const field = key >> 3;
    const wire = key & 7;
    const f = spec[field];
    if (!f) { r.skip(wire); continue; }
    const [name, kind] = f;
    // Go's generated marshallers write empty optional strings and zero ints; JSON would omit them
    if (kind === 'string') { const v = r.bytes().toString('utf8'); if (v !== '') out[name] = v; }
    else if (kind === 'bytes') out[name] = r.bytes();
    else if (kind === 'int') { const v = Number(r.varint()); if (v !== 0) out[name] = v; }
    else if (kind === 'bool') out[name] = r.varint() !== 0n;
    else if (kind === 'map' || kind === 'mapBytes') {
      const entry = new Reader(r.bytes());
      let k = '';
      let v: Buffer = Buffer.alloc(0);
      while (entry.pos < entry.buf.length) {
        const ek = Number(entry.varint());
        if (ek >> 3 === 1) k = entry.bytes().toString('utf8');
        else if (ek >> 3 === 2) v = entry.bytes();
        else entry.skip(ek & 7);
      }
      out[name] ??= {};
      out[name][k] = kind === 'map' ? v.toString('utf8') : v.toString('base64');
    } else if (typeof kind === 'object' && 'msg' in kind) out[name] = decode(r.bytes(), kind.msg);
    else if (typeof kind === 'object' && 'rep' in kind) {
      out[name] ??= [];
      out[name].push(kind.rep === 'string' ? r.bytes().toString('utf8') : decode(r.bytes(), kind.rep.msg));
    }
  }
  return out;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/** Decodes a protobuf request body to the JSON object it stands for, or throws 415. */
export function decodeProtobufObject(body: Buffer): Obj {
  const unsupported = (why: string): ApiError => new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (${why})`);
  if (!body.subarray(0, 4).equals(MAGIC)) throw unsupported('missing protobuf envelope');
  let unknown: Obj;
  try { unknown = decode(body.subarray(4), 'Unknown'); } catch (e) { throw unsupported((e as Error).message); }
  const tm = unknown.typeMeta ?? {};
  // whoami is answered from the requester's identity alone: its body needs no decoding
  if (tm.apiVersion === 'authentication.k8s.io/v1' && tm.kind === 'SelfSubjectReview') return { apiVersion: tm.apiVersion, kind: tm.kind, metadata: {}, spec: {} };
  const decodable = (tm.apiVersion === 'v1' && ['Namespace', 'ConfigMap', 'Secret', 'ServiceAccount'].includes(tm.kind))
    || (tm.apiVersion === 'authentication.k8s.io/v1' && tm.kind === 'TokenRequest')
    || (tm.apiVersion === 'rbac.authorization.k8s.io/v1' && ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(tm.kind))
    || (tm.apiVersion === 'authorization.k8s.io/v1' && ['SelfSubjectAccessReview', 'SubjectAccessReview', 'LocalSubjectAccessReview', 'SelfSubjectRulesReview'].includes(tm.kind));
  if (!decodable) throw unsupported(`protobuf not supported for ${tm.apiVersion}/${tm.kind}`);
  let obj: Obj;
  try { obj = decode(unknown.raw ?? Buffer.alloc(0), tm.kind); } catch (e) { throw unsupported((e as Error).message); }
  return { apiVersion: tm.apiVersion, kind: tm.kind, ...obj };
}
