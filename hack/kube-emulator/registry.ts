// What the emulator serves: built-in resource types and the ones CRDs add. Pure data plus lookups.
import type { JSONSchemaProps } from './schema.js';

export type Obj = Record<string, any>;

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  statusSubresource: boolean;
  /** metadata.generation is maintained (bumped on spec changes). */
  generation: boolean;
  allowUnconditionalUpdate: boolean;
  /** Storage bucket: types that are views of the same objects share one (core and events.k8s.io Events). */
  bucket: string;
  /** Built-in types accept strategic merge patch; custom resources do not. */
  strategicMerge: boolean;
  /** Extra field selector labels beyond metadata.name / metadata.namespace. */
  fieldLabels?: (o: Obj) => Record<string, string>;
  /** Conversion between this view and the stored shape (default: only apiVersion changes). */
  toStorage?: (o: Obj) => Obj;
  fromStorage?: (o: Obj) => Obj;
  /** Custom resources: structural schema and printer columns of this version. */
  schema?: JSONSchemaProps;
  printerColumns?: PrinterColumn[];
  /** Built-in table printing: column definitions + cells for an object. */
  table?: { columns: PrinterColumn[] };
  crdName?: string;
  /** For deleted objects DELETE returns the object (custom resources) rather than a Status. */
  returnDeletedObject: boolean;
  /** Create-only review resources (access reviews, whoami) answered without storing. */
  review?: boolean;
  /** The scale subresource: JSONPaths of desired and observed replicas and the label selector. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
}

export const apiVersionOf = (t: { group: string; version: string }): string => (t.group ? `${t.group}/${t.version}` : t.version);
export const bucketOf = (group: string, plural: string): string => `${group || 'core'}/${plural}`;

interface Def {
  g: string; v: string; kind: string; plural: string; ns: boolean; short?: string[]; status?: boolean; gen?: boolean;
  strictUpdate?: boolean; cats?: string[]; cols?: PrinterColumn[]; fields?: (o: Obj) => Record<string, string>;
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

const eventFields = (o: Obj): Record<string, string> => ({
  'involvedObject.kind': o.involvedObject?.kind ?? '',
  'involvedObject.namespace': o.involvedObject?.namespace ?? '',
  'involvedObject.name': o.involvedObject?.name ?? '',
  'involvedObject.uid': o.involvedObject?.uid ?? '',
  'involvedObject.apiVersion': o.involvedObject?.apiVersion ?? '',
  'involvedObject.resourceVersion': o.involvedObject?.resourceVersion ?? '',
  'involvedObject.fieldPath': o.involvedObject?.fieldPath ?? '',
  reason: o.reason ?? '',
  reportingComponent: o.reportingComponent ?? '',
  source: o.source?.component ?? '',
  type: o.type ?? '',
});

const defs: Def[] = [
  { g: '', v: 'v1', kind: 'Namespace', plural: 'namespaces', ns: false, short: ['ns'], status: true,
    cols: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, age], fields: (o) => ({ 'status.phase': o.status?.phase ?? '' }) },
  { g: '', v: 'v1', kind: 'Node', plural: 'nodes', ns: false, short: ['no'], status: true,
    cols: [
      { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Roles', type: 'string', jsonPath: '.metadata.labels' },
      age,
      { name: 'Version', type: 'string', jsonPath: '.status.nodeInfo.kubeletVersion' },
      { name: 'Internal-IP', type: 'string', jsonPath: '.status.addresses[?(@.type=="InternalIP")].address', priority: 1 },
    ],
    fields: (o) => ({ 'spec.unschedulable': String(Boolean(o.spec?.unschedulable)) }) },
  { g: '', v: 'v1', kind: 'ConfigMap', plural: 'configmaps', ns: true, short: ['cm'],
    cols: [{ name: 'Data', type: 'integer', jsonPath: '.data' }, age] },
  { g: '', v: 'v1', kind: 'Secret', plural: 'secrets', ns: true,
    cols: [{ name: 'Type', type: 'string', jsonPath: '.type' }, { name: 'Data', type: 'integer', jsonPath: '.data' }, age],
    fields: (o) => ({ type: o.type ?? '' }) },
  { g: '', v: 'v1', kind: 'Event', plural: 'events', ns: true, short: ['ev'],
    cols: [
      { name: 'Last Seen', type: 'string', jsonPath: '.lastTimestamp' },
      { name: 'Type', type: 'string', jsonPath: '.type' },
      { name: 'Reason', type: 'string', jsonPath: '.reason' },
      { name: 'Object', type: 'string', jsonPath: '.involvedObject' },
      { name: 'Message', type: 'string', jsonPath: '.message' },
      { name: 'First Seen', type: 'string', jsonPath: '.firstTimestamp', priority: 1 },
      { name: 'Count', type: 'integer', jsonPath: '.count', priority: 1 },
    ], fields: eventFields },
  { g: '', v: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', ns: true, short: ['sa'], cols: [age] },
  { g: '', v: 'v1', kind: 'Service', plural: 'services', ns: true, short: ['svc'], status: true,
    cols: [{ name: 'Type', type: 'string', jsonPath: '.spec.type' }, { name: 'Cluster-IP', type: 'string', jsonPath: '.spec.clusterIP' }, age] },
  { g: '', v: 'v1', kind: 'Pod', plural: 'pods', ns: true, short: ['po'], status: true, cats: ['all'],
    cols: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, age, { name: 'IP', type: 'string', jsonPath: '.status.podIP', priority: 1 }, { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', priority: 1 }],
    fields: (o) => ({ 'spec.nodeName': o.spec?.nodeName ?? '', 'status.phase': o.status?.phase ?? '', 'status.podIP': o.status?.podIP ?? '', 'spec.serviceAccountName': o.spec?.serviceAccountName ?? '', 'spec.schedulerName': o.spec?.schedulerName ?? '', 'spec.restartPolicy': o.spec?.restartPolicy ?? '' }) },
  { g: 'events.k8s.io', v: 'v1', kind: 'Event', plural: 'events', ns: true, short: ['ev'], fields: eventFields,
    cols: [{ name: 'Reason', type: 'string', jsonPath: '.reason' }, { name: 'Note', type: 'string', jsonPath: '.note' }, age] },
  { g: 'coordination.k8s.io', v: 'v1', kind: 'Lease', plural: 'leases', ns: true,
    cols: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, age] },
  { g: 'apps', v: 'v1', kind: 'Deployment', plural: 'deployments', ns: true, short: ['deploy'], status: true, gen: true, cats: ['all'],
    cols: [{ name: 'Ready', type: 'string', jsonPath: '.status.readyReplicas' }, { name: 'Available', type: 'integer', jsonPath: '.status.availableReplicas' }, age] },
  { g: 'apps', v: 'v1', kind: 'DaemonSet', plural: 'daemonsets', ns: true, short: ['ds'], status: true, gen: true, cats: ['all'],
    cols: [{ name: 'Desired', type: 'integer', jsonPath: '.status.desiredNumberScheduled' }, { name: 'Ready', type: 'integer', jsonPath: '.status.numberReady' }, age] },
  { g: 'apps', v: 'v1', kind: 'ReplicaSet', plural: 'replicasets', ns: true, short: ['rs'], status: true, gen: true, cats: ['all'],
    cols: [{ name: 'Desired', type: 'integer', jsonPath: '.spec.replicas' }, { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' }, age] },
  { g: 'apps', v: 'v1', kind: 'StatefulSet', plural: 'statefulsets', ns: true, short: ['sts'], status: true, gen: true, cats: ['all'], cols: [age] },
  { g: 'policy', v: 'v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', ns: true, short: ['pdb'], status: true, gen: true,
    cols: [{ name: 'Min Available', type: 'string', jsonPath: '.spec.minAvailable' }, { name: 'Max Unavailable', type: 'string', jsonPath: '.spec.maxUnavailable' }, age] },
  { g: '', v: 'v1', kind: 'Endpoints', plural: 'endpoints', ns: true, short: ['ep'], cols: [age] },
  { g: 'rbac.authorization.k8s.io', v: 'v1', kind: 'Role', plural: 'roles', ns: true, cols: [{ name: 'Created At', type: 'date', format: 'date-time', jsonPath: '.metadata.creationTimestamp' }] },
  { g: 'rbac.authorization.k8s.io', v: 'v1', kind: 'ClusterRole', plural: 'clusterroles', ns: false, cols: [{ name: 'Created At', type: 'date', format: 'date-time', jsonPath: '.metadata.creationTimestamp' }] },
  { g: 'rbac.authorization.k8s.io', v: 'v1', kind: 'RoleBinding', plural: 'rolebindings', ns: true, cols: [{ name: 'Role', type: 'string', jsonPath: '.roleRef.name' }, age] },
  { g: 'rbac.authorization.k8s.io', v: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', ns: false, cols: [{ name: 'Role', type: 'string', jsonPath: '.roleRef.name' }, age] },
  { g: 'apiextensions.k8s.io', v: 'v1', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', ns: false, short: ['crd', 'crds'], status: true, gen: true,
    cols: [{ name: 'Created At', type: 'date', format: 'date-time', jsonPath: '.metadata.creationTimestamp' }] },
  { g: 'admissionregistration.k8s.io', v: 'v1', kind: 'ValidatingAdmissionPolicy', plural: 'validatingadmissionpolicies', ns: false, status: true, gen: true,
    cols: [{ name: 'Validations', type: 'integer', jsonPath: '.spec.validations' }, age] },
  { g: 'admissionregistration.k8s.io', v: 'v1', kind: 'ValidatingAdmissionPolicyBinding', plural: 'validatingadmissionpolicybindings', ns: false, gen: true,
    cols: [{ name: 'PolicyName', type: 'string', jsonPath: '.spec.policyName' }, age] },
  { g: 'admissionregistration.k8s.io', v: 'v1', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations', ns: false, gen: true, cols: [age] },
];

const APPS_SCALE = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' };

function fromDef(d: Def): ResourceType {
  return {
    scale: d.g === 'apps' && d.kind !== 'DaemonSet' ? APPS_SCALE : undefined,
    group: d.g, version: d.v, kind: d.kind, listKind: `${d.kind}List`, plural: d.plural, singular: d.kind.toLowerCase(),
    namespaced: d.ns, shortNames: d.short ?? [], categories: d.cats ?? [], statusSubresource: d.status ?? false,
    generation: d.gen ?? false, allowUnconditionalUpdate: !d.strictUpdate, bucket: bucketOf(d.g, d.plural),
    strategicMerge: true, fieldLabels: d.fields, table: d.cols ? { columns: d.cols } : undefined, returnDeletedObject: false,
  };
}

// events.k8s.io/v1 Event <-> core/v1 Event (one stored object, two views, as in the API server).
function eventToCore(o: Obj): Obj {
  const { regarding, related, note, deprecatedSource, deprecatedFirstTimestamp, deprecatedLastTimestamp, deprecatedCount, reportingController, ...rest } = o;
  const out: Obj = { ...rest, apiVersion: 'v1', kind: 'Event' };
  if (reportingController !== undefined) out.reportingComponent = reportingController;
  if (regarding !== undefined) out.involvedObject = regarding;
  if (related !== undefined) out.related = related;
  if (note !== undefined) out.message = note;
  if (deprecatedSource !== undefined) out.source = deprecatedSource;
  if (deprecatedFirstTimestamp !== undefined) out.firstTimestamp = deprecatedFirstTimestamp;
  if (deprecatedLastTimestamp !== undefined) out.lastTimestamp = deprecatedLastTimestamp;
  if (deprecatedCount !== undefined) out.count = deprecatedCount;
  if (o.series) out.series = { count: o.series.count, lastObservedTime: o.series.lastObservedTime };
  return out;
}
function eventFromCore(o: Obj): Obj {
  const { involvedObject, message, source, firstTimestamp, lastTimestamp, count, reportingComponent, ...rest } = o;
  const out: Obj = { ...rest, apiVersion: 'events.k8s.io/v1', kind: 'Event' };
  if (reportingComponent !== undefined) out.reportingController = reportingComponent;
  if (involvedObject !== undefined) out.regarding = involvedObject;
  if (message !== undefined) out.note = message;
  if (source !== undefined) out.deprecatedSource = source;
  if (firstTimestamp !== undefined) out.deprecatedFirstTimestamp = firstTimestamp;
  if (lastTimestamp !== undefined) out.deprecatedLastTimestamp = lastTimestamp;
  if (count !== undefined) out.deprecatedCount = count;
  return out;
}

const reviews: [string, string, string, boolean][] = [
  ['authorization.k8s.io', 'SelfSubjectAccessReview', 'selfsubjectaccessreviews', false],
  ['authorization.k8s.io', 'SubjectAccessReview', 'subjectaccessreviews', false],
  ['authorization.k8s.io', 'SelfSubjectRulesReview', 'selfsubjectrulesreviews', false],
  ['authorization.k8s.io', 'LocalSubjectAccessReview', 'localsubjectaccessreviews', true],
  ['authentication.k8s.io', 'SelfSubjectReview', 'selfsubjectreviews', false],
];

export function builtinTypes(): ResourceType[] {
  const reviewTypes = reviews.map(([g, kind, plural, ns]) => ({ ...fromDef({ g, v: 'v1', kind, plural, ns }), review: true }));
  return [...reviewTypes, ...defs.map((d) => {
    const t = fromDef(d);
    if (d.g === 'events.k8s.io') {
      t.bucket = bucketOf('', 'events');
      t.toStorage = eventToCore;
      t.fromStorage = eventFromCore;
    }
    return t;
  })];
}

/** All served resource types, indexed for URL routing and kubectl's name resolution. */
export class Registry {
  private types = new Map<string, ResourceType>(); // `${group}/${version}/${plural}`
  private crdOwned = new Map<string, string[]>(); // crd name -> keys

