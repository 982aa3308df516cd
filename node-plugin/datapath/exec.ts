/**
 * Running iproute2 / iptables (and sysctl.ts's small writer), optionally inside another network namespace.
 *
 * Every command the datapath runs goes through `run`. A namespace is entered with
 * `nsenter --net=<path>` (exec'd, so it costs no extra process), which works for every form runtimes
 * hand us: /run/netns/<name>, /var/run/netns/<name>, /proc/<pid>/ns/net, /var/run/docker/netns/<id>.
 * Commands run through a small pool of long-lived shells (shell-pool.ts), not one Node spawn each, and
 * `ip -batch -` goes to the netlink helper (netlink-helper.ts) when it can: no process at all.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { batchOutcome, DUMP_INTERRUPTED, type RemovalStep } from './kernel-errors.js';
import { type AntispoofRule, type HelperAnswer, NetlinkHelper } from './netlink-helper.js';
import { ShellPool } from './shell-pool.js';
import { DatapathError } from './types.js';

/** A namespace reference: undefined = this process's namespace; a bare name lives under /run/netns. */
export type Netns = string | undefined;

export function netnsPath(ns: string): string {
  return ns.includes('/') ? ns : `/run/netns/${ns}`;
}

export interface RunResult { stdout: string; stderr: string; code: number }

/** At most 24 spawned commands at once (PODVNET_EXEC=spawn only: p-queue is loaded only then, to spare the agent's memory). */
let spawnSlots: Promise<{ add<T>(fn: () => Promise<T>): Promise<T> }> | undefined;
const slots = () => (spawnSlots ??= import('p-queue').then(({ default: PQueue }) => new PQueue({ concurrency: 24 })));

/**
 * Commands go through a pool of long-lived shells (see shell-pool.ts: forking Node per command costs
 * more than the kernel work). PODVNET_EXEC=spawn switches back to one spawn per command.
 */
const pool = new ShellPool({ max: 16, keepIdle: 2, idleMs: 5_000, timeoutMs: 60_000 });
const useSpawn = process.env.PODVNET_EXEC === 'spawn';

/** Called after every command with its argv (without the nsenter prefix) and how long it took; for benchmarks. */
export type CommandObserver = (argv: readonly string[], startedMs: number, ms: number) => void;
let observer: CommandObserver | undefined;
export function observeCommands(fn: CommandObserver | undefined): void {
  observer = fn;
}

/**
 * The netlink helper's executable: beside this module (the repo under ts-node, the image's dist/, where
 * hack/image/build.sh installs it), else the repo's build when this module runs from the repo's dist/.
 * PODVNET_NETLINK=off: every `ip -batch` is exec'd as before.
 */
const HELPER_BIN = 'netlink/bin/podvnet-netlink';
function helperBinary(): string | undefined {
  if (process.env.PODVNET_NETLINK === 'off') return undefined;
  const candidates = [new URL(`./${HELPER_BIN}`, import.meta.url), new URL(`../../../node-plugin/datapath/${HELPER_BIN}`, import.meta.url)];
  return candidates.map((u) => fileURLToPath(u)).find((f) => existsSync(f));
}
let helper: NetlinkHelper | null | undefined;
const netlinkHelper = (): NetlinkHelper | undefined => {
  if (helper === undefined) { const bin = helperBinary(); helper = bin ? new NetlinkHelper(bin) : null; }
  return helper ?? undefined;
};

/** `ip -batch -` or `ip -force -batch -`: what the netlink helper can run (undefined: anything else). */
function batchForce(argv: readonly string[]): boolean | undefined {
  const a = argv.join(' ');
  return a === 'ip -batch -' ? false : a === 'ip -force -batch -' ? true : undefined;
}

/** Runs argv (in `ns` if given); resolves with the exit code instead of throwing. */
export function runRaw(ns: Netns, argv: string[], input?: string): Promise<RunResult> {
  const force = batchForce(argv);
  const nl = force === undefined ? undefined : netlinkHelper();
  const p = nl
    ? nl.run(ns === undefined ? undefined : netnsPath(ns), force!, input ?? '').then((a) =>
      a.kind === 'done' ? { stdout: '', stderr: a.stderr, code: a.code } : execRaw(ns, argv, input))
    : execRaw(ns, argv, input);
  return observed(argv, p);
}

/** `p`, reported to the command observer (if any) as `argv` with its duration once it settles. */
function observed<T>(argv: readonly string[], p: Promise<T>): Promise<T> {
  if (!observer) return p;
  const seen = observer;
  const t0 = performance.now();
  return p.finally(() => seen(argv, t0, performance.now() - t0));
}

/**
 * Appends anti-spoofing rules to iptables-nft's ip raw/`chain` through the netlink helper, in one
 * nf_tables transaction and no process (netlink-helper.ts appendAntispoof). Undefined when the helper is
 * off (PODVNET_NETLINK=off) or this path is (PODVNET_NFT_APPEND=off): the caller runs iptables-nft-restore.
 * Observed as the step `nft-append raw <chain> <veth> <ip>...`.
 */
