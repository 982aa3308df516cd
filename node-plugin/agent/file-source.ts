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

  private async read(): Promise<{ record: NodeIPAllocation | undefined; pool: PoolSettings | undefined }> {
    let raw: { record?: unknown; pool?: PoolSettings };
    try {
      raw = JSON.parse(await fs.readFile(this.path, 'utf8')) as typeof raw;
    } catch (err) {
      this.logger.warn({ path: this.path, err: (err as Error).message }, 'cannot read record file');
      return { record: undefined, pool: undefined };
    }
    const parsed = NodeIPAllocation.safeParse(raw.record);
    if (!parsed.success) {
      this.logger.error({ path: this.path, err: describeIssues(parsed.error) }, 'record file is invalid');
      return { record: undefined, pool: raw.pool };
    }
    return { record: parsed.data, pool: raw.pool };
  }

  async start(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void> {
    const r = await this.read();
    onUpdate(r.record, r.pool);
    watchFile(this.path, { interval: this.pollMs }, () => {
      void this.read().then((next) => onUpdate(next.record, next.pool));
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
