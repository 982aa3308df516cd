// The control loops the API server's companions run, reduced to what clients observe: garbage
// collection by ownerReferences (background, foreground, orphan), namespace termination, and
// deleting custom resources when their CRD goes away.
import type { Api } from './api.js';
import { bucketOf } from './registry.js';
import { objectKey, type Obj, type StoreEvent } from './store.js';
import { ApiError } from './status.js';

const REF_SEP = '\u0000';
const CRD_BUCKET = bucketOf('apiextensions.k8s.io', 'customresourcedefinitions');
const NS_BUCKET = bucketOf('', 'namespaces');
const CRD_CLEANUP = 'customresourcecleanup.apiextensions.k8s.io';

export class Controllers {
  private queue = new Set<string>();
  private scheduled = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly api: Api) {
    this.unsubscribe = api.store.subscribeAll((e) => this.onEvent(e));
    // objects loaded from a snapshot may be mid-deletion
    for (const b of api.store.bucketNames()) {
      for (const o of api.store.list(b)) if (o.metadata.deletionTimestamp || o.metadata.ownerReferences) this.enqueue(b, o);
    }
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private enqueue(bucket: string, o: Obj): void {
    this.queue.add(`${bucket}${REF_SEP}${objectKey(o.metadata.namespace, o.metadata.name)}`);
    if (!this.scheduled && !this.stopped) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private enqueueUid(uid: string): void {
    const loc = this.api.store.uidIndex.get(uid);
    if (!loc) return;
    const o = this.api.store.get(loc.bucket, loc.key);
    if (o) this.enqueue(loc.bucket, o);
  }

  private onEvent(e: StoreEvent): void {
    const md = e.obj.metadata;
    if (e.type === 'DELETED') {
      for (const ref of this.api.store.dependents.get(md.uid) ?? []) {
        const [b, k] = ref.split(REF_SEP) as [string, string];
        const dep = this.api.store.get(b, k);
        if (dep) this.enqueue(b, dep);
      }
      for (const o of md.ownerReferences ?? []) this.enqueueUid(o.uid);
      if (md.namespace) {
        const ns = this.api.store.get(NS_BUCKET, md.namespace);
        if (ns?.metadata.deletionTimestamp) this.enqueue(NS_BUCKET, ns);
      }
      if (e.bucket !== CRD_BUCKET) {
        for (const crd of this.api.store.list(CRD_BUCKET)) {
          if (crd.metadata.deletionTimestamp && bucketOf(crd.spec.group, crd.spec.names.plural) === e.bucket) this.enqueue(CRD_BUCKET, crd);
        }
      }
      return;
    }
    if (md.deletionTimestamp || md.ownerReferences?.length) this.enqueue(e.bucket, e.obj);
  }

  private drain(): void {
    this.scheduled = false;
    if (this.stopped) return;
    const items = [...this.queue];
    this.queue.clear();
    for (const ref of items) {
      const [b, k] = ref.split(REF_SEP) as [string, string];
      try {
        this.process(b, k);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
      }
    }
  }

  private typeFor(bucket: string) {
    return this.api.registry.byBucket(bucket);
  }

  private process(bucket: string, key: string): void {
    const o = this.api.store.get(bucket, key);
    if (!o) return;
    const md = o.metadata;
    if (md.ownerReferences?.length && !md.deletionTimestamp) this.checkOwners(bucket, o);
    const cur = this.api.store.get(bucket, key);
    if (!cur?.metadata.deletionTimestamp) return;
    const fins: string[] = cur.metadata.finalizers ?? [];
    if (fins.includes('orphan')) this.orphan(bucket, cur);
    else if (fins.includes('foregroundDeletion')) this.foreground(bucket, cur);
    if (bucket === NS_BUCKET) this.terminateNamespace(cur);
    if (bucket === CRD_BUCKET && fins.includes(CRD_CLEANUP)) this.cleanupCrd(cur);
  }

  private dependentsOf(uid: string): { bucket: string; obj: Obj }[] {
    const out: { bucket: string; obj: Obj }[] = [];
    for (const ref of this.api.store.dependents.get(uid) ?? []) {
      const [b, k] = ref.split(REF_SEP) as [string, string];
      const obj = this.api.store.get(b, k);
      if (obj) out.push({ bucket: b, obj });
    }
    return out;
  }

  private removeFinalizer(bucket: string, o: Obj, f: string): void {
    const fins = (o.metadata.finalizers ?? []).filter((x: string) => x !== f);
    const next = { ...o, metadata: { ...o.metadata, finalizers: fins.length ? fins : undefined } };
    if (!fins.length) delete next.metadata.finalizers;
    this.api.controllerWrite(bucket, next);
  }

  private deleteObj(bucket: string, o: Obj, policy: 'Background' | 'Foreground'): void {
    const t = this.typeFor(bucket);
    if (!t || o.metadata.deletionTimestamp && policy === 'Background') return;
    this.api.delete(t, o.metadata.namespace ?? '', o.metadata.name, { propagationPolicy: policy, preconditions: { uid: o.metadata.uid } });
  }

  /** Dependents whose owners are all gone are deleted; dangling references are dropped. */
  private checkOwners(bucket: string, o: Obj): void {
    const refs: Obj[] = o.metadata.ownerReferences;
    const alive = refs.filter((r) => this.api.store.uidIndex.has(r.uid));
    if (alive.length === refs.length) {
      // an owner being deleted in the foreground takes its dependents with it
      for (const r of refs) {
        const loc = this.api.store.uidIndex.get(r.uid)!;
        const owner = this.api.store.get(loc.bucket, loc.key);
        if (owner?.metadata.deletionTimestamp && (owner.metadata.finalizers ?? []).includes('foregroundDeletion')) {
          this.deleteObj(bucket, o, 'Foreground');
          return;
        }
      }
      return;
    }
    if (alive.length === 0) {
      this.deleteObj(bucket, o, 'Background');
      return;
    }
    this.api.controllerWrite(bucket, { ...o, metadata: { ...o.metadata, ownerReferences: alive } });
  }

  private orphan(bucket: string, owner: Obj): void {
    for (const d of this.dependentsOf(owner.metadata.uid)) {
      const refs = (d.obj.metadata.ownerReferences ?? []).filter((r: Obj) => r.uid !== owner.metadata.uid);
      const next = { ...d.obj, metadata: { ...d.obj.metadata, ownerReferences: refs } };
      if (!refs.length) delete next.metadata.ownerReferences;
      this.api.controllerWrite(d.bucket, next);
    }
    this.removeFinalizer(bucket, this.api.store.get(bucket, objectKey(owner.metadata.namespace, owner.metadata.name))!, 'orphan');
  }

  private foreground(bucket: string, owner: Obj): void {
    const deps = this.dependentsOf(owner.metadata.uid);
    for (const d of deps) if (!d.obj.metadata.deletionTimestamp) this.deleteObj(d.bucket, d.obj, 'Foreground');
    const blocking = this.dependentsOf(owner.metadata.uid).filter((d) =>
      (d.obj.metadata.ownerReferences ?? []).some((r: Obj) => r.uid === owner.metadata.uid && r.blockOwnerDeletion));
    if (!blocking.length) {
      const cur = this.api.store.get(bucket, objectKey(owner.metadata.namespace, owner.metadata.name));
      if (cur) this.removeFinalizer(bucket, cur, 'foregroundDeletion');
    }
  }

  private terminateNamespace(ns: Obj): void {
    const name = ns.metadata.name;
    let remaining = 0;
    const seen = new Set<string>();
    for (const t of this.api.registry.all()) {
      if (!t.namespaced || seen.has(t.bucket) || t.toStorage) continue;
      seen.add(t.bucket);
      for (const o of this.api.store.list(t.bucket, name)) {
        remaining++;
        if (!o.metadata.deletionTimestamp) this.deleteObj(t.bucket, o, 'Background');
      }
    }
    if (remaining && this.anyLeft(name)) return;
    const cur = this.api.store.get(NS_BUCKET, name);
    if (!cur || (cur.metadata.finalizers ?? []).length) return;
    this.api.store.remove(NS_BUCKET, name);
  }

  private anyLeft(ns: string): boolean {
    for (const t of this.api.registry.all()) if (t.namespaced && this.api.store.list(t.bucket, ns).length) return true;
    return false;
  }

  private cleanupCrd(crd: Obj): void {
    const bucket = bucketOf(crd.spec.group, crd.spec.names.plural);
    const objs = this.api.store.list(bucket);
    for (const o of objs) if (!o.metadata.deletionTimestamp) this.deleteObj(bucket, o, 'Background');
    if (this.api.store.list(bucket).length) return;
    const cur = this.api.store.get(CRD_BUCKET, crd.metadata.name);
    if (cur) this.removeFinalizer(CRD_BUCKET, cur, CRD_CLEANUP);
  }
}
