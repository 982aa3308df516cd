import type { Logger } from 'pino';
import { z } from 'zod';
import type { KubernetesObject } from '@kubernetes/client-node';
import { NodeIPAllocation, NodeIPPool, ObjectMeta } from '../crds/api/index.js';
import { describeIssues } from '../crds/api/validation.js';
import type { PoolModeView } from './block-conditions.js';
import type { PoolCandidate } from './select.js';

/** The informers' caches as the reconcilers read them: parsed and validated, an invalid object skipped (and said). */

export const NodeObject = z.looseObject({
  metadata: ObjectMeta,
  spec: z.looseObject({ providerID: z.string().optional() }).optional(),
});
export type NodeObject = z.infer<typeof NodeObject>;

export type Pool = NodeIPPool;
export type Record_ = NodeIPAllocation;

export interface Cache<T> {
  get(name: string): T | undefined;
  list(): T[];
}

export interface Caches {
  nodes: Cache<NodeObject>;
  pools: Cache<Pool>;
  records: Cache<Record_>;
}

/** What a client-node informer offers: the raw objects, by name and all. */
export interface RawStore {
  list(): readonly KubernetesObject[];
  get(name: string): KubernetesObject | undefined;
}

/** Parses cached objects once per version: the same object from the informer is parsed once. */
export function parsedCache<T>(schema: z.ZodType<T>, what: string, store: RawStore, log: Logger): Cache<T> {
  const memo = new WeakMap<object, T | null>();
  const parse = (o: KubernetesObject | undefined): T | undefined => {
    if (!o) return undefined;
    const hit = memo.get(o);
    if (hit !== undefined) return hit ?? undefined;
    const r = schema.safeParse(o);
    if (!r.success) log.warn({ name: o.metadata?.name, problems: describeIssues(r.error) }, `ignoring invalid ${what}`);
    memo.set(o, r.success ? r.data : null);
    return r.success ? r.data : undefined;
  };
  return {
    get: (name) => parse(store.get(name)),
    list: () => store.list().map((o) => parse(o)).filter((x): x is T => x !== undefined),
  };
}

export function parsedCaches(stores: { nodes: RawStore; pools: RawStore; records: RawStore }, log: Logger): Caches {
  return {
    nodes: parsedCache(NodeObject, 'Node', stores.nodes, log),
    pools: parsedCache(NodeIPPool as unknown as z.ZodType<Pool>, 'NodeIPPool', stores.pools, log),
    records: parsedCache(NodeIPAllocation as unknown as z.ZodType<Record_>, 'NodeIPAllocation', stores.records, log),
  };
}

/** Every pool as select.ts weighs it for a node (oldest wins). */
export function poolCandidates(pools: Cache<Pool>): PoolCandidate[] {
  return pools.list().map((p) => ({
    name: p.metadata.name, creationTimestamp: p.metadata.creationTimestamp, selector: p.spec.nodeSelector, deleting: !!p.metadata.deletionTimestamp,
  }));
}

/** Every live pool's allocation mode and subnet, for block-conditions.ts (one mode per subnet). */
export function poolModes(pools: Cache<Pool>): PoolModeView[] {
  return pools.list().filter((p) => !p.metadata.deletionTimestamp).map((p) => ({
    name: p.metadata.name, subnetID: p.spec.subnetID, allocation: p.spec.allocation ?? 'Individual', creationTimestamp: p.metadata.creationTimestamp,
  }));
}
