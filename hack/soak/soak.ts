/**
 * The whole-system soak: random pod churn with bursts on the sandbox (emulated Azure and API server, the
 * real controller, real agents, the real C forwarder into pod namespaces on a simulated VNet), faults at
 * random times (faults.ts), invariants checked all along and once everything is deleted (invariants.ts).
 * Seeded: the workload's and the faults' choices replay from the seed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Sandbox, type SandboxNode } from '../sandbox/sandbox.js';
import { hostVethName, podMACs } from '../../node-plugin/datapath/names.js';
import { ping } from '../../node-plugin/datapath/testing/testkit.js';
import { isAzureFault, isKubeFault, pickFault, runFault, type FaultEpisode, type FaultKind } from './faults.js';
import { checkLive, checkSettled, cniOutcome, percentile, type LivePod, type Violation, type ViolationKind } from './invariants.js';
import { agentState, ipOwners, kernelView, recordDemand } from './observe.js';
import { Prng } from './prng.js';
import { attributeWait, startUps, type AttributedWait, type IpWait } from './waits.js';

const execFileP = promisify(execFile);

export interface SoakOptions {
  seed: number;
  durationMs: number;
  /** Faults on (default) or churn alone. */
  faults?: boolean;
  /** Mean time between two faults. */
  meanFaultGapMs?: number;
  /** After the last DEL, how long the system has to settle (NICs at the pool minimum, nothing left). */
  settleTimeoutMs?: number;
  checkIntervalMs?: number;
  /** A CNI call running longer than this is a hang (the plugin is killed at it). */
  cniDeadlineMs?: number;
  /** A pod that got no IP for this long is given up (a violation). */
  addGiveUpMs?: number;
  vms?: number;
  scaleSetInstances?: number;
  poolMinimum?: number;
  poolMaximum?: number;
  batchSize?: number;
  /** Pods per node at most (below the pool maximum, so every pod can get an IP). */
  maxPodsPerNode?: number;
  log?: (line: string) => void;
  /**
   * Runs once, `atMs` into the churn, with the soak's view: for tests that plant a corruption and
   * assert the soak names it.
   */
  plant?: { atMs: number; run: (soak: SoakView) => Promise<void> };
}

export interface SoakView {
  sandbox: Sandbox;
  livePods(): LivePod[];
  /** Resolves after the next completed invariant check. */
  nextCheck(): Promise<void>;
}

export interface TimedViolation extends Violation { atMs: number }

export interface SoakResult {
  seed: number;
  durationMs: number;
  ops: { adds: number; addsOk: number; addsTryAgain: number; dels: number; delsOk: number; pods: number; pings: number; checks: number };
  faults: Partial<Record<FaultKind, number>>;
  addSuccessRatio: number;
  addP50Ms?: number;
  addP99Ms?: number;
  addUnderFaultsP50Ms?: number;
  addUnderFaultsP99Ms?: number;
  longestIpWaitMs: number;
  /** The longest wait counted from the end of the faults that held its node back (waits.ts). */
  longestIpWaitAfterFaultMs: number;
  /** The longest waits, raw, with the faults around them (up to 3), and the longest after the faults cleared if not among them. */
  longestWaits: AttributedWait[];
  /** The start of the churn (for times relative to it). */
  startedAt: number;
  /** Restart to serving of the crashed processes (ms), and restarts killed again before they served. */
  startUps: { controller: number[]; agent: number[]; neverServed: number };
  /** From the last DEL to every final invariant holding; undefined if it never did within settleTimeoutMs. */
  settleMs?: number;
  violations: TimedViolation[];
  logDir: string;
}

type PodState = 'adding' | 'up' | 'deleting' | 'gone';

