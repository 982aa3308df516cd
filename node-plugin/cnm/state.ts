import { closeSync, mkdirSync, openSync, readFileSync, writeSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import { processStartTime, readStateFile, removeStaleTemps, writeFileAtomic } from '../state-file.js';

/**
 * What the CNM driver must remember across restarts, in one JSON file under the state dir:
 * - pools: the pool ids libnetwork holds (RequestPool/ReleasePool are reference counted);
 * - leases: one per address the IPAM driver handed out, keyed by the owner id the agent knows it by
 *   (`cnm-<random>`); a lease without an ip is an acquire in flight, written *before* asking the agent, so
 *   a crash between the two leaves a record to clean up instead of an address nobody knows about;
 * - networks and endpoints: what the network driver was told, and the veth it made for each endpoint.
 *
 * Writes are crash-safe (write a temp file, fsync, rename, fsync the directory) and serialized; a lock
 * file keeps two driver processes off the same state dir.
 */

const IPv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/);

export const Lease = z.strictObject({
  poolId: z.string().min(1),
  ip: IPv4.optional(),
  prefixLength: z.int().min(0).max(32).optional(),
  /** When the lease was created (ms since the epoch). */
  since: z.number(),
});
export type Lease = z.infer<typeof Lease>;

export const NetworkRecord = z.strictObject({
  pool: z.string(),
  gateway: IPv4,
  prefixLength: z.int().min(0).max(32),
});
export type NetworkRecord = z.infer<typeof NetworkRecord>;

export const EndpointRecord = z.strictObject({
  networkId: z.string(),
  ip: IPv4,
  prefixLength: z.int().min(0).max(32),
  /** The lease's owner id: the container id the agent and the datapath know this endpoint by. */
  owner: z.string(),
  mac: z.string(),
  /** Set by Join: the veth end libnetwork moves into the container, and the sandbox. */
  srcName: z.string().optional(),
  hostVeth: z.string().optional(),
  sandboxKey: z.string().optional(),
});
export type EndpointRecord = z.infer<typeof EndpointRecord>;

export const CnmState = z.strictObject({
  version: z.literal(1),
  pools: z.record(z.string(), z.strictObject({ pool: z.string(), refs: z.int().min(0) })),
  leases: z.record(z.string(), Lease),
  networks: z.record(z.string(), NetworkRecord),
  endpoints: z.record(z.string(), EndpointRecord),
});
export type CnmState = z.infer<typeof CnmState>;

export function emptyState(): CnmState {
  return { version: 1, pools: {}, leases: {}, networks: {}, endpoints: {} };
}

export const STATE_FILE = 'cnm-state.json';
const LOCK_FILE = 'cnm.lock';

/** Lock files held by stores in this process (a second store on the same dir in-process is a bug too). */
const heldInProcess = new Set<string>();

/** Start time of a process (field 22 of /proc/<pid>/stat): a PID reused after a reboot has another one. */
/** The lock file holds "<pid> <start time>"; a holder counts only if that very process still runs. */
function takeLock(path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid} ${processStartTime(process.pid) ?? ''}\n`);
      closeSync(fd);
      heldInProcess.add(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const [pidText, started] = readFileSync(path, 'utf8').trim().split(' ');
    const holder = Number(pidText);
    const alive = Number.isInteger(holder) && holder > 0 && processStartTime(holder) !== undefined && processStartTime(holder) === started;
    if (alive && (holder !== process.pid || heldInProcess.has(path))) {
      throw new Error(`CNM state dir is in use: ${path} is held by process ${holder}; only one azure-vnet driver may run per state dir`);
    }
    unlinkSync(path); // left by a process that is gone (or a PID reused after a reboot): take it over
  }
  throw new Error(`CNM state dir: could not take the lock ${path}`);
}

export class CnmStore {
  private current: CnmState;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lockPath: string;
  private closed = false;
  private pending = 0;

  /** Opens (creating if needed) the state in `dir`; throws if the file is corrupt rather than forget addresses. */
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lockPath = join(dir, LOCK_FILE);
    takeLock(this.lockPath);
    try {
      removeStaleTemps(join(dir, STATE_FILE));
      this.current = loadState(join(dir, STATE_FILE));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get state(): Readonly<CnmState> {
    return this.current;
  }

  /**
   * Applies `change` to a copy of the state and persists it before the new state becomes visible.
   * Updates run one at a time, in call order; the change's return value is passed through.
   */
  update<T>(change: (draft: CnmState) => T): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new Error('CNM state store is closed');
      const draft = structuredClone(this.current);
      const result = change(draft);
      const parsed = CnmState.safeParse(draft);
      if (!parsed.success) throw new Error(`refusing to persist invalid CNM state: ${describeIssues(parsed.error)}`);
      await writeFileAtomic(join(this.dir, STATE_FILE), `${JSON.stringify(draft, null, 1)}\n`);
      this.current = draft;
      return result;
    };
    this.pending += 1;
    const next = this.queue.then(run, run).finally(() => {
      this.pending -= 1;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Releases the lock now if no write is under way (so a successor can open the dir at once), else after it. */
  closeWhenIdle(): Promise<void> {
    if (this.pending === 0) {
      this.close();
      return Promise.resolve();
    }
    return this.flushAndClose();
  }

  /** Waits for pending writes, then releases the lock. */
  async flushAndClose(): Promise<void> {
    await this.queue;
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    heldInProcess.delete(this.lockPath);
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }
}

export function loadState(path: string): CnmState {
  return readStateFile(path, CnmState, emptyState, {
    what: 'CNM state file',
    advice: 'move it aside only if no azure-vnet containers are running',
  });
}

