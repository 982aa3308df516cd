import type { KubernetesObject } from '@kubernetes/client-node';

/**
 * The informer event filter: of each object, only the state the reconcilers act on (a "mark"); an update
 * whose mark is unchanged costs nothing. Kubelets rewrite their Node every few seconds, and our own status
 * writes come back as updates of pools and records: without this, each would cost a round and an Azure read.
 * One definition per kind, shared by the event handlers and by createRecord, which marks a record it is
 * about to create as served (the two must agree, or the add event costs the node a second round).
 */

type Meta = NonNullable<KubernetesObject['metadata']>;

/** A Node: its labels (pool selection), providerID and deletion; heartbeats and status are ignored. */
export function nodeMark(o: KubernetesObject & { spec?: { providerID?: string } }): string {
  return `${JSON.stringify(Object.entries(o.metadata?.labels ?? {}).sort())}|${o.spec?.providerID ?? ''}|${o.metadata?.deletionTimestamp ?? ''}`;
}

/** A pool: its generation (spec) and deletion; our status writes change neither. */
export function poolMark(meta: Meta | undefined): string {
  return `${meta?.generation}/${meta?.deletionTimestamp ?? ''}`;
}

/** A record: its generation (the agent's spec), deletion and finalizers. */
export function recordMark(meta: Pick<Meta, 'generation' | 'deletionTimestamp' | 'finalizers'> | undefined): string {
  return `${meta?.generation}/${meta?.deletionTimestamp ?? ''}/${(meta?.finalizers ?? []).join(',')}`;
}

export const markKey = {
  node: (name: string) => `nodeobj/${name}`,
  pool: (name: string) => `pool/${name}`,
  record: (name: string) => `record/${name}`,
};

/** The last mark seen per object. */
export class SeenMarks {
  private readonly marks = new Map<string, string>();

  /**
   * Whether this event changes anything we act on; remembers the mark (forgets it on delete). An update
   * with the mark seen last is no change; with `addsToo`, neither is an add (a record this controller
   * created and already served).
   */
  changed(key: string, mark: string, verb: 'add' | 'update' | 'delete', addsToo = false): boolean {
    const same = this.marks.get(key) === mark;
    if (same && (verb === 'update' || (addsToo && verb === 'add'))) return false;
    if (verb === 'delete') this.marks.delete(key);
    else this.marks.set(key, mark);
    return true;
  }

  set(key: string, mark: string): void { this.marks.set(key, mark); }
  delete(key: string): void { this.marks.delete(key); }
}
