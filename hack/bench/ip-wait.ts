// How long a node waits for more IPs after Azure faults: from the agent raising its demand (one more pod
// than the pool holds) to the new ip-configs being on the NIC and in the record's status, which is when
// the node's next ADD can succeed. The real controller against the Azure and Kubernetes API emulators;
// the agent's part (the spec write) is played by the harness, so the agent's own delay (its sync
// interval) is measured separately, with the real CoalescingWriter.
//
// Each fault scenario runs with the controller as configured before issue 10 (work-queue backoff doubling
// from 200 ms with no cap for transient failures) and as now (transientRetryMaxMs), in the same run.
// Run: node --loader ts-node/esm hack/bench/ip-wait.ts [--rounds 3] [--poll-interval-ms 1000]
import { parseArgs } from 'node:util';
import { startWorld, waitFor } from '../../controllers/testing/harness.js';
import { DEFAULT_CONTROLLER_OPTIONS, type ControllerOptions } from '../../controllers/controller.js';
import type { FaultRuleInput, EmulatorConfigPatch } from '../azure-emulator/index.js';
import { CoalescingWriter } from '../../node-plugin/agent/sync.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'poll-interval-ms': { type: 'string', default: '1000' } } });
const rounds = Number(values.rounds);
const pollIntervalMs = Number(values['poll-interval-ms']);

interface Scenario {
  name: string;
  faults: FaultRuleInput[];
  azure?: EmulatorConfigPatch;
}

const put = { kind: 'nic.put' };
const scenarios: Scenario[] = [
  { name: 'no fault', faults: [] },
  { name: '5xx x4 on the NIC PUT', faults: [{ ...put, count: 4, status: 500, code: 'InternalServerError' }] },
  { name: '503 x6 on the NIC PUT', faults: [{ ...put, count: 6, status: 503, code: 'ServiceUnavailable' }] },
  { name: 'failed LRO x4', faults: [{ ...put, count: 4, as: 'operation', code: 'InternalServerError' }], azure: { mode: 'async', asyncDurationMs: 100 } },
  { name: '429 Retry-After 1 s x2', faults: [{ ...put, count: 2, status: 429, code: 'TooManyRequests', retryAfterSeconds: 1 }] },
  { name: '412 x3', faults: [{ ...put, count: 3, status: 412, code: 'PreconditionFailed' }] },
  { name: 'slow LRO (400 ms, Retry-After 1 s)', faults: [], azure: { mode: 'async', asyncDurationMs: 400, asyncRetryAfterSeconds: 1 } },
  { name: 'slow LRO (400 ms, no Retry-After)', faults: [], azure: { mode: 'async', asyncDurationMs: 400, asyncRetryAfterSeconds: 0 } },
];

const before: Partial<ControllerOptions> = { retryBaseMs: DEFAULT_CONTROLLER_OPTIONS.retryBaseMs, transientRetryMaxMs: 300_000 };
const now: Partial<ControllerOptions> = { retryBaseMs: DEFAULT_CONTROLLER_OPTIONS.retryBaseMs, transientRetryMaxMs: DEFAULT_CONTROLLER_OPTIONS.transientRetryMaxMs };

async function waitForIPs(s: Scenario, controller: Partial<ControllerOptions>): Promise<number> {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }), controller, pollIntervalMs, azureConfig: { throttling: { enabled: false } } });
  try {
    const subnet = Object.values(w.subnets)[0]!;
    await w.createPool('a', { nodeSelector: { matchLabels: { pool: 'a' } }, subnetID: subnet, ipsPerNode: { min: 8, max: 64 }, scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } });
    const node = w.nodes[0]!.nodeName;
    await waitFor('the pool minimum', async () => (await w.record(node))?.status?.ips.length === 8, 60_000);
    if (s.azure) w.azure.configure(s.azure);
    for (const f of s.faults) w.azure.injectFault(f);
    const started = performance.now();
    await w.setDemand(node, 8, 1); // every IP in use, one pod waiting
    await waitFor('the next batch in status', async () => ((await w.record(node))?.status?.ips.length ?? 0) >= 16, 120_000, 10);
    return performance.now() - started;
  } finally {
    await w.close();
  }
}

/** The agent's part: from a pod finding no IP (demand raised) to the spec write, at a 1 s sync interval. */
async function agentDelay(demandRaised: boolean): Promise<number[]> {
  const out: number[] = [];
  let pending = 0;
  let resolveWrite: (() => void) | undefined;
  const writer = new CoalescingWriter({
    minIntervalMs: 1000,
    desired: async () => ({ demand: { usedIPs: 8, pendingIPs: pending }, releasedIPs: [] }),
    write: async () => resolveWrite?.(),
  });
  writer.poke();
  for (let i = 1; i <= rounds; i++) {
    await new Promise((r) => setTimeout(r, 200)); // a pod arrives 200 ms after the last write
    pending = i;
    const t = performance.now();
    const written = new Promise<void>((r) => (resolveWrite = r));
    writer.poke(demandRaised ? { demandRaised } : {}); // before issue 10: a plain poke
    await written;
    out.push(performance.now() - t);
  }
  writer.stop();
  return out;
}

const fmt = (xs: number[]) => `median ${Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!)} ms, max ${Math.round(Math.max(...xs))} ms`;
console.log(`controller LRO polling (when Azure sends no Retry-After): ${pollIntervalMs} ms; rounds: ${rounds}`);
console.log(`agent: demand raised -> spec written (sync interval 1000 ms)  before: ${fmt(await agentDelay(false))}  now: ${fmt(await agentDelay(true))}`);
for (const s of scenarios) {
  const b: number[] = [];
  const n: number[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(await waitForIPs(s, before));
    n.push(await waitForIPs(s, now));
  }
  console.log(`${s.name.padEnd(38)} before: ${fmt(b).padEnd(28)} now: ${fmt(n)}`);
}
