/**
 * Reads the world the invariants are about, from where each truth lives: the agents' state files, Azure's
 * state (the emulator, in-process), the records (the API emulator's store, in-process: API faults the soak
 * injects must not blind its own observation) and each simulated VM's kernel (one shell per node).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Sandbox, SandboxNode } from '../sandbox/sandbox.js';
import type { AgentStateView, KernelView } from './invariants.js';

const BRIDGE = 'podvnet0';
const SECTION = '@@podvnet-soak@@';

export async function agentState(node: SandboxNode): Promise<AgentStateView> {
  try {
    const raw = JSON.parse(await readFile(path.join(node.stateDir, 'allocations.json'), 'utf8')) as { allocations?: Array<{ containerId: string; ip: string }> };
    return { node: node.name, allocations: (raw.allocations ?? []).map((a) => ({ containerId: a.containerId, ip: a.ip })) };
  } catch {
    return { node: node.name, allocations: undefined };
  }
}

/** One `sh` in the VM's namespace prints every table the invariants look at. */
export async function kernelView(sandbox: Sandbox, node: SandboxNode): Promise<KernelView> {
  const script = [
    'ip -j link show type veth', `echo ${SECTION}`,
    `ip -j route show dev ${BRIDGE} 2>/dev/null`, `echo ${SECTION}`,
    `ip -j neigh show dev ${BRIDGE} 2>/dev/null`, `echo ${SECTION}`,
    'iptables -t raw -S PODVNET-SRC 2>/dev/null', `echo ${SECTION}`,
    'ebtables -L 2>/dev/null; ebtables -t nat -L 2>/dev/null', 'true',
  ].join('\n');
  const r = await sandbox.fabric.execRaw(node.vm.netns, ['sh', '-c', script]);
  const [links = '', routes = '', neigh = '', rules = '', eb = ''] = r.stdout.split(`${SECTION}\n`);
  const json = <T>(s: string): T[] => (s.trim() ? JSON.parse(s) as T[] : []);
  const veths = json<{ ifname: string }>(links).map((l) => l.ifname).filter((n) => n.startsWith('pvn'));
  const podRoutes = json<{ dst: string }>(routes).map((x) => x.dst).filter((d) => d !== 'default' && !d.includes('/'));
  const neighbours = json<{ dst: string; lladdr?: string; state?: string[] }>(neigh)
    .map((n) => ({ ip: n.dst, ...(n.lladdr ? { mac: n.lladdr } : {}), permanent: (n.state ?? []).includes('PERMANENT') }));
  const antispoofRules = rules.split('\n').filter((l) => l.startsWith('-A PODVNET-SRC'));
  const ebtablesRules = eb.split('\n').filter((l) => /pvn[0-9a-f]{11}|10\.240\./.test(l));
  return { node: node.name, veths, podRoutes, neighbours, antispoofRules, ebtablesRules };
}

/** Which node's NIC holds each IP as a secondary ip-config, in Azure's state. */
export function ipOwners(sandbox: Sandbox): { ownerOf: (ip: string) => string | undefined; secondaryCount: (node: string) => number } {
  const owners = sandbox.azure.ipOwners().filter((o) => !o.primary);
  const byIP = new Map(owners.map((o) => [o.ip, o.nodeName]));
  return {
    ownerOf: (ip) => byIP.get(ip) ?? undefined,
    secondaryCount: (node) => owners.filter((o) => o.nodeName === node).length,
  };
}

/** The node's record's spec.demand as the API server stores it. */
export function recordDemand(sandbox: Sandbox, node: string): { usedIPs?: number; pendingIPs?: number } | undefined {
  return sandbox.kube.store.get('podvnet.io/nodeipallocations', node)?.spec?.demand;
}