interface PodRun {
  name: string;
  node: SandboxNode;
  netns?: string;
  state: PodState;
  /** Bumped on every change of state: a check skips pods that changed while it looked. */
  epoch: number;
  live?: LivePod;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const o = {
    faults: true, meanFaultGapMs: 6000, settleTimeoutMs: 60_000, checkIntervalMs: 3000, cniDeadlineMs: 30_000, addGiveUpMs: 120_000,
    vms: 2, scaleSetInstances: 1, poolMinimum: 8, poolMaximum: 64, batchSize: 8, maxPodsPerNode: 40, log: () => undefined, ...opts,
  };
  const log = o.log;
  const root = new Prng(o.seed);
  const workRng = root.fork('workload');
  const faultRng = root.fork('faults');
  const logDir = mkdtempSync(path.join(tmpdir(), `podvnet-soak-${o.seed}-`));
  log(`soak: seed ${o.seed}, ${Math.round(o.durationMs / 1000)} s of churn, faults ${o.faults ? 'on' : 'off'}; logs in ${logDir}`);

  const sandbox = await Sandbox.start({
    vms: o.vms, scaleSetInstances: o.scaleSetInstances, logDir, startTimeoutMs: 180_000,
    pool: { ipsPerNode: { min: o.poolMinimum, max: o.poolMaximum }, scaling: { batchSize: o.batchSize, requestThresholdPercent: 50, releaseThresholdPercent: 150 } },
  });
  const t0 = Date.now();
  const at = () => Date.now() - t0;
  const violations: TimedViolation[] = [];
  // a condition that lasts is seen by check after check: it is one violation, reported once
  const seen = new Set<string>();
  const violate = (kind: ViolationKind, detail: string) => {
    if (seen.has(`${kind}\0${detail}`)) return;
    seen.add(`${kind}\0${detail}`);
    violations.push({ kind, detail, atMs: at() });
    log(`VIOLATION ${kind} at ${(at() / 1000).toFixed(1)} s: ${detail}`);
  };
  const pods = new Map<string, PodRun>();
  const tasks = new Set<Promise<void>>();
  const track = (p: Promise<void>) => { tasks.add(p); void p.finally(() => tasks.delete(p)); };
  const ops = { adds: 0, addsOk: 0, addsTryAgain: 0, dels: 0, delsOk: 0, pods: 0, pings: 0, checks: 0 };
  const addCalls: Array<{ start: number; end: number; ok: boolean }> = [];
  const ipWaits: IpWait[] = [];
  const episodes: FaultEpisode[] = [];
  const faultCounts: Partial<Record<FaultKind, number>> = {};
  let checkWaiters: Array<() => void> = [];
  let stopping = false;

  const setState = (p: PodRun, s: PodState) => { p.state = s; p.epoch++; };
  const live = (): PodRun[] => [...pods.values()].filter((p) => p.state === 'up');
  const onNode = (n: SandboxNode) => [...pods.values()].filter((p) => p.node === n && p.state !== 'gone').length;

  /** DEL until it succeeds, as a runtime retries it; every failure is a violation. */
  const del = async (p: PodRun, containerId: string): Promise<void> => {
    const began = Date.now();
    for (;;) {
      ops.dels++;
      const r = await sandbox.cni(p.node, 'DEL', containerId, `/run/netns/${p.netns}`, { podName: p.name, deadlineMs: o.cniDeadlineMs });
      const out = cniOutcome(r);
      if (out.kind === 'ok') { ops.delsOk++; return; }
      if (out.kind === 'hang') violate('del-hang', `DEL of ${p.name} (${containerId}) on ${p.node.name} ran past ${o.cniDeadlineMs} ms`);
      else violate('del-failed', `DEL of ${p.name} (${containerId}) on ${p.node.name}: ${'code' in out && out.code !== undefined ? `code ${out.code}: ` : ''}${out.msg}`);
      if (Date.now() - began > o.addGiveUpMs) return;
      await sleep(1000);
    }
  };

