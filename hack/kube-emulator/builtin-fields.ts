// Known fields of built-in kinds, for unknown-field detection (strict field validation fails, the
// default drops them with a warning, as decoding into Go structs does). Only the levels listed here
// are checked; anything marked ANY (and everything below it) is accepted as is.

type Shape = typeof ANY | { [field: string]: Shape } | { '[]': Shape };
const ANY = 1 as const;
type Obj = Record<string, any>;

const list = (item: Shape): Shape => ({ '[]': item });
const fields = (...names: string[]): Shape => Object.fromEntries(names.map((n) => [n, ANY]));

const policyRule = fields('apiGroups', 'resources', 'verbs', 'resourceNames', 'nonResourceURLs');
const subject = fields('kind', 'apiGroup', 'name', 'namespace');
const roleRef = fields('apiGroup', 'kind', 'name');

const SHAPES: Record<string, Record<string, Shape>> = {
  '': {
    Namespace: { spec: fields('finalizers'), status: ANY },
    Node: { spec: fields('podCIDR', 'podCIDRs', 'providerID', 'unschedulable', 'taints', 'configSource', 'externalID'), status: ANY },
    ConfigMap: fields('data', 'binaryData', 'immutable'),
    Secret: fields('data', 'stringData', 'type', 'immutable'),
    Event: fields('involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count', 'type', 'eventTime', 'series', 'action', 'related', 'reportingComponent', 'reportingInstance'),
    ServiceAccount: fields('secrets', 'imagePullSecrets', 'automountServiceAccountToken'),
    Service: {
      spec: fields('ports', 'selector', 'clusterIP', 'clusterIPs', 'type', 'externalIPs', 'sessionAffinity', 'loadBalancerIP', 'loadBalancerSourceRanges',
        'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'publishNotReadyAddresses', 'sessionAffinityConfig', 'ipFamilies', 'ipFamilyPolicy',
        'allocateLoadBalancerNodePorts', 'loadBalancerClass', 'internalTrafficPolicy', 'trafficDistribution'),
      status: ANY,
    },
    Pod: { spec: ANY, status: ANY },
    Endpoints: fields('subsets'),
  },
  'events.k8s.io': {
    Event: fields('eventTime', 'series', 'reportingController', 'reportingInstance', 'action', 'reason', 'regarding', 'related', 'note', 'type',
      'deprecatedSource', 'deprecatedFirstTimestamp', 'deprecatedLastTimestamp', 'deprecatedCount'),
  },
  'coordination.k8s.io': {
    Lease: { spec: fields('holderIdentity', 'leaseDurationSeconds', 'acquireTime', 'renewTime', 'leaseTransitions', 'strategy', 'preferredHolder') },
  },
  apps: {
    Deployment: { spec: fields('replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds'), status: ANY },
    DaemonSet: { spec: fields('selector', 'template', 'updateStrategy', 'minReadySeconds', 'revisionHistoryLimit'), status: ANY },
    ReplicaSet: { spec: fields('replicas', 'minReadySeconds', 'selector', 'template'), status: ANY },
    StatefulSet: { spec: ANY, status: ANY },
  },
  policy: {
    PodDisruptionBudget: { spec: fields('minAvailable', 'selector', 'maxUnavailable', 'unhealthyPodEvictionPolicy'), status: ANY },
  },
  'rbac.authorization.k8s.io': {
    Role: { rules: list(policyRule) },
    ClusterRole: { rules: list(policyRule), aggregationRule: fields('clusterRoleSelectors') },
    RoleBinding: { subjects: list(subject), roleRef },
    ClusterRoleBinding: { subjects: list(subject), roleRef },
  },
  'apiextensions.k8s.io': {
    CustomResourceDefinition: { spec: fields('group', 'names', 'scope', 'versions', 'conversion', 'preserveUnknownFields'), status: ANY },
  },
  'admissionregistration.k8s.io': {
    ValidatingAdmissionPolicy: { spec: fields('paramKind', 'matchConstraints', 'validations', 'failurePolicy', 'auditAnnotations', 'matchConditions', 'variables'), status: ANY },
    ValidatingAdmissionPolicyBinding: { spec: fields('policyName', 'paramRef', 'matchResources', 'validationActions') },
    ValidatingWebhookConfiguration: fields('webhooks'),
  },
};

const OBJECT_META = fields('name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields');

function walk(v: unknown, shape: Shape, path: string, out: string[]): void {
  if (shape === ANY || v === null || typeof v !== 'object') return;
  if ('[]' in shape) {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, (shape as { '[]': Shape })['[]'], `${path}[${i}]`, out));
    return;
  }
  if (Array.isArray(v)) return;
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    const s = (shape as Record<string, Shape>)[k];
    const p = path ? `${path}.${k}` : k;
    if (s === undefined) {
      out.push(p);
      delete o[k];
    } else walk(o[k], s, p, out);
  }
}

/** Removes (in place) and returns fields a built-in kind does not have; null if the kind is unknown here. */
export function pruneBuiltin(group: string, kind: string, obj: Obj): string[] | null {
  const top = SHAPES[group]?.[kind] ?? (kind.endsWith('Review') ? { spec: ANY, status: ANY } : undefined);
  if (!top) return null;
  const shape: Shape = { apiVersion: ANY, kind: ANY, metadata: OBJECT_META, ...(top as Record<string, Shape>) };
  const out: string[] = [];
  walk(obj, shape, '', out);
  return out;
}
