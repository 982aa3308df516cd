// Versioned object storage: one cluster-wide resourceVersion counter, per-bucket objects and event
// history (for watch resumption and 410 Gone), watcher fan-out, and optional snapshot persistence.
import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';

export type Obj = Record<string, any>;
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  bucket: string;
  key: string;
  obj: Obj;
  /** Previous state (for MODIFIED/DELETED), used for selector transitions. */
  prev?: Obj;
}

export type Listener = (e: StoreEvent) => void;

class Bucket {
  objects = new Map<string, Obj>();
  history: StoreEvent[] = [];
  /** Events with rv <= floor are no longer in history: watching from before it is 410 Gone. */
  floor: number;
  listeners = new Set<Listener>();
  sortedKeys: string[] | null = null;
  constructor(floor: number) {
    this.floor = floor;
  }
}

export const objectKey = (namespace: string | undefined, name: string): string => (namespace ? `${namespace}/${name}` : name);

export interface StoreOptions {
  dataFile?: string;
  /** Max events kept per bucket for watch resumption. */
  historyLimit?: number;
}

export class Store {
  private buckets = new Map<string, Bucket>();
  private rv: number;
  /** RV at start: watch from anything older than this is Gone (a restart loses history). */
  private readonly startRV: number;
  private readonly historyLimit: number;
  private saveTimer: NodeJS.Timeout | null = null;
  readonly uidIndex = new Map<string, { bucket: string; key: string }>();
  /** owner uid -> dependents (bucket\u0000key) */
  readonly dependents = new Map<string, Set<string>>();
  private globalListeners = new Set<Listener>();

  constructor(private readonly opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 100_000;
    let saved = 0;
    if (opts.dataFile && existsSync(opts.dataFile)) {
      const snap = JSON.parse(readFileSync(opts.dataFile, 'utf8')) as { rv: number; buckets: Record<string, Obj[]> };
      saved = snap.rv;
      for (const [b, objs] of Object.entries(snap.buckets)) {
        const bucket = this.bucket(b);
        for (const o of objs) {
          const key = objectKey(o.metadata?.namespace, o.metadata?.name);
          bucket.objects.set(key, deepFreeze(o));
          this.index(b, key, undefined, o);
        }
      }
    }
    // Never reuse a resourceVersion across restarts: start past both the snapshot and the wall clock.
    this.rv = Math.max(saved + 1, Date.now());
    this.startRV = this.rv;
    for (const b of this.buckets.values()) b.floor = this.startRV;
  }

  currentRV(): number {
    return this.rv;
  }

  private bucket(name: string): Bucket {
    let b = this.buckets.get(name);
    if (!b) {
      b = new Bucket(this.startRV ?? 0);
      this.buckets.set(name, b);
    }
    return b;
  }

  get(bucket: string, key: string): Obj | undefined {
    return this.buckets.get(bucket)?.objects.get(key);
  }

  /** Objects of a bucket sorted by key (namespace/name), optionally one namespace only. */
  list(bucket: string, namespace?: string): Obj[] {
    const b = this.buckets.get(bucket);
    if (!b) return [];
    if (!b.sortedKeys) b.sortedKeys = [...b.objects.keys()].sort();
    const keys = namespace ? b.sortedKeys.filter((k) => k.startsWith(`${namespace}/`)) : b.sortedKeys;
    return keys.map((k) => b.objects.get(k)!);
  }

  sortedKeys(bucket: string): string[] {
    const b = this.buckets.get(bucket);
    if (!b) return [];
    if (!b.sortedKeys) b.sortedKeys = [...b.objects.keys()].sort();
    return b.sortedKeys;
  }

  bucketNames(): string[] {
    return [...this.buckets.keys()];
  }

  /** Writes an object with a fresh resourceVersion (set on the stored copy) and emits an event. */
  put(bucket: string, obj: Obj): Obj {
    const b = this.bucket(bucket);
    const key = objectKey(obj.metadata.namespace, obj.metadata.name);
    const prev = b.objects.get(key);
    const rv = ++this.rv;
    const stored = deepFreeze({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } });
    if (!prev) b.sortedKeys = null;
    b.objects.set(key, stored);
    this.index(bucket, key, prev, stored);
    this.emit(b, { type: prev ? 'MODIFIED' : 'ADDED', rv, bucket, key, obj: stored, prev });
    return stored;
  }

  /** Removes an object; the DELETED event carries the final state with a new resourceVersion. */
  remove(bucket: string, key: string): Obj | undefined {
    const b = this.buckets.get(bucket);
    const prev = b?.objects.get(key);
    if (!b || !prev) return undefined;
    const rv = ++this.rv;
    const final = deepFreeze({ ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } });
    b.objects.delete(key);
    b.sortedKeys = null;
    this.index(bucket, key, prev, undefined);
    this.emit(b, { type: 'DELETED', rv, bucket, key, obj: final, prev });
    return final;
  }

  private index(bucket: string, key: string, prev: Obj | undefined, next: Obj | undefined): void {
    const ref = `${bucket}\u0000${key}`;
    if (prev) {
      this.uidIndex.delete(prev.metadata.uid);
      for (const o of prev.metadata.ownerReferences ?? []) this.dependents.get(o.uid)?.delete(ref);
    }
    if (next) {
      if (next.metadata.uid) this.uidIndex.set(next.metadata.uid, { bucket, key });
      for (const o of next.metadata.ownerReferences ?? []) {
        let s = this.dependents.get(o.uid);
        if (!s) this.dependents.set(o.uid, (s = new Set()));
        s.add(ref);
      }
    }
  }

  private emit(b: Bucket, e: StoreEvent): void {
    b.history.push(e);
    // trim in batches (a tenth of the limit) so each write stays O(1) amortized
    if (b.history.length > this.historyLimit + Math.max(1, Math.floor(this.historyLimit / 10))) {
      const drop = b.history.length - this.historyLimit;
      b.floor = b.history[drop - 1]!.rv;
      b.history.splice(0, drop);
    }
    for (const l of b.listeners) l(e);
    for (const l of this.globalListeners) l(e);
    this.scheduleSave();
  }

  /**
   * Events of a bucket after `rv`, or null when they are no longer all available (410 Gone).
   */
  eventsSince(bucket: string, rv: number): StoreEvent[] | null {
    const b = this.bucket(bucket);
    if (rv < b.floor) return null;
    // history is sorted by rv: binary search
    let lo = 0;
    let hi = b.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (b.history[mid]!.rv <= rv) lo = mid + 1; else hi = mid;
    }
    return b.history.slice(lo);
  }

  /** Drops history up to `rv` in every bucket (as etcd compaction would). */
  compact(rv: number): void {
    for (const b of this.buckets.values()) {
      b.history = b.history.filter((e) => e.rv > rv);
      b.floor = Math.max(b.floor, rv);
    }
  }

  subscribe(bucket: string, l: Listener): () => void {
    const b = this.bucket(bucket);
    b.listeners.add(l);
    return () => b.listeners.delete(l);
  }

  subscribeAll(l: Listener): () => void {
    this.globalListeners.add(l);
    return () => this.globalListeners.delete(l);
  }

  private scheduleSave(): void {
    if (!this.opts.dataFile || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, 200);
    this.saveTimer.unref();
  }

  /** Writes the snapshot now (atomic rename). */
  save(): void {
    if (!this.opts.dataFile) return;
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = null;
    }
    const buckets: Record<string, Obj[]> = {};
    for (const [name, b] of this.buckets) buckets[name] = [...b.objects.values()];
    const tmp = `${this.opts.dataFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ rv: this.rv, buckets }));
    renameSync(tmp, this.opts.dataFile);
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
