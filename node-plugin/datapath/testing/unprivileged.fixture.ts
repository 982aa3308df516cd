/**
 * The datapath driven from a separate process, as the agent runs it: unprivileged.test.ts starts this
 * inside a simulated VM's namespace, in a container-like mount namespace with a bounded capability set.
 *
 * Protocol: one JSON request per stdin line, one JSON reply per stdout line, in order.
 *   {"op":"configure","procSysRoot":"/x"} | {"op":"ensureNode","net":{...}} | {"op":"attachPod","net":{...},"pod":{...}}
 *   {"op":"detachPod","net":{...},"ref":{...}} | {"op":"teardownNode","net":{...}} | {"op":"diagnostics","net":{...}}
 *   {"op":"capabilities"}  (this process's effective set, /proc/self/status CapEff)
 * Reply: {"ok":true,"result":...} or {"ok":false,"name":"SysctlError","message":"..."}.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as dp from '../index.js';

type Request =
  | { op: 'configure'; procSysRoot: string }
  | { op: 'ensureNode' | 'teardownNode' | 'diagnostics'; net: dp.NodeNetwork }
  | { op: 'attachPod'; net: dp.NodeNetwork; pod: dp.PodInterface }
  | { op: 'detachPod'; net: dp.NodeNetwork; ref: dp.PodRef }
  | { op: 'capabilities' };

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'configure': dp.configureDatapath({ procSysRoot: req.procSysRoot }); return null;
    case 'ensureNode': return dp.ensureNode(req.net, { force: true });
    case 'attachPod': return dp.attachPod(req.net, req.pod);
    case 'detachPod': return dp.detachPod(req.net, req.ref);
    case 'teardownNode': return dp.teardownNode(req.net);
    case 'diagnostics': return dp.nodeDiagnostics(req.net);
    case 'capabilities': return /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply: unknown;
  try {
    reply = { ok: true, result: (await handle(JSON.parse(line) as Request)) ?? null };
  } catch (e) {
    reply = { ok: false, name: (e as Error).name, message: (e as Error).message };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
process.exit(0);
