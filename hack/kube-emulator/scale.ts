// The scale subresource (autoscaling/v1 Scale) of types that declare one: read from and written to the
// replica paths the type names.
import type { Api, WriteOptions } from './api.js';
import type { ResourceType } from './registry.js';
import { fe, invalid, staleConflict } from './status.js';
import type { Obj } from './store.js';
import { jsonPath } from './table.js';

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** autoscaling/v1 Scale of an object whose type has a scale subresource. */
export function getScale(api: Api, t: ResourceType, ns: string, name: string): Obj {
  const o = api.get(t, ns, name);
  return scaleOf(t, o);
}

/** Applies a new Scale (from PUT or a patch of the current one) to spec replicas. */
export function updateScale(api: Api, t: ResourceType, ns: string, name: string, change: (current: Obj) => Obj, opts: WriteOptions): Obj {
  const o = api.get(t, ns, name);
  const next = change(scaleOf(t, o));
  const replicas = next?.spec?.replicas;
  if (!Number.isInteger(replicas) || replicas < 0) {
    throw invalid('Scale', 'autoscaling', name, [fe.invalid('spec.replicas', replicas ?? null, 'must be greater than or equal to 0')]);
  }
  const rv = next.metadata?.resourceVersion;
  if (rv && rv !== o.metadata.resourceVersion) throw staleConflict(t, name);
  const updated = structuredClone(o) as Obj;
  setPath(updated, t.scale!.specReplicasPath, replicas);
  const r = api.update(t, ns, name, updated, { ...opts, subresource: '' });
  return scaleOf(t, r.obj);
}

function scaleOf(t: ResourceType, o: Obj): Obj {
  const sc = t.scale!;
  const spec = jsonPath(o, sc.specReplicasPath)[0];
  const status = jsonPath(o, sc.statusReplicasPath)[0];
  const selector = sc.labelSelectorPath ? jsonPath(o, sc.labelSelectorPath)[0] : undefined;
  const out: Obj = {
    kind: 'Scale', apiVersion: 'autoscaling/v1',
    metadata: { name: o.metadata.name, namespace: o.metadata.namespace, uid: o.metadata.uid, resourceVersion: o.metadata.resourceVersion, creationTimestamp: o.metadata.creationTimestamp },
    spec: { replicas: typeof spec === 'number' ? spec : 0 },
    status: { replicas: typeof status === 'number' ? status : 0 },
  };
  if (!t.namespaced) delete out.metadata.namespace;
  if (typeof selector === 'string') out.status.selector = selector;
  return out;
}

/** Sets a simple dotted JSONPath (.spec.replicas), creating objects on the way. */
function setPath(o: Obj, path: string, value: unknown): void {
  const parts = path.replace(/^\./, '').split('.');
  let cur = o;
  for (const p of parts.slice(0, -1)) cur = isObj(cur[p]) ? cur[p] : (cur[p] = {});
  cur[parts[parts.length - 1]!] = value;
}
