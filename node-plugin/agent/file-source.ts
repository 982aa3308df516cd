import { promises as fs, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { describeIssues } from '../../crds/api/validation.js';
import type { PoolSettings } from './address-service.js';
import type { RecordSource, SpecWrite } from './sync.js';

/**
 * A NodeIPAllocation in a JSON file ({record, pool?}), re-read when it changes; spec writes go to
 * `<path>.spec.json`. For tests, benchmarks and running an agent without an API server.
 */
export class FileRecordSource implements RecordSource {
  writes: SpecWrite[] = [];
  constructor(private readonly path: string, private readonly logger: Logger, private readonly pollMs = 100) {}

  /**
   * undefined: nothing usable this time (unreadable, invalid), keep what we have. `record: undefined`:
   * the node has no record (`"record": null`, or no file at all).
   */
  private async read(): Promise<{ record: NodeIPAllocation | undefined; pool: PoolSettings | undefined } | undefined> {
    let raw: { record?: unknown; pool?: PoolSettings };
    try {
      raw = JSON.parse(await fs.readFile(this.path, 'utf8')) as typeof raw;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { record: undefined, pool: undefined };
      this.logger.warn({ path: this.path, err: (err as Error).message }, 'cannot read record file');
      return undefined;
    }
    if (raw.record === null || raw.record === undefined) return { record: undefined, pool: raw.pool };
    const parsed = NodeIPAllocation.safeParse(raw.record);
    if (!parsed.success) {
      this.logger.error({ path: this.path, err: describeIssues(parsed.error) }, 'record file is invalid; ignoring this version');
      return undefined;
    }
    return { record: parsed.data, pool: raw.pool };
  }

  async start(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void> {
    const r = await this.read();
    if (r) onUpdate(r.record, r.pool);
    // Reads may overlap (the file changes while one is running): only the newest one is applied.
    let seq = 0;
    watchFile(this.path, { interval: this.pollMs }, () => {
      const mine = ++seq;
      void this.read().then((next) => {
        if (next && mine === seq) onUpdate(next.record, next.pool);
      });
    });
  }

  async writeSpec(write: SpecWrite): Promise<void> {
    this.writes.push(write);
    const tmp = `${this.path}.spec.json.tmp`;
    await fs.writeFile(tmp, JSON.stringify(write));
    await fs.rename(tmp, `${this.path}.spec.json`);
  }

  async stop(): Promise<void> {
    unwatchFile(this.path);
  }
}
