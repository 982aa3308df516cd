import type { Logger } from 'pino';
import { z } from 'zod';
import { API_GROUP, API_VERSION, AGENT_FIELD_MANAGER } from '../../crds/api/group.js';
import { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { NodeIPPool } from '../../crds/api/nodeippool.js';
import { describeIssues } from '../../crds/api/validation.js';
import type { PoolSettings } from './address-service.js';
import { poolSettingsFrom, type RecordSource, type SpecWrite } from './sync.js';
import type { KubeTarget } from './kube/config.js';
import { KubeHttp } from './kube/http.js';
import { Informer, type KubeObject } from './kube/informer.js';

/**
 * Feeds the agent its node's NodeIPAllocation (and the pool's settings) from the API server, through an
 * informer on its own record only (field selector metadata.name=<node>), and carries its spec writes
 * back as a merge patch of spec.demand and spec.releasedIPs with field manager podvnet-agent. It talks
 * to the API server through the small client in kube/ (four calls: GET a pool, LIST and WATCH its
 * record, PATCH it), not @kubernetes/client-node, which would be most of the agent's memory.
 */

const COLLECTION = `/apis/${API_GROUP}/${API_VERSION}/nodeipallocations`;
const POOLS = `/apis/${API_GROUP}/${API_VERSION}/nodeippools`;

export class KubeRecordSource implements RecordSource {
  private informer: Informer | undefined;
  private readonly http: KubeHttp;
  private pool: { name: string; settings: PoolSettings; at: number } | undefined;
  private stopped = false;

  constructor(
    target: KubeTarget,
    private readonly nodeName: string,
    private readonly logger: Logger,
    private readonly poolRefreshMs = 30_000,
  ) {
    this.http = new KubeHttp(target);
  }

  private async poolSettings(name: string): Promise<PoolSettings | undefined> {
    if (this.pool?.name === name && Date.now() - this.pool.at < this.poolRefreshMs) return this.pool.settings;
    try {
      const raw = await this.http.request('GET', `${POOLS}/${encodeURIComponent(name)}`, { schema: z.unknown() });
      const parsed = NodeIPPool.safeParse(raw);
      if (!parsed.success) {
        this.logger.warn({ pool: name, err: describeIssues(parsed.error) }, 'NodeIPPool is invalid; keeping the last settings');
        return this.pool?.settings;
      }
      this.pool = { name, settings: poolSettingsFrom(parsed.data), at: Date.now() };
      return this.pool.settings;
    } catch (err) {
      this.logger.warn({ pool: name, err: (err as Error).message }, 'cannot read NodeIPPool; keeping the last settings');
      return this.pool?.name === name ? this.pool.settings : undefined;
    }
  }

  async start(onUpdate: (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void): Promise<void> {
    // Every change bumps `seq`; a record waiting for its pool's settings is applied only if nothing newer
    // came meanwhile, so a slow pool read can never bring back an older version (or a deleted record).
    let seq = 0;
    const absent = () => {
      seq++;
      onUpdate(undefined, this.pool?.settings);
    };
    const handle = (obj: KubeObject) => {
      if (obj.metadata.name !== this.nodeName) return;
      const parsed = NodeIPAllocation.safeParse(obj);
      if (!parsed.success) {
        this.logger.error({ err: describeIssues(parsed.error) }, 'own NodeIPAllocation is invalid; ignoring this version');
        return;
      }
      const mine = ++seq;
      void this.poolSettings(parsed.data.spec.poolName).then((pool) => {
        if (mine === seq) onUpdate(parsed.data, pool);
      });
    };
    this.informer = new Informer({
      http: this.http,
      path: COLLECTION,
      fieldSelector: `metadata.name=${this.nodeName}`,
      // A complete list without our record: no NodeIPPool selects this node (yet).
      onList: (items) => {
        if (!items.some((o) => o.metadata.name === this.nodeName)) absent();
      },
      onEvent: (event, obj) => {
        if (event !== 'delete') handle(obj);
        else if (obj.metadata.name === this.nodeName) absent();
      },
      // at once after a dropped stream (new IPs must not wait), backing off while the API server is down
      onError: (err, retryInMs) => {
        if (!this.stopped) this.logger.warn({ err: err.message, retryInMs }, 'watch on own NodeIPAllocation failed; restarting');
      },
    });
    await this.informer.start();
  }

  async writeSpec(write: SpecWrite): Promise<void> {
    await this.http.request('PATCH', `${COLLECTION}/${encodeURIComponent(this.nodeName)}`, {
      query: { fieldManager: AGENT_FIELD_MANAGER },
      body: { spec: write },
      contentType: 'application/merge-patch+json',
      schema: z.unknown(),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    this.http.close();
  }
}
