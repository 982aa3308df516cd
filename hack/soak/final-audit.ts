/**
 * The end of the soak: once every pod is deleted the system must settle (checkSettled: each NIC back at
 * the pool minimum, no demand, nothing left in an agent's state or a VM's kernel) within `timeoutMs`.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { checkSettled, type Violation } from './invariants.js';
import { agentState, ipOwners, kernelView, recordDemand } from './observe.js';
import { sleep } from './pods.js';

/** Polls every second from the last DEL; `settleMs` is when every final invariant held, `left` what still did not at the deadline. */
export async function awaitSettled(sandbox: Sandbox, o: { poolMinimum: number; timeoutMs: number }): Promise<{ settleMs?: number; left: Violation[] }> {
  const lastDel = Date.now();
  let left: Violation[] = [];
  while (Date.now() - lastDel <= o.timeoutMs) {
    const [agents, kernel] = await Promise.all([
      Promise.all(sandbox.nodes.map((n) => agentState(n))),
      Promise.all(sandbox.nodes.map((n) => kernelView(sandbox, n))),
    ]);
    const owners = ipOwners(sandbox);
    left = checkSettled({
      nodes: sandbox.nodes.map((n) => n.name), poolMinimum: o.poolMinimum, nicIPs: owners.secondaryCount,
      demand: (n) => recordDemand(sandbox, n), agents, kernel,
    });
    if (!left.length) return { settleMs: Date.now() - lastDel, left };
    await sleep(1000);
  }
  return { left };
}