  constructor() {
    for (const t of builtinTypes()) this.add(t);
  }

  private key = (g: string, v: string, p: string): string => `${g}/${v}/${p}`;

  add(t: ResourceType): void {
    this.types.set(this.key(t.group, t.version, t.plural), t);
  }

  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.get(this.key(group, version, plural));
  }

  /** Replaces every version a CRD serves. */
  setCrd(crdName: string, types: ResourceType[]): void {
    this.removeCrd(crdName);
    for (const t of types) this.add(t);
    this.crdOwned.set(crdName, types.map((t) => this.key(t.group, t.version, t.plural)));
  }

  removeCrd(crdName: string): void {
    for (const k of this.crdOwned.get(crdName) ?? []) this.types.delete(k);
    this.crdOwned.delete(crdName);
  }

  all(): ResourceType[] {
    return [...this.types.values()];
  }

  /** Group -> versions (preferred first) in a stable order: built-in groups first. */
  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const t of this.types.values()) {
      const vs = out.get(t.group) ?? [];
      if (!vs.includes(t.version)) vs.push(t.version);
      out.set(t.group, vs);
    }
    for (const vs of out.values()) vs.sort(compareVersions);
    return out;
  }

  inGroupVersion(group: string, version: string): ResourceType[] {
    return this.all().filter((t) => t.group === group && t.version === version);
  }

  /** Any type by group + kind (for owner references and GC); the preferred version wins. */
  byGroupKind(group: string, kind: string): ResourceType | undefined {
    const c = this.all().filter((t) => t.group === group && t.kind === kind);
    c.sort((a, b) => compareVersions(a.version, b.version));
    return c[0];
  }

  /** Types keyed by storage bucket (one representative per bucket: the preferred version). */
  byBucket(bucket: string): ResourceType | undefined {
    const c = this.all().filter((t) => t.bucket === bucket && !t.toStorage);
    c.sort((a, b) => compareVersions(a.version, b.version));
    return c[0];
  }
}

/** Kubernetes version priority: GA > beta > alpha, higher numbers first. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): [number, number, number] => {
    const m = v.match(/^v(\d+)(?:(alpha|beta)(\d+))?$/);
    if (!m) return [-1, 0, 0];
    const stage = m[2] === 'alpha' ? 0 : m[2] === 'beta' ? 1 : 2;
    return [stage, Number(m[1]), Number(m[3] ?? 0)];
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa[0] < 0 && pb[0] < 0) return a.localeCompare(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pb[i]! - pa[i]!;
  return 0;
}
