import { API_GROUP_VERSION } from '../crds/api/index.js';
import type { NodeNic } from './azure.js';
import type { Pool, Record_ } from './caches.js';
import type { EventRecorder, Regarding } from './events.js';
import { poolIpConfigs } from './plan.js';

type Regardable = { metadata: { name: string; uid?: string | undefined }; kind?: string };

/** The Events the reconcilers tell, about pools and records; events.ts decides how repeats and bursts fold. */
export class ReconcileEvents {
  constructor(private readonly recorder: EventRecorder) {}

  /** A Warning about a pool or record; repeats are counted in one event's series. */
  warning(obj: Regardable, reason: string, action: string, note: string): void {
    this.recorder.record(regardingOf(obj), { type: 'Warning', reason, action, note });
  }

  /** A NIC write Azure accepted: a Normal event on the record and the pool, folded with the writes around it. */
  nicChanged(record: Record_, pool: Pool | undefined, before: NodeNic, after: NodeNic, added: number, removed: number, started: number): void {
    const subnetId = pool?.spec.subnetID ?? record.status?.subnet?.id ?? '';
    const count = (n: NodeNic) => poolIpConfigs(n.ipConfigs, subnetId).length;
    this.recorder.nicChanged(regardingOf(record), pool && regardingOf(pool), {
      node: record.metadata.name, before: count(before), after: count(after), added, removed, azureMs: Date.now() - started,
      ...(pool?.spec.allocation === 'Block' ? { unit: 'block' as const } : {}),
    });
  }

  flush(): Promise<void> { return this.recorder.flush(); }
}

function regardingOf(obj: Regardable): Regarding {
  return { apiVersion: API_GROUP_VERSION, kind: obj.kind ?? 'NodeIPAllocation', name: obj.metadata.name, uid: obj.metadata.uid };
}