  const addPod = async (node: SandboxNode): Promise<void> => {
    const name = `p${++ops.pods}`;
    const p: PodRun = { name, node, state: 'adding', epoch: 0 };
    pods.set(name, p);
    p.netns = await sandbox.fabric.addNetns(`${name}`);
    const began = Date.now();
    let firstTryAgain: number | undefined;
    let tryAgains = 0;
    let atFirstTryAgain: { pods: number; nic: number } | undefined;
    for (let attempt = 0; ; attempt++) {
      const containerId = `${name}-s${attempt}`;
      const start = Date.now();
      ops.adds++;
      const r = await sandbox.cni(node, 'ADD', containerId, `/run/netns/${p.netns}`, { podName: name, deadlineMs: o.cniDeadlineMs });
      const out = cniOutcome(r);
      addCalls.push({ start, end: Date.now(), ok: out.kind === 'ok' && !!out.ip });
      if (out.kind === 'ok' && out.ip) {
        ops.addsOk++;
        if (firstTryAgain !== undefined) {
          ipWaits.push({
            pod: name, node: node.name, startedAt: firstTryAgain, gotAt: Date.now(), tryAgains,
            podsOnNode: [atFirstTryAgain!.pods, onNode(node)], nicIPs: [atFirstTryAgain!.nic, ipOwners(sandbox).secondaryCount(node.name)],
          });
        }
        p.live = { name, containerId, node: node.name, ip: out.ip, veth: hostVethName(containerId, 'eth0'), mac: podMACs(containerId, 'eth0').container };
        setState(p, 'up');
        return;
      }
      if (out.kind === 'try-again') {
        ops.addsTryAgain++;
        tryAgains++;
        if (firstTryAgain === undefined) {
          firstTryAgain = start;
          atFirstTryAgain = { pods: onNode(node), nic: ipOwners(sandbox).secondaryCount(node.name) };
        }
      }
      else if (out.kind === 'hang') violate('add-hang', `ADD of ${name} (${containerId}) on ${node.name} ran past ${o.cniDeadlineMs} ms`);
      else if (out.kind === 'ok') violate('add-bad-failure', `ADD of ${name} on ${node.name} succeeded without an IP: ${r.stdout.trim()}`);
      else violate('add-bad-failure', `ADD of ${name} (${containerId}) on ${node.name} failed with ${out.code === undefined ? 'no code' : `code ${out.code}`}, not 11: ${out.msg}`);
      // the runtime tears the failed sandbox down, then tries again with a new one
      await del(p, containerId);
      if (Date.now() - began > o.addGiveUpMs) {
        violate('add-never-succeeded', `${name} on ${node.name} got no IP in ${o.addGiveUpMs} ms (${attempt + 1} ADDs)`);
        await dropNetns(p);
        setState(p, 'gone');
        return;
      }
      await sleep(250 + Math.floor(Math.random() * 250));
    }
  };

  const deletePod = async (p: PodRun): Promise<void> => {
    setState(p, 'deleting');
    await del(p, p.live!.containerId);
    await dropNetns(p);
    setState(p, 'gone');
    pods.delete(p.name);
  };

  const dropNetns = async (p: PodRun) => {
    if (p.netns) await execFileP('ip', ['netns', 'del', p.netns]).catch(() => undefined);
  };

  // ---- invariants while it runs ----
  const check = async (): Promise<void> => {
    const before = new Map(live().map((p) => [p.name, p.epoch]));
    const [agents, kernel] = await Promise.all([
      Promise.all(sandbox.nodes.map((n) => agentState(n))),
      Promise.all(sandbox.nodes.map((n) => kernelView(sandbox, n))),
    ]);
    const owners = ipOwners(sandbox);
    // only pods that stayed up, untouched, while the world was read
    const stable = live().filter((p) => before.get(p.name) === p.epoch).map((p) => p.live!);
    for (const v of checkLive({ pods: stable, agents, ipOwner: owners.ownerOf, kernel })) violate(v.kind, v.detail);
    await pingSample();
    ops.checks++;
    const w = checkWaiters;
    checkWaiters = [];
    for (const f of w) f();
  };

