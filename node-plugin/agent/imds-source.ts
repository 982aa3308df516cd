import type { Logger } from 'pino';
import { readInstance } from './imds.js';
import { recordFromImds } from './standalone-record.js';
import type { RecordSource, SpecWrite } from './sync.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import type { PoolSettings } from './address-service.js';

/**
 * Standalone static mode: the node's record made from IMDS, re-read every `intervalMs` so an ip-config
 * added in the portal (or removed) shows up. Nobody removes IPs here, so nothing is ever released: the
 * agent runs without pool settings, and its demand only goes to the log.
 */
export class ImdsRecordSource implements RecordSource {
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private stopped = false;
  lastWrite: SpecWrite | undefined;

  constructor(private readonly o: { nodeName: string; vnetPrefixes: string[]; intervalMs: number; logger: Logger; origin?: string }) {}

  private async read(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void> {
    try {
      const record = recordFromImds(await readInstance({ origin: this.o.origin }), this.o);
      const text = JSON.stringify(record);
      if (text === this.last || this.stopped) return;
      if (this.last) this.o.logger.info({ ips: record.status!.ips.map((i) => i.ip) }, 'the NIC\'s secondary IPs changed (IMDS)');
      this.last = text;
      onUpdate(record, undefined);
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'cannot read the Instance Metadata Service; keeping what it said last');
    }
  }

  async start(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void> {
    await this.read(onUpdate);
    const tick = () => {
      this.timer = setTimeout(() => void this.read(onUpdate).finally(() => { if (!this.stopped) tick(); }), this.o.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  async writeSpec(write: SpecWrite): Promise<void> {
    if (write.demand.pendingIPs > 0 && write.demand.pendingIPs !== this.lastWrite?.demand.pendingIPs) {
      this.o.logger.warn({ demand: write.demand }, 'containers are waiting for an IP: add secondary ip-configs to this VM\'s NIC');
    }
    this.lastWrite = write;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
