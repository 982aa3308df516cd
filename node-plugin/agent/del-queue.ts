import { watch, type FSWatcher } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import type { CniResponse } from '../cni/protocol.js';
import { decodeRequest, type WireRequest } from './cni-socket.js';

/**
 * DELs the per-pod executable queued on disk while the agent could not take them (node-plugin/cni/
 * forwarder.c): one file per DEL, "<seconds>.<nanoseconds>-<pid>-<container>.del", holding the request
 * in the socket's wire format. The agent applies them through its normal DEL path at start-up (before it
 * serves any ADD) and whenever files appear, deletes each once applied, and moves a file it cannot read
 * as a DEL aside into `rejected/` (saying why), so one bad file never blocks the others or the agent.
 */

export interface QueuedDel {
  /** File name in the queue directory. */
  name: string;
  /** When the executable queued it (ms since the epoch). */
  queuedAt: number;
  request: WireRequest;
  containerId: string;
  ifName: string;
}

const DelEnv = z.looseObject({
  CNI_COMMAND: z.literal('DEL', { error: (iss) => `CNI_COMMAND must be DEL, got ${JSON.stringify(iss.input)}` }),
  CNI_CONTAINERID: z.string().min(1, { message: 'CNI_CONTAINERID is empty' }),
  CNI_IFNAME: z.string().min(1, { message: 'CNI_IFNAME is empty' }),
});

const NAME = /^(\d+)\.(\d{9})-\d+-[A-Za-z0-9_-]*\.del$/;
export const TEMP_PREFIX = '.tmp-';
export const REJECTED_DIR = 'rejected';

/** Decodes one queued file; throws an Error saying what is wrong with it. */
export function parseQueuedDel(name: string, bytes: Buffer): QueuedDel {
  const m = NAME.exec(name);
  if (!m) throw new Error('the file name is not <seconds>.<nanoseconds>-<pid>-<container>.del');
  let request: WireRequest;
  try {
    request = decodeRequest(bytes);
  } catch (err) {
    throw new Error(`not a complete PODVNET-CNI/1 request (${(err as Error).message})`);
  }
  const env = DelEnv.safeParse(request.env);
  if (!env.success) throw new Error(`not a DEL request: ${describeIssues(env.error)}`);
  return { name, queuedAt: Number(m[1]) * 1000 + Math.floor(Number(m[2]) / 1e6), request, containerId: env.data.CNI_CONTAINERID, ifName: env.data.CNI_IFNAME };
}

/** What to do with a queued DEL given the agent's answer: done, try again later, or give up on it. */
export function outcome(res: CniResponse): 'applied' | 'retry' | 'reject' {
  if (res.exitCode === 0) return 'applied';
  let code: number | undefined;
  try {
    code = (JSON.parse(res.stdout) as { code?: number }).code;
  } catch {
    code = undefined;
  }
  // 11: not yet possible (the node network is unknown); 100+: the datapath failed, which may pass.
  // The spec's other codes say the request itself is wrong: it will never succeed.
  return code !== undefined && code < 100 && code !== 11 ? 'reject' : 'retry';
}

export interface DelQueueOptions {
  dir: string;
  /** The agent's normal DEL path (CniHandler.handle). */
  apply: (env: Record<string, string>, stdin: string) => Promise<CniResponse>;
  /**
   * When the container's current allocation was made, if it has one: a DEL queued before an ADD that
   * the agent served later must not take that newer attachment away.
   */
  assignedAt: (containerId: string, ifName: string) => number | undefined;
  logger: Logger;
  /** Scans this often besides watching the directory (a missed inotify event, a retry). */
  scanIntervalMs?: number;
  /** A temporary file older than this was left by an executable that died mid-write: removed. */
  staleTempMs?: number;
  now?: () => number;
}

export interface ApplyReport {
  applied: number;
  superseded: number;
  retrying: string[];
  rejected: number;
}

export class DelQueue {
  private running: Promise<ApplyReport> | undefined;
  private next: Promise<ApplyReport> | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly totals = { applied: 0, superseded: 0, rejected: 0, failed: 0 };

  constructor(private readonly o: DelQueueOptions) {}

  get dir(): string {
    return this.o.dir;
  }

