/**
 * The soak's invariants as plain functions of what was observed: no I/O here, so each is tested on its
 * own (invariants.test.ts) and the soak only gathers snapshots (observe.ts) and calls these.
 */

export type ViolationKind =
  | 'duplicate-ip' | 'ip-not-on-nic' | 'agent-state-missing-pod' | 'antispoof-rule-missing' | 'antispoof-neighbour-missing'
  | 'ping-failed' | 'add-bad-failure' | 'add-hang' | 'add-never-succeeded' | 'del-failed' | 'del-hang'
  | 'nic-not-at-minimum' | 'demand-not-zero' | 'agent-state-not-empty'
  | 'leftover-veth' | 'leftover-route' | 'leftover-neighbour' | 'leftover-iptables-rule' | 'leftover-ebtables-rule';

export interface Violation {
  kind: ViolationKind;
  detail: string;
}

/** A pod the soak holds as running: its ADD succeeded and no DEL has started. */
export interface LivePod {
  name: string;
  containerId: string;
  node: string;
  ip: string;
  /** Host-side veth (datapath names.ts: from containerId and ifName). */
  veth: string;
  /** The pod's MAC, which the node's permanent neighbour entry for its IP must carry. */
  mac: string;
}

export interface AgentStateView {
  node: string;
  /** Unreadable state (missing file, agent never started) is reported as undefined allocations. */
  allocations: Array<{ containerId: string; ip: string }> | undefined;
}

export interface KernelView {
  node: string;
  /** Host-side pod veths (name starts with pvn). */
  veths: string[];
  /** Destinations of /32 routes on the pods' bridge. */
  podRoutes: string[];
  /** Neighbour entries on the pods' bridge. */
  neighbours: Array<{ ip: string; mac?: string; permanent: boolean }>;
  /** The anti-spoofing chain's rules as `iptables -S` prints them (`-A PODVNET-SRC ...` lines only). */
  antispoofRules: string[];
  /** ebtables rules that mention a pod veth or a pod IP (the datapath makes none; any is a leftover). */
  ebtablesRules: string[];
}

