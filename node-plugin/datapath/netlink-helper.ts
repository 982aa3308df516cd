/**
 * The netlink helper (netlink/batchd.c, built to netlink/bin/podvnet-netlink): one long-lived process
 * that runs `ip -batch` lines over rtnetlink and answers with what `ip -batch -` would have printed.
 *
 * Why: starting `ip` (and `nsenter` for a pod's namespace) costs more than the kernel work of a pod
 * ADD; the helper pays the process start once. It understands only the lines the datapath generates on
 * the per-pod paths and says "unsupported" for anything else without running any of it, so the caller
 * can run `ip` instead (exec.ts).
 *
 * One helper process per agent, started on first use, requests multiplexed by id over its stdin/stdout
 * (4-byte little-endian length, then text; the format is described in batchd.c). If it dies, the batches
 * it was running fail (they may have run in part, so they are not silently run again) and the next
 * request starts a new one. It never keeps the Node process alive while nothing is pending.
 *
 * It also appends the pods' anti-spoofing rules to an iptables-nft chain over nf_tables (appendAntispoof):
 * the rule iptables-nft-restore would add for `-m physdev --physdev-in V ! -s IP/32 -j DROP`, encoded
 * exactly as iptables-nft 1.8.9 encodes it, N rules in one transaction.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { DatapathError } from './types.js';

/** What the helper did with a batch: ran it (ip's exit code and stderr) or refused it (nothing ran). */
export type HelperAnswer =
  | { kind: 'done'; code: number; stderr: string }
  | { kind: 'unsupported'; reason: string }
  /** The helper could not be started: nothing ran; the caller runs `ip` itself. */
  | { kind: 'unavailable'; reason: string };

/** A request the helper can carry: an absolute namespace path without a newline (or none) and text without NUL. */
export function encodeRequest(id: number, netns: string | undefined, force: boolean, input: string): Buffer | undefined {
  return frame(id, force ? '1' : '0', netns, input);
}

/** One anti-spoofing rule: DROP what enters the bridge from `veth` with any source but `ip` (a /32). */
export interface AntispoofRule { veth: string; ip: string }

/** The most rules one nft request may carry (batchd.c NFT_MAX_RULES). */
export const NFT_APPEND_MAX = 256;

const NFT_CHAIN = /^[!-~]{1,28}$/;
/** What batchd.c takes as a veth name: 1-15 characters without '/', ':' or quotes, no wildcard '+', not `if<N>`. */
const NFT_VETH = /^(?!if\d+$)[!-~]{0,14}[!-*,-~]$/;
const NFT_IP = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * An nft request (append `rules` to ip raw/`chain` in one nf_tables transaction), or undefined if the
 * helper cannot carry it; the caller then runs iptables-nft-restore.
 */