  /** Makes the directory (0700) if it is missing. */
  async prepare(): Promise<void> {
    await fs.mkdir(this.o.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Applies every queued DEL, oldest first. Runs are serialized; a call during a run gets a run that
   * starts after it (files may have appeared meanwhile). Never throws.
   */
  applyAll(): Promise<ApplyReport> {
    if (this.running) {
      this.next ??= this.running.then(() => {
        this.next = undefined;
        return this.applyAll();
      });
      return this.next;
    }
    const run = this.runOnce().finally(() => {
      this.running = undefined;
    });
    this.running = run;
    return run;
  }

  /** Applies files as they appear (inotify on the directory, plus a periodic scan). */
  watch(): void {
    try {
      this.watcher = watch(this.o.dir, () => this.soon());
      this.watcher.on('error', (err) => {
        this.o.logger.warn({ dir: this.o.dir, err: err.message }, 'watching the DEL queue failed; scanning it periodically only');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.o.logger.warn({ dir: this.o.dir, err: (err as Error).message }, 'cannot watch the DEL queue; scanning it periodically only');
    }
    this.timer = setInterval(() => void this.applyAll(), this.o.scanIntervalMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.running;
  }

  private soon(): void {
    if (this.stopped || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.applyAll();
    }, 20);
    this.debounce.unref();
  }

  private async runOnce(): Promise<ApplyReport> {
    const report: ApplyReport = { applied: 0, superseded: 0, retrying: [], rejected: 0 };
    if (this.stopped) return report;
    const { dir, logger } = this.o;
    let names: string[];
    try {
      names = (await fs.readdir(dir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ dir, err: (err as Error).message }, 'cannot read the DEL queue');
      return report;
    }
    const now = (this.o.now ?? Date.now)();
    for (const name of names) {
      if (this.stopped) break;
      await this.applyFile(name, now, report);
    }
    return report;
  }

  /** One entry of the queue directory: applied, dropped, moved aside or left to retry; counted in `report`. */
  private async applyFile(name: string, now: number, report: ApplyReport): Promise<void> {
    const { dir, logger } = this.o;
    const file = path.join(dir, name);
    if (name === REJECTED_DIR) return;
    if (name.startsWith(TEMP_PREFIX)) {
      // An executable writing right now, or one that died before its rename (and so answered nothing
      // and left the runtime to retry): only the latter is old.
      const st = await fs.stat(file).catch(() => undefined);
      if (st && now - st.mtimeMs > (this.o.staleTempMs ?? 60_000)) await fs.unlink(file).catch(() => undefined);
      return;
    }
    let del: QueuedDel;
    try {
      del = parseQueuedDel(name, await fs.readFile(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // applied by a run that raced us
      await this.reject(name, (err as Error).message);
      report.rejected++;
      return;
    }
    const assigned = this.o.assignedAt(del.containerId, del.ifName);
    if (assigned !== undefined && assigned > del.queuedAt) {
      logger.warn({ file, containerId: del.containerId, ifName: del.ifName, queuedAt: del.queuedAt, assignedAt: assigned }, 'queued DEL predates the current ADD of this container; dropped');
      await fs.unlink(file).catch(() => undefined);
      report.superseded++;
      this.totals.superseded++;
      return;
    }
    const res = await this.o.apply(del.request.env, del.request.stdin);
    const verdict = outcome(res);
    if (verdict === 'applied') {
      await fs.unlink(file).catch(() => undefined);
      logger.info({ containerId: del.containerId, ifName: del.ifName, queuedAt: new Date(del.queuedAt).toISOString() }, 'applied a DEL queued while the agent was unreachable');
      report.applied++;
      this.totals.applied++;
    } else if (verdict === 'reject') {
      await this.reject(name, `the DEL was refused: ${res.stdout}`);
      report.rejected++;
    } else {
      logger.warn({ file, containerId: del.containerId, answer: res.stdout }, 'queued DEL failed; will retry');
      report.retrying.push(`${del.containerId}/${del.ifName}`);
      this.totals.failed++;
    }
  }

  private async reject(name: string, reason: string): Promise<void> {
    const { dir, logger } = this.o;
    const aside = path.join(dir, REJECTED_DIR, name);
    try {
      await fs.mkdir(path.join(dir, REJECTED_DIR), { recursive: true, mode: 0o700 });
      await fs.rename(path.join(dir, name), aside);
      logger.error({ file: aside, reason }, 'a queued DEL cannot be applied; moved aside (it needs a look: the pod it names may still hold its IP until GC)');
    } catch (err) {
      logger.error({ file: path.join(dir, name), reason, err: (err as Error).message }, 'a queued DEL cannot be applied, and moving it aside failed');
    }
    this.totals.rejected++;
  }
}
