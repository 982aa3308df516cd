import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { IPv4Address } from '../../../crds/api/common.js';
import { BlockCIDR } from '../../../crds/api/nodeipallocation.js';
import { processStartTime, readStateFile, removeStaleTemps, writeFileAtomic } from '../../state-file.js';
import { NodeNetworkSchema } from '../../datapath/validate.js';

/**
 * Persistence for the agent's allocations, apart from policy and protocol. A Store holds an exclusive
 * lock (so two agents never run against the same state) and writes whole snapshots crash-safely: write a
 * temporary file, fsync it, rename it over the old one, fsync the directory. A crash leaves either the
 * old or the new snapshot, never a mix.
 */

export const Allocation = z.strictObject({
  containerId: z.string().min(1),
  ifName: z.string().min(1),
  runtime: z.enum(['cni', 'cnm']),
  netnsPath: z.string().optional(),
  ip: IPv4Address,
  assignedAt: z.number().int().min(0),
});
export type Allocation = z.infer<typeof Allocation>;

export const StoreState = z.strictObject({
  version: z.literal(1),
  allocations: z.array(Allocation),
  released: z.array(IPv4Address),
  /** Block mode: the /28s given back (spec.releasedBlocks); absent in Individual mode and older files. */
  releasedBlocks: z.array(BlockCIDR).optional(),
  cooldown: z.record(IPv4Address, z.number().int()),
  /** The last node network known: pods can still be torn down after a restart when the record is gone. */
  nodeNetwork: NodeNetworkSchema.optional().catch(undefined), // a bad one is forgotten, never fatal
});
export type StoreState = z.infer<typeof StoreState>;

export const emptyState = (): StoreState => ({ version: 1, allocations: [], released: [], cooldown: {} });

export interface Store {
  /** Takes the exclusive lock and returns the last committed state. Throws StoreLockedError if held. */
  lock(): Promise<StoreState>;
  /** Makes `state` durable; resolves only once it would survive a crash. Calls must not overlap. */
  write(state: StoreState): Promise<void>;
  /** Releases the lock. */
  unlock(): Promise<void>;
}

export class StoreLockedError extends Error {
  override name = 'StoreLockedError';
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), to tell PID reuse apart. */
export class FileStore implements Store {
  readonly statePath: string;
  readonly lockPath: string;
  private locked = false;
  private holder: ChildProcess | undefined;

  constructor(readonly dir: string) {
    this.statePath = path.join(dir, 'allocations.json');
    this.lockPath = path.join(dir, 'agent.lock');
  }

  async lock(): Promise<StoreState> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.holder = await holdFlock(this.lockPath);
    await fs.writeFile(this.lockPath, `${process.pid} ${processStartTime(process.pid) ?? ''}\n`, { mode: 0o600 });
    this.locked = true;
    return this.load();
  }

  private async load(): Promise<StoreState> {
    removeStaleTemps(this.statePath);
    return readStateFile(this.statePath, StoreState, emptyState, {
      what: 'IPAM state',
      advice: 'refusing to start with unknown allocations (restore it from a backup, or move it aside only on a node with no pods)',
    });
  }

  async write(state: StoreState): Promise<void> {
    if (!this.locked) throw new Error('FileStore.write without the lock');
    await writeFileAtomic(this.statePath, JSON.stringify(state));
  }

  async unlock(): Promise<void> {
    if (!this.locked) return;
    this.locked = false;
    const holder = this.holder;
    this.holder = undefined;
    if (holder && holder.exitCode === null) {
      holder.ref(); // it was unref'd so it cannot keep the agent alive; now we wait for it
      const exited = new Promise((r) => holder.once('exit', r));
      holder.stdin?.end();
      await exited;
    }
  }
}

/**
 * Takes an exclusive flock(2) on `lockPath` in a child process (`flock -n <file> cat`) and keeps it
 * there: Node has no flock of its own. The kernel releases it when the child's stdin (a pipe from us)
 * closes, which happens when we unlock or die for any reason, SIGKILL included, and it works across PID
 * namespaces (two agent pods on one host), where a PID in a lock file would not.
 */
function holdFlock(lockPath: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--exclusive', '--nonblock', lockPath, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('locked')) {
        child.stdout!.removeAllListeners('data');
        child.unref();
        (child.stdout as unknown as { unref?: () => void }).unref?.();
        (child.stdin as unknown as { unref?: () => void }).unref?.();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        resolve(child);
      }
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', (e) => reject(new Error(`cannot run flock(1) to lock ${lockPath}: ${e.message} (install util-linux)`)));
    child.on('exit', (code) => {
      if (out.includes('locked')) return;
      if (code === 1 && !err) {
        readFileAsync(lockPath).then((holder) =>
          reject(new StoreLockedError(`state directory ${path.dirname(lockPath)} is locked by running process ${holder.trim().split(' ')[0] || '(unknown)'}; only one agent may use it`)),
        );
      } else reject(new Error(`flock ${lockPath} failed (exit ${code}): ${err.trim()}`));
    });
  });
}

function readFileAsync(p: string): Promise<string> {
  return fs.readFile(p, 'utf8').catch(() => '');
}

/** Keeps the committed state in memory; `crash()` forgets everything not yet written. For tests. */
export class MemoryStore implements Store {
  committed: StoreState = emptyState();
  writes = 0;
  private locked = false;
  async lock(): Promise<StoreState> {
    if (this.locked) throw new StoreLockedError('memory store is locked');
    this.locked = true;
    return structuredClone(this.committed);
  }
  async write(state: StoreState): Promise<void> {
    await new Promise((r) => setImmediate(r));
    this.committed = structuredClone(state);
    this.writes++;
  }
  async unlock(): Promise<void> {
    this.locked = false;
  }
}

/**
 * Group commit: many callers ask for durability at once; one write at a time carries every change made
 * before it started. `commit()` resolves once a write that began after the call has finished.
 */
export class GroupCommitter {
  private changes = 0;
  private durable = 0;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly store: Store, private readonly snapshot: () => StoreState) {}

  async commit(): Promise<void> {
    const mine = ++this.changes;
    while (this.durable < mine) {
      if (!this.inFlight) {
        const upTo = this.changes;
        const state = this.snapshot();
        this.inFlight = this.store.write(state).then(
          () => {
            this.durable = Math.max(this.durable, upTo);
            this.inFlight = undefined;
          },
          (err: unknown) => {
            this.inFlight = undefined;
            throw err;
          },
        );
      }
      await this.inFlight;
    }
  }
}