  const pingSample = async (): Promise<void> => {
    for (let i = 0; i < 2; i++) {
      const up = live();
      const a = up.length ? workRng.pick(up) : undefined;
      const others = up.filter((x) => a && x.node !== a.node);
      if (!a || !others.length) return;
      const b = workRng.pick(others);
      const [ea, eb] = [a.epoch, b.epoch];
      ops.pings++;
      let ok = false;
      for (let k = 0; k < 4 && !ok; k++) {
        ok = await ping(a.netns!, b.live!.ip, 1);
        if (!ok) await sleep(500);
      }
      if (!ok && a.epoch === ea && b.epoch === eb && a.state === 'up' && b.state === 'up') {
        violate('ping-failed', `${a.name} on ${a.node.name} (${a.live!.ip}) cannot reach ${b.name} on ${b.node.name} (${b.live!.ip})`);
      }
    }
  };

  const checker = (async () => {
    while (!stopping) {
      await check().catch((e: Error) => log(`check failed to read the world: ${e.message}`));
      await sleep(o.checkIntervalMs);
    }
  })();

  try {
    log('waiting for every node to hold the pool minimum');
    await sandbox.waitFor('every node record to hold the pool minimum', async () =>
      sandbox.nodes.every((n) => ipOwners(sandbox).secondaryCount(n.name) >= o.poolMinimum), 120_000);
    const churnEnd = Date.now() + o.durationMs;

    // ---- faults ----
    const faultLoop = (async () => {
      if (!o.faults) return;
      const running = new Set<Promise<void>>();
      let azureBusy = false;
      let kubeBusy = false;
      while (Date.now() < churnEnd - 5000) {
        await sleep(faultRng.int(Math.round(o.meanFaultGapMs / 2), Math.round(o.meanFaultGapMs * 1.5)));
        if (Date.now() >= churnEnd - 5000) break;
        const kind = pickFault(faultRng, azureBusy, kubeBusy);
        const ep: FaultEpisode = { kind, what: kind, startedAt: Date.now() };
        episodes.push(ep);
        faultCounts[kind] = (faultCounts[kind] ?? 0) + 1;
        if (isAzureFault(kind)) azureBusy = true;
        if (isKubeFault(kind)) kubeBusy = true;
        const run = runFault(sandbox, kind, faultRng, sleep, ep)
          .catch((e: Error) => log(`fault ${kind} failed: ${e.message}`))
          .finally(() => {
            ep.endedAt = Date.now();
            if (isAzureFault(kind)) azureBusy = false;
            if (isKubeFault(kind)) kubeBusy = false;
          });
        log(`fault at ${(at() / 1000).toFixed(1)} s: ${ep.what}`);
        running.add(run);
        void run.finally(() => running.delete(run));
      }
      await Promise.all(running);
    })();

    // ---- plant (tests) ----
    const planted = o.plant ? (async () => {
      await sleep(o.plant!.atMs);
      await o.plant!.run({ sandbox, livePods: () => live().map((p) => p.live!), nextCheck: () => new Promise<void>((r) => checkWaiters.push(r)) });
    })() : Promise.resolve();

    // ---- churn ----
    let target = workRng.int(4, 30);
    while (Date.now() < churnEnd) {
      if (workRng.chance(0.02)) target = workRng.int(0, Math.min(90, o.maxPodsPerNode * sandbox.nodes.length - 10));
      const present = [...pods.values()].filter((p) => p.state === 'adding' || p.state === 'up').length;
      const busy = [...pods.values()].filter((p) => p.state === 'adding' || p.state === 'deleting').length;
      if (workRng.chance(0.01)) {
        // a burst: a Deployment scaled up on one node
        const node = workRng.pick(sandbox.nodes);
        const n = Math.max(0, Math.min(workRng.int(8, 20), o.maxPodsPerNode - onNode(node)));
        log(`burst at ${(at() / 1000).toFixed(1)} s: ${n} pods on ${node.name}`);
        for (let i = 0; i < n; i++) track(addPod(node));
      } else if (busy < 12 && present < target) {
        const free = sandbox.nodes.filter((n) => onNode(n) < o.maxPodsPerNode);
        if (free.length) track(addPod(workRng.pick(free)));
      } else if (busy < 12 && present > target) {
        const up = live();
        if (up.length) track(deletePod(workRng.pick(up)));
      }
      await sleep(workRng.int(30, 250));
    }
    log(`churn over at ${(at() / 1000).toFixed(1)} s; waiting for the faults to end and the pods under way`);
    await faultLoop;
    await planted;
    sandbox.azure.clearFaults();
    sandbox.kube.clearFaults();
    sandbox.azure.configure({ mode: 'sync' });
    for (const pr of [sandbox.controller, ...sandbox.nodes.map((n) => n.agent)]) if (!pr.running) pr.start();
    while (tasks.size) await Promise.all([...tasks]);

    // ---- the end: every pod deleted, then the system must settle ----
    log(`deleting the ${live().length} remaining pods`);
    const rest = live();
    for (let i = 0; i < rest.length; i += 8) await Promise.all(rest.slice(i, i + 8).map((p) => deletePod(p)));
    while (tasks.size) await Promise.all([...tasks]);
    stopping = true;
    await checker;
    const lastDel = Date.now();
    let last: Violation[] = [];
    let settleMs: number | undefined;
    while (Date.now() - lastDel <= o.settleTimeoutMs) {
      const [agents, kernel] = await Promise.all([
        Promise.all(sandbox.nodes.map((n) => agentState(n))),
        Promise.all(sandbox.nodes.map((n) => kernelView(sandbox, n))),
      ]);
      const owners = ipOwners(sandbox);
      last = checkSettled({
        nodes: sandbox.nodes.map((n) => n.name), poolMinimum: o.poolMinimum, nicIPs: owners.secondaryCount,
        demand: (n) => recordDemand(sandbox, n), agents, kernel,
      });
      if (!last.length) { settleMs = Date.now() - lastDel; break; }
      await sleep(1000);
    }
    for (const v of last) violate(v.kind, `${v.detail} (${Math.round(o.settleTimeoutMs / 1000)} s after the last DEL)`);

    const under = (c: { start: number; end: number }) => episodes.some((e) => c.start <= (e.endedAt ?? Date.now()) + 5000 && c.end >= e.startedAt);
    const waits = ipWaits.map((w) => attributeWait(w, episodes, Date.now()));
    const longestWaits = [...waits].sort((a, b) => b.waitMs - a.waitMs).slice(0, 3);
    const longestAfter = [...waits].sort((a, b) => b.afterFaultMs - a.afterFaultMs)[0];
    if (longestAfter && !longestWaits.includes(longestAfter)) longestWaits.push(longestAfter);
    const okMs = addCalls.filter((c) => c.ok).map((c) => c.end - c.start);
    const underMs = addCalls.filter((c) => c.ok && under(c)).map((c) => c.end - c.start);
    return {
      seed: o.seed, durationMs: o.durationMs, ops, faults: faultCounts,
      addSuccessRatio: addCalls.length ? addCalls.filter((c) => c.ok).length / addCalls.length : 1,
      addP50Ms: percentile(okMs, 50), addP99Ms: percentile(okMs, 99),
      addUnderFaultsP50Ms: percentile(underMs, 50), addUnderFaultsP99Ms: percentile(underMs, 99),
      longestIpWaitMs: Math.max(0, ...waits.map((w) => w.waitMs)),
      longestIpWaitAfterFaultMs: Math.max(0, ...waits.map((w) => w.afterFaultMs)),
      longestWaits, startedAt: t0, startUps: startUps(episodes), settleMs, violations, logDir,
    };
  } finally {
    stopping = true;
    await checker.catch(() => undefined);
    await sandbox.close();
  }
}