export function nftAppendAntispoof(ns: Netns, chain: string, rules: readonly AntispoofRule[]): Promise<HelperAnswer> | undefined {
  const nl = process.env.PODVNET_NFT_APPEND === 'off' ? undefined : netlinkHelper();
  if (!nl) return undefined;
  return observed(['nft-append', 'raw', chain, ...rules.flatMap((r) => [r.veth, r.ip])],
    nl.appendAntispoof(ns === undefined ? undefined : netnsPath(ns), chain, rules));
}

/** Runs argv as a process (through the shell pool, or one spawn each with PODVNET_EXEC=spawn). */
function execRaw(ns: Netns, argv: string[], input?: string): Promise<RunResult> {
  const full = ns === undefined ? argv : ['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv];
  return !useSpawn
    ? pool.run(full, input).catch((e: Error) => {
      throw new DatapathError(`cannot run ${full.join(' ')}: ${e.message}`, full.join(' '));
    })
    : spawnRaw(full, input);
}

function spawnRaw(full: string[], input?: string): Promise<RunResult> {
  return slots().then((q) => q.add(() => new Promise<RunResult>((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new DatapathError(`cannot run ${full[0]}: ${e.message}`, full.join(' '))));
    child.on('close', (code) => resolve({
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
      code: code ?? -1,
    }));
    child.stdin.on('error', () => { /* the child may exit before reading stdin; its exit code tells */ });
    child.stdin.end(input ?? '');
  })));
}

/** Runs argv and throws DatapathError (with the tool's own message) on a non-zero exit. */
export async function run(ns: Netns, argv: string[], input?: string): Promise<string> {
  const r = await runRaw(ns, argv, input);
  if (r.code !== 0) throw commandError(ns, argv, r);
  return r.stdout;
}

/** The error `run` throws for a command that failed: what ran (and where), then the tool's own message. */
export function commandError(ns: Netns, argv: readonly string[], r: RunResult): DatapathError {
  const what = ns === undefined ? argv.join(' ') : `${argv.join(' ')} (in netns ${ns})`;
  const detail = r.stderr.trim() || `exit code ${r.code}`;
  return new DatapathError(`${what}: ${detail}`, what, r.stderr);
}

/** `ip -batch -`: many iproute2 commands, one process. Stops at the first failing line. */
export function ipBatch(ns: Netns, lines: string[]): Promise<string> {
  return run(ns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
}

/**
 * `ip -force -batch -`: runs every line even if some fail. Returns the error lines that are not in
 * `tolerated` (e.g. "Cannot find device" when deleting what is already gone). For removals, prefer
 * ipRemove, which matches "already gone" per line.
 */
export async function ipBatchTolerant(ns: Netns, lines: string[], tolerated: RegExp[]): Promise<string[]> {
  const r = await runRaw(ns, ['ip', '-force', '-batch', '-'], lines.join('\n') + '\n');
  if (r.code === 0) return [];
  return r.stderr.split('\n').map((l) => l.trim())
    .filter((l) => l && !/^Command failed/.test(l) && !tolerated.some((re) => re.test(l)));
}

/**
 * Removes things with one `ip -force -batch` (more only if a `neigh` line that found its entry gone ended
 * the batch early: the rest is run again). A step whose object is already gone succeeds; every other
 * failure is returned, naming its line (kernel-errors.ts batchOutcome).
 */
export async function ipRemove(ns: Netns, steps: RemovalStep[]): Promise<string[]> {
  const errors: string[] = [];
  let rest = steps;
  while (rest.length) {
    const r = await runRaw(ns, ['ip', '-force', '-batch', '-'], rest.map((s) => s.line).join('\n') + '\n');
    const out = batchOutcome(rest, r.stderr, r.code);
    errors.push(...out.errors);
    if (out.resumeAt === undefined) break;
    rest = rest.slice(out.resumeAt);
  }
  return errors;
}

/** Reading again right away under constant churn is interrupted again: back off a little, for up to ~2 s. */
const DUMP_ATTEMPTS = 25;
const dumpBackoffMs = (attempt: number): number => Math.min(100, 5 * attempt) * (0.5 + Math.random());
const ABSENT = /does not exist|Cannot find device|^RTNETLINK answers: No such device$/m;

/**
 * `ip -j ...` parsed; an absent device yields [] (including one that vanished between ip's name lookup
 * and its request). A dump that a concurrent change interrupted ("Dump was interrupted and may be
 * inconsistent", exit 0 on iproute2 6.1, an error on others) is read again rather than trusted or reported.
 */
export async function ipJSON<T>(ns: Netns, args: string[]): Promise<T[]> {
  for (let attempt = 1; ; attempt++) {
    const r = await runRaw(ns, ['ip', '-j', ...args]);
    if (DUMP_INTERRUPTED.test(r.stderr)) {
      if (attempt < DUMP_ATTEMPTS) { await new Promise((res) => setTimeout(res, dumpBackoffMs(attempt))); continue; }
      throw new DatapathError(`ip -j ${args.join(' ')}: the kernel's dump was interrupted by concurrent changes ${DUMP_ATTEMPTS} times in a row`, `ip -j ${args.join(' ')}`, r.stderr);
    }
    if (r.code !== 0) {
      if (ABSENT.test(r.stderr)) return [];
      throw new DatapathError(`ip -j ${args.join(' ')}: ${r.stderr.trim()}`, `ip -j ${args.join(' ')}`, r.stderr);
    }
    const text = r.stdout.trim();
    return text ? (JSON.parse(text) as T[]) : [];
  }
}
