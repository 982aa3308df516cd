import type { Condition } from '../crds/api/common.js';

/** metav1.Condition bookkeeping: lastTransitionTime moves only when the status does. */
export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function setCondition(current: readonly Condition[] | undefined, next: ConditionInput, now: string, observedGeneration?: number): Condition[] {
  const list = [...(current ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const old = i >= 0 ? list[i] : undefined;
  const cond: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message.slice(0, 32768),
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : now,
  };
  if (observedGeneration !== undefined) cond.observedGeneration = observedGeneration;
  if (i >= 0) list[i] = cond;
  else list.push(cond);
  return list;
}

export function setConditions(current: readonly Condition[] | undefined, next: readonly ConditionInput[], now: string, generation?: number): Condition[] {
  let list = [...(current ?? [])];
  for (const c of next) list = setCondition(list, c, now, generation);
  return list;
}

export function conditionOf(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

/** What one node record contributes to its pool's status. */
export interface RecordSummary {
  name: string;
  allocated: number;
  used: number;
  released: number;
  ready: boolean;
  /** Reason of the record's Ready condition when not ready. */
  reason?: string | undefined;
}

export interface PoolSummaryInput {
  records: readonly RecordSummary[];
  /** Nodes the pool's selector matches that an older pool serves. */
  lostNodes: readonly { node: string; winner: string }[];
  subnetExhausted?: { message: string; reason?: string | undefined } | undefined;
}

export interface PoolSummary {
  nodes: number;
  allocatedIPs: number;
  usedIPs: number;
  releasedIPs: number;
  conditions: ConditionInput[];
}

const listSome = (names: readonly string[], n = 5): string =>
  names.slice(0, n).join(', ') + (names.length > n ? ` and ${names.length - n} more` : '');

export function summarizePool(input: PoolSummaryInput): PoolSummary {
  const { records } = input;
  const sum = (f: (r: RecordSummary) => number) => records.reduce((a, r) => a + f(r), 0);
  const notReady = records.filter((r) => !r.ready);
  const reasons = [...new Set(notReady.map((r) => r.reason ?? 'Unknown'))].sort();

  const ready: ConditionInput = notReady.length === 0
    ? { type: 'Ready', status: 'True', reason: records.length ? 'AllNodesReady' : 'NoNodes', message: `${records.length} node(s) have the IPs their demand asks for` }
    : { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: `${notReady.length} of ${records.length} node(s) not ready (${reasons.join(', ')}): ${listSome(notReady.map((r) => r.name))}` };

  const exhausted: ConditionInput = input.subnetExhausted
    ? { type: 'SubnetExhausted', status: 'True', reason: input.subnetExhausted.reason ?? 'SubnetIsFull', message: input.subnetExhausted.message }
    : { type: 'SubnetExhausted', status: 'False', reason: 'SubnetHasRoom', message: 'Azure accepted the last IP additions in this subnet' };

  const problems: string[] = [];
  if (input.lostNodes.length) {
    problems.push(`${input.lostNodes.length} selected node(s) belong to an older pool: ${listSome(input.lostNodes.map((l) => `${l.node} (${l.winner})`))}`);
  }
  const broken = notReady.filter((r) => r.reason === 'NICNotFound' || r.reason === 'InvalidProviderID');
  if (broken.length) problems.push(`${broken.length} node(s) have no usable NIC: ${listSome(broken.map((r) => r.name))}`);
  const refused = notReady.filter((r) => r.reason === 'SubnetNotAllowedOnNIC');
  if (refused.length) {
    problems.push(`${refused.length} node(s) have a NIC that cannot hold ip-configs of the pool's subnet next to its own (use the nodes' subnet, or a subscription that allows several subnets per NIC): ${listSome(refused.map((r) => r.name))}`);
  }
  const degradedReason = input.lostNodes.length ? 'OverlappingPools' : broken.length ? 'NodesWithoutNIC' : 'SubnetNotAllowedOnNIC';
  const degraded: ConditionInput = problems.length
    ? { type: 'Degraded', status: 'True', reason: degradedReason, message: problems.join('; ') }
    : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no overlapping pools, every node has a NIC' };

  return {
    nodes: records.length,
    allocatedIPs: sum((r) => r.allocated),
    usedIPs: sum((r) => r.used),
    releasedIPs: sum((r) => r.released),
    conditions: [ready, exhausted, degraded],
  };
}

/** `<vnet>/<subnet>` of a subnet's ARM id, for printing (the full id stays in spec.subnetID). */
export function subnetDisplayName(id: string): string {
  const m = /\/virtualNetworks\/([^/]+)\/subnets\/([^/]+)\/?$/i.exec(id);
  return m ? `${m[1]}/${m[2]}` : id;
}

/** Whether two statuses say the same (key order and undefined fields aside): then no status write is due. */
export function sameStatus(a: unknown, b: unknown): boolean {
  return stableJson(a) === stableJson(b);
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).filter(([, y]) => y !== undefined).sort(([p], [q]) => (p < q ? -1 : 1))) : x));
}