export function encodeNftAppend(id: number, netns: string | undefined, chain: string, rules: readonly AntispoofRule[]): Buffer | undefined {
  if (!NFT_CHAIN.test(chain) || !rules.length || rules.length > NFT_APPEND_MAX) return undefined;
  if (!rules.every((r) => NFT_VETH.test(r.veth) && !/[/:'"]/.test(r.veth) && NFT_IP.test(r.ip))) return undefined;
  return frame(id, 'nft', netns, [chain, ...rules.map((r) => `${r.veth} ${r.ip}`)].join('\n') + '\n');
}

function frame(id: number, kind: '0' | '1' | 'nft', netns: string | undefined, input: string): Buffer | undefined {
  if (netns !== undefined && (!netns.startsWith('/') || /[\n\0]/.test(netns))) return undefined;
  if (input.includes('\0')) return undefined;
  const body = Buffer.from(`${id} ${kind} ${netns ?? '-'}\n${input}`, 'utf8');
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32LE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** The helper's code for an nft request the kernel refused with ENOENT: the table, chain or physdev match is missing. */
export const NFT_MISSING = 2;

export interface HelperResponse { id: number; answer: HelperAnswer | { kind: 'error'; reason: string } }

const HEAD = /^(\d{1,19}) (done|unsupported|error) (\d{1,3})\n/;

/** One response frame's text, strictly: `<id> <done|unsupported|error> <code>\n<text>`. */
export function parseResponse(text: string): HelperResponse {
  const m = HEAD.exec(text);
  if (!m) throw new Error(`malformed netlink helper response: ${JSON.stringify(text.slice(0, 80))}`);
  const id = Number(m[1]);
  const code = Number(m[3]);
  const rest = text.slice(m[0].length);
  if (!Number.isSafeInteger(id) || code > 255) throw new Error(`malformed netlink helper response: ${JSON.stringify(m[0])}`);
  if (m[2] === 'done') return { id, answer: { kind: 'done', code, stderr: rest } };
  return { id, answer: { kind: m[2] as 'unsupported' | 'error', reason: rest } };
}

/** Splits a byte stream into frames (4-byte little-endian length, then that many bytes). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrame = 16 << 20) {}

  push(chunk: Buffer): string[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: string[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (len > this.maxFrame) throw new Error(`netlink helper frame of ${len} bytes is too large`);
      if (this.buf.length < 4 + len) break;
      frames.push(this.buf.subarray(4, 4 + len).toString('utf8'));
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }
}

/** A request in flight; `what` names it in errors (the command it stands for). */
interface Pending { what: string; resolve: (a: HelperAnswer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export class NetlinkHelper {
  private child?: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private broken?: string;

  constructor(private readonly binary: string, private readonly timeoutMs = 60_000) {}

  /** Runs `input` as `ip [-force] -batch -` would, in `netns` (a path; undefined: the helper's own). */
  run(netns: string | undefined, force: boolean, input: string): Promise<HelperAnswer> {
    return this.request(force ? 'ip -force -batch -' : 'ip -batch -', (id) => encodeRequest(id, netns, force, input));
  }

  /**
   * Appends anti-spoofing rules to ip raw/`chain` in `netns` (a path; undefined: the helper's own), in one
   * nf_tables transaction: all or none. `done` with code 0: appended; NFT_MISSING: the table or chain
   * (or the kernel's physdev match) is missing; 1: another refusal, the kernel's text in `stderr`.
   */
  appendAntispoof(netns: string | undefined, chain: string, rules: readonly AntispoofRule[]): Promise<HelperAnswer> {
    return this.request(`nft append to raw/${chain}`, (id) => encodeNftAppend(id, netns, chain, rules));
  }

  private request(what: string, encode: (id: number) => Buffer | undefined): Promise<HelperAnswer> {
    if (this.broken) return Promise.resolve({ kind: 'unavailable', reason: this.broken });
    const id = this.nextId++;
    const frame = encode(id);
    if (!frame) return Promise.resolve({ kind: 'unsupported', reason: 'namespace or input the helper cannot carry' });
    const child = this.child ?? this.start();
    return new Promise<HelperAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.stop(child, `no answer within ${this.timeoutMs} ms`), this.timeoutMs);
      this.pending.set(id, { what, resolve, reject, timer });
      this.setRef(child, true);
      child.stdin.write(frame);
    });
  }

  /** The running helper's process id, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Ends the helper (tests); running batches fail as if it had died. */
  close(): void {
    if (this.child) this.stop(this.child, 'closed');
  }

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    const frames = new FrameReader();
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      let texts: string[];
      try {
        texts = frames.push(chunk);
      } catch (e) {
        this.stop(child, (e as Error).message);
        return;
      }
      for (const t of texts) {
        let r: HelperResponse;
        try {
          r = parseResponse(t);
        } catch (e) {
          this.stop(child, (e as Error).message);
          return;
        }
        this.settle(r);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => { stderr = (stderr + s).slice(-2000); });
    child.stdin.on('error', () => { /* it died: 'exit' says so */ });
    child.on('error', (e) => {
      if (child.pid === undefined) {
        // It never started, so nothing ran: every waiting batch can go to `ip`, and so can the next ones.
        this.broken = `cannot start ${this.binary}: ${e.message}`;
        this.forget(child, (p) => p.resolve({ kind: 'unavailable', reason: this.broken! }));
      } else {
        this.stop(child, e.message);
      }
    });
    child.on('exit', (code, signal) => this.forget(child, (p) => p.reject(new DatapathError(
      `the netlink helper ${this.binary} exited (${signal ?? `code ${code}`}${stderr.trim() ? `: ${stderr.trim()}` : ''}) while running this batch; it may have run in part`,
      p.what))));
    return child;
  }

  private settle(r: HelperResponse): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    clearTimeout(p.timer);
    if (r.answer.kind === 'error') p.reject(new DatapathError(`the netlink helper could not run a batch: ${r.answer.reason}`, p.what));
    else p.resolve(r.answer);
    if (!this.pending.size && this.child) this.setRef(this.child, false);
  }

  /** Kills the helper; its 'exit' fails what it was running. */
  private stop(child: ChildProcessWithoutNullStreams, why: string): void {
    if (this.child !== child) return;
    this.forget(child, (p) => p.reject(new DatapathError(`the netlink helper failed (${why}) while running this batch; it may have run in part`, p.what)));
    child.kill('SIGKILL');
  }

  /** Settles every pending request of `child` with `how` and lets the next request start a new helper. */
  private forget(child: ChildProcessWithoutNullStreams, how: (p: Pending) => void): void {
    if (this.child !== child) return;
    this.child = undefined;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) { clearTimeout(p.timer); how(p); }
    this.setRef(child, false);
  }

  private setRef(child: ChildProcessWithoutNullStreams, on: boolean): void {
    for (const h of [child, child.stdin, child.stdout, child.stderr] as Array<{ ref(): unknown; unref(): unknown }>) {
      if (on) h.ref(); else h.unref();
    }
  }
}