/** Invariants that hold at every moment while pods come and go. */
export function checkLive(input: {
  pods: readonly LivePod[];
  agents: readonly AgentStateView[];
  /** Azure's view: which node's NIC holds each IP as an ip-config. */
  ipOwner: (ip: string) => string | undefined;
  kernel: readonly KernelView[];
}): Violation[] {
  const out: Violation[] = [];
  const byIP = new Map<string, LivePod[]>();
  for (const p of input.pods) byIP.set(p.ip, [...(byIP.get(p.ip) ?? []), p]);
  for (const [ip, holders] of byIP) {
    if (holders.length > 1) out.push({ kind: 'duplicate-ip', detail: `${ip} is held by ${holders.length} live pods: ${holders.map((p) => `${p.name} on ${p.node}`).join(', ')}` });
  }
  for (const a of input.agents) {
    const seen = new Map<string, string>();
    for (const al of a.allocations ?? []) {
      const other = seen.get(al.ip);
      if (other !== undefined && other !== al.containerId) out.push({ kind: 'duplicate-ip', detail: `${a.node}: the agent's state allocates ${al.ip} to both ${other} and ${al.containerId}` });
      seen.set(al.ip, al.containerId);
    }
  }
  const agentOf = new Map(input.agents.map((a) => [a.node, a]));
  const kernelOf = new Map(input.kernel.map((k) => [k.node, k]));
  for (const p of input.pods) {
    const owner = input.ipOwner(p.ip);
    if (owner !== p.node) out.push({ kind: 'ip-not-on-nic', detail: `${p.name} on ${p.node} has ${p.ip}, which Azure has ${owner ? `on ${owner}'s NIC` : 'on no NIC'}` });
    const allocations = agentOf.get(p.node)?.allocations;
    if (allocations && !allocations.some((al) => al.containerId === p.containerId && al.ip === p.ip)) {
      out.push({ kind: 'agent-state-missing-pod', detail: `${p.node}: the agent's state has no allocation of ${p.ip} for ${p.name} (${p.containerId})` });
    }
    const k = kernelOf.get(p.node);
    if (!k) continue;
    if (!k.antispoofRules.some((r) => ruleGuards(r, p.veth, p.ip))) {
      out.push({ kind: 'antispoof-rule-missing', detail: `${p.node}: no PODVNET-SRC rule drops what ${p.name}'s ${p.veth} sends from other than ${p.ip}` });
    }
    const n = k.neighbours.find((x) => x.ip === p.ip);
    if (!n || !n.permanent || n.mac?.toLowerCase() !== p.mac.toLowerCase()) {
      const is = n ? `${n.permanent ? 'permanent' : 'not permanent'}, ${n.mac ? `with ${n.mac}` : 'with no MAC'}` : 'missing';
      out.push({ kind: 'antispoof-neighbour-missing', detail: `${p.node}: the neighbour entry for ${p.name}'s ${p.ip} on the bridge is ${is}; it must be permanent with ${p.mac}` });
    }
  }
  return out;
}

/** `-A PODVNET-SRC -m physdev --physdev-in pvn… ! -s 10.240.0.7/32 -j DROP` for this veth and IP. */
export function ruleGuards(rule: string, veth: string, ip: string): boolean {
  const words = rule.split(/\s+/);
  const i = words.indexOf('--physdev-in');
  const s = words.indexOf('-s');
  return i >= 0 && words[i + 1] === veth && s > 0 && words[s - 1] === '!' && (words[s + 1] === `${ip}/32` || words[s + 1] === ip) && words.includes('DROP');
}

/** What must hold once every pod is gone and the system has settled. */
export function checkSettled(input: {
  nodes: readonly string[];
  poolMinimum: number;
  /** Secondary ip-configs on each node's NIC, in Azure's state. */
  nicIPs: (node: string) => number;
  demand: (node: string) => { usedIPs?: number; pendingIPs?: number } | undefined;
  agents: readonly AgentStateView[];
  kernel: readonly KernelView[];
}): Violation[] {
  const out: Violation[] = [];
  for (const node of input.nodes) {
    const n = input.nicIPs(node);
    if (n !== input.poolMinimum) out.push({ kind: 'nic-not-at-minimum', detail: `${node}: the NIC holds ${n} PodVNet ip-configs; the pool minimum is ${input.poolMinimum}` });
    const d = input.demand(node);
    if ((d?.usedIPs ?? 0) !== 0 || (d?.pendingIPs ?? 0) !== 0) {
      out.push({ kind: 'demand-not-zero', detail: `${node}: the record's demand is usedIPs ${d?.usedIPs ?? 0}, pendingIPs ${d?.pendingIPs ?? 0} with no pod on the node` });
    }
  }
  for (const a of input.agents) {
    if (a.allocations === undefined) out.push({ kind: 'agent-state-not-empty', detail: `${a.node}: the agent's state could not be read` });
    else if (a.allocations.length) out.push({ kind: 'agent-state-not-empty', detail: `${a.node}: the agent's state still allocates ${a.allocations.map((x) => `${x.ip} to ${x.containerId}`).join(', ')}` });
  }
  for (const k of input.kernel) {
    if (k.veths.length) out.push({ kind: 'leftover-veth', detail: `${k.node}: pod veths left: ${k.veths.join(', ')}` });
    if (k.podRoutes.length) out.push({ kind: 'leftover-route', detail: `${k.node}: pod routes left on the bridge: ${k.podRoutes.join(', ')}` });
    if (k.neighbours.length) out.push({ kind: 'leftover-neighbour', detail: `${k.node}: neighbour entries left on the bridge: ${k.neighbours.map((x) => `${x.ip}${x.permanent ? ' (permanent)' : ''}`).join(', ')}` });
    if (k.antispoofRules.length) out.push({ kind: 'leftover-iptables-rule', detail: `${k.node}: anti-spoofing rules left: ${k.antispoofRules.join(' | ')}` });
    if (k.ebtablesRules.length) out.push({ kind: 'leftover-ebtables-rule', detail: `${k.node}: ebtables rules left: ${k.ebtablesRules.join(' | ')}` });
  }
  return out;
}

export type CniOutcome = { kind: 'ok'; ip?: string } | { kind: 'try-again'; msg: string } | { kind: 'failed'; code?: number; msg: string } | { kind: 'hang' };

/** A CNI call's result as the runtime sees it. A plugin killed at its deadline exits 137 (timeout -s KILL). */
export function cniOutcome(call: { code: number; stdout: string; stderr: string; json?: unknown }): CniOutcome {
  if (call.code === 137) return { kind: 'hang' };
  const j = (call.json ?? {}) as { code?: unknown; msg?: unknown; details?: unknown; ips?: Array<{ address?: unknown }> };
  if (call.code === 0) {
    const addr = j.ips?.[0]?.address;
    return { kind: 'ok', ...(typeof addr === 'string' ? { ip: addr.split('/')[0] } : {}) };
  }
  const msg = [j.msg, j.details].filter((x) => typeof x === 'string' && x).join(': ') || call.stdout.trim() || call.stderr.trim();
  if (j.code === 11 && typeof j.msg === 'string' && j.msg.trim()) return { kind: 'try-again', msg };
  return { kind: 'failed', ...(typeof j.code === 'number' ? { code: j.code } : {}), msg: msg || `exit ${call.code} with no message` };
}

/** The p-th percentile (0..100) by nearest rank; undefined for no samples. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (!samples.length) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}
