/**
 * The faults the soak throws at the system, each as real components meet it: processes crash (SIGKILL)
 * and come back; the API server drops watches, compacts its history (410 Gone), answers 5xx/429,
 * restarts; Azure answers 429 storms, 5xx, 412, fails or slows its long-running operations, and says
 * SubnetIsFull. Azure's and the API server's faults use the emulators' own fault injection, shaped as
 * the real services answer.
 */
import type { Sandbox, SandboxProcess } from '../sandbox/sandbox.js';
import type { Prng } from './prng.js';

export const FAULT_KINDS = [
  'agent-kill', 'controller-kill',
  'kube-drop-watches', 'kube-compact', 'kube-5xx', 'kube-429', 'kube-restart',
  'azure-429-storm', 'azure-5xx', 'azure-412', 'azure-lro-failed', 'azure-lro-slow', 'azure-subnet-full',
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

/** The NIC writes: a standalone VM's NIC PUT and a scale-set instance's VM PUT. */
const NIC_WRITES = ['nic.put', 'vmssvm.put'] as const;

export interface FaultEpisode {
  kind: FaultKind;
  /** What was done, for the log (which node, how long, how many requests). */
  what: string;
  /** The node it hit, for a fault on one node (an agent crash). */
  node?: string;
  startedAt: number;
  endedAt?: number;
  /** A crash: when the restarted process said it serves again ("controller started", "agent started"). */
  servingAt?: number;
}

/** What a fault's run gets: the sandbox, the faults' seeded stream, the soak's sleep, its episode to describe. */
interface FaultRun {
  sandbox: Sandbox;
  rng: Prng;
  sleep: (ms: number) => Promise<void>;
  ep: FaultEpisode;
}

type AzureFault = Parameters<Sandbox['azure']['injectFault']>[0];

/**
 * Each fault as it is done and undone, drawing its parameters from the stream in a fixed order (so a
 * seed replays it). Crashes end at the restart, outages when over; count-based Azure faults are
 * episodes (azureEpisode) cleared after a while.
 */
const FAULTS: Record<FaultKind, (f: FaultRun) => Promise<void>> = {
  'agent-kill': async ({ sandbox, rng, sleep, ep }) => {
    const node = rng.pick(sandbox.nodes);
    const down = rng.int(300, 4000);
    ep.what = `SIGKILL the agent of ${node.name}, restart after ${down} ms`;
    ep.node = node.name;
    await crash(node.agent, down, sleep, 'agent started', ep);
  },
  'controller-kill': async ({ sandbox, rng, sleep, ep }) => {
    const down = rng.int(300, 4000);
    ep.what = `SIGKILL the controller, restart after ${down} ms`;
    await crash(sandbox.controller, down, sleep, 'controller started', ep);
  },
  'kube-drop-watches': async ({ sandbox, ep }) => {
    ep.what = 'the API server ends every watch';
    sandbox.kube.dropWatches();
  },
  'kube-compact': async ({ sandbox: { kube }, ep }) => {
    ep.what = 'the API server compacts its history (watches from older versions get 410 Gone) and ends every watch';
    kube.store.compact(kube.store.currentRV());
    kube.dropWatches();
  },
  'kube-5xx': async ({ sandbox, rng, sleep, ep }) => {
    const ms = rng.int(500, 4000);
    const code = rng.pick([500, 503, 504]);
    ep.what = `the API server answers ${code} to everything for ${ms} ms`;
    sandbox.kube.injectFault({ code, forMs: ms });
    await sleep(ms);
  },
  'kube-429': async ({ sandbox, rng, sleep, ep }) => {
    const ms = rng.int(500, 3000);
    ep.what = `the API server answers 429 (Retry-After: 1) to everything for ${ms} ms`;
    sandbox.kube.injectFault({ code: 429, retryAfterSeconds: 1, message: 'Too many requests, please try again later.', forMs: ms });
    await sleep(ms);
  },
  'kube-restart': async ({ sandbox, rng, sleep, ep }) => {
    const ms = rng.int(500, 4000);
    ep.what = `the API server restarts: watches dropped, history compacted, 503 for ${ms} ms`;
    sandbox.kube.restart(ms);
    await sleep(ms);
  },
  'azure-429-storm': (f) => {
    const count = f.rng.int(10, 60);
    return azureEpisode(f, `Azure answers ${count} requests with 429 SubscriptionRequestsThrottled (Retry-After: 1)`, {
      kind: '*', count, status: 429, code: 'SubscriptionRequestsThrottled', retryAfterSeconds: 1,
      message: "Number of 'write' requests for subscription actor exceeded. Please try again after '1' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
    });
  },
  'azure-5xx': (f) => {
    const count = f.rng.int(2, 12);
    const status = f.rng.pick([500, 502, 503]);
    const code = status === 500 ? 'InternalServerError' : status === 502 ? 'BadGateway' : 'ServiceUnavailable';
    return azureEpisode(f, `Azure answers ${count} requests with ${status} ${code}`,
      { kind: '*', count, status, code, message: 'The server encountered an internal error. Please retry the request.' });
  },
  'azure-412': (f) => {
    const count = f.rng.int(1, 4);
    const which = f.rng.pick(NIC_WRITES);
    return azureEpisode(f, `Azure answers ${count} ${which} with 412 PreconditionFailed (another writer changed the ETag)`,
      { kind: which, count, status: 412, code: 'PreconditionFailed', message: 'The condition specified using HTTP conditional header(s) is not met.' });
  },
  'azure-lro-failed': (f) => {
    const count = f.rng.int(1, 3);
    const which = f.rng.pick(NIC_WRITES);
    const code = f.rng.pick(['InternalServerError', 'AnotherOperationInProgress']);
    return azureEpisode(f, `Azure accepts ${count} ${which} and fails the long-running operation with ${code}`,
      { kind: which, as: 'operation', count, status: code === 'InternalServerError' ? 500 : 409, code, message: code === 'InternalServerError' ? 'An internal error occurred in the operation.' : 'Another operation on this or dependent resource is in progress.' });
  },
  'azure-lro-slow': async ({ sandbox: { azure }, rng, sleep, ep }) => {
    const ms = rng.int(1500, 6000);
    ep.what = `Azure's writes become long-running operations taking ${ms} ms`;
    azure.configure({ mode: 'async', asyncDurationMs: ms });
    await sleep(rng.int(3000, 8000));
    azure.configure({ mode: 'sync' });
  },
  'azure-subnet-full': (f) => {
    const count = f.rng.int(1, 6);
    const which = f.rng.pick(NIC_WRITES);
    return azureEpisode(f, `Azure answers ${count} ${which} with 400 SubnetIsFull`,
      { kind: which, count, status: 400, code: 'SubnetIsFull', message: `Subnet nodes with address prefix ${f.sandbox.podSubnet} does not have enough capacity for 8 IP addresses.` });
  },
};

/** A count-based Azure fault: left in place for a while, then whatever was not used up is cleared. */
async function azureEpisode({ sandbox: { azure }, rng, sleep, ep }: FaultRun, what: string, fault: AzureFault): Promise<void> {
  ep.what = what;
  azure.injectFault(fault);
  await sleep(rng.int(3000, 8000));
  azure.clearFaults();
}

/**
 * Runs one fault to its end (a crashed process restarted, an outage over, injected Azure faults
 * cleared). Azure faults are episodes: only one at a time (the scheduler's `azureBusy`), ended with clearFaults.
 */
export function runFault(sandbox: Sandbox, kind: FaultKind, rng: Prng, sleep: (ms: number) => Promise<void>, ep: FaultEpisode): Promise<void> {
  return FAULTS[kind]({ sandbox, rng, sleep, ep });
}

/** Processes crashed and not yet back: a second crash of the same one waits for the first to end. */
const crashing = new Map<SandboxProcess, Promise<void>>();

async function crash(p: SandboxProcess, downMs: number, sleep: (ms: number) => Promise<void>, servingLine: string, ep: FaultEpisode): Promise<void> {
  while (crashing.has(p)) await crashing.get(p);
  const run = (async () => {
    await p.kill('SIGKILL');
    await sleep(downMs);
    p.start();
    // its start-up, for the summary: the fault ends at the restart, the process serves some time later
    let seen = '';
    const out = p.child.stdout;
    const scan = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (seen.includes(`"msg":"${servingLine}"`)) {
        ep.servingAt = Date.now();
        out?.off('data', scan);
      }
    };
    out?.on('data', scan);
  })();
  crashing.set(p, run);
  try { await run; } finally { crashing.delete(p); }
}

/**
 * The next fault: a class first (process crash, API server, Azure: a third each), then a kind in it, so a
 * class with many kinds is not drawn more often; a class with an episode under way gives way to crashes.
 */
export function pickFault(rng: Prng, azureBusy: boolean, kubeBusy: boolean): FaultKind {
  let cls = rng.pick(['process', 'kube', 'azure'] as const);
  if ((cls === 'azure' && azureBusy) || (cls === 'kube' && kubeBusy)) cls = 'process';
  const kinds = FAULT_KINDS.filter((k) => (cls === 'azure' ? isAzureFault(k) : cls === 'kube' ? isKubeFault(k) : !isAzureFault(k) && !isKubeFault(k)));
  return rng.pick(kinds);
}

export const isAzureFault = (k: FaultKind): boolean => k.startsWith('azure-');
export const isKubeFault = (k: FaultKind): boolean => k.startsWith('kube-');
