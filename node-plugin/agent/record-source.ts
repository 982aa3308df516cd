import {
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_GROUP, API_VERSION, AGENT_FIELD_MANAGER } from '../../crds/api/group.js';
import { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { NodeIPPool } from '../../crds/api/nodeippool.js';
import { describeIssues } from '../../crds/api/validation.js';
import type { PoolSettings } from './address-service.js';
import { poolSettingsFrom, type RecordSource, type SpecWrite } from './sync.js';
import { WatchBackoff } from '../../controllers/watch-backoff.js';

/**
 * Feeds the agent its node's NodeIPAllocation (and the pool's settings) from the API server, through an
 * informer on its own record only (field selector metadata.name=<node>), and carries its spec writes
 * back as a merge patch of spec.demand and spec.releasedIPs with field manager podvnet-agent.
 */

const PLURAL = 'nodeipallocations';
const POOL_PLURAL = 'nodeippools';

export class KubeRecordSource implements RecordSource {
  private informer: ListWatch<KubernetesObject> | undefined;
  private api: CustomObjectsApi;
  private pool: { name: string; settings: PoolSettings; at: number } | undefined;
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly nodeName: string,
    private readonly logger: Logger,
    private readonly poolRefreshMs = 30_000,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  private async poolSettings(name: string): Promise<PoolSettings | undefined> {
    if (this.pool?.name === name && Date.now() - this.pool.at < this.poolRefreshMs) return this.pool.settings;
    try {
      const raw: unknown = await this.api.getClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: POOL_PLURAL, name });
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
    const fieldSelector = `metadata.name=${this.nodeName}`;
    // Every change bumps `seq`; a record waiting for its pool's settings is applied only if nothing newer
    // came meanwhile, so a slow pool read can never bring back an older version (or a deleted record).
    let seq = 0;
    const absent = () => {
      seq++;
      onUpdate(undefined, this.pool?.settings);
    };
    const backoff = new WatchBackoff({ firstMs: 100, maxMs: 2000 });
    const listFn = async () => {
      const list = (await this.api.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: PLURAL, fieldSelector })) as KubernetesListObject<KubernetesObject>;
      backoff.reset();
      // A complete list without our record: no NodeIPPool selects this node (yet).
      if (!(list.items ?? []).some((o) => o.metadata?.name === this.nodeName)) absent();
      return list;
    };
    const informer = new ListWatch<KubernetesObject>(`/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`, new Watch(this.kc), listFn, false, undefined, fieldSelector);
    this.informer = informer;
    const handle = (obj: KubernetesObject) => {
      if (obj.metadata?.name !== this.nodeName) return;
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
    informer.on('add', handle);
    informer.on('update', handle);
    informer.on('delete', (obj) => {
      if (obj.metadata?.name === this.nodeName) absent();
    });
    informer.on('error', (err) => {
      if (this.stopped) return;
      this.logger.warn({ err: (err as Error)?.message ?? String(err) }, 'watch on own NodeIPAllocation failed; restarting');
      // at once after a dropped stream (new IPs must not wait), backing off while the API server is down
      setTimeout(() => {
        if (!this.stopped) void informer.start().catch(() => undefined);
      }, backoff.next()).unref();
    });
    await informer.start();
  }

  async writeSpec(write: SpecWrite): Promise<void> {
    await this.api.patchClusterCustomObject(
      { group: API_GROUP, version: API_VERSION, plural: PLURAL, name: this.nodeName, body: { spec: write }, fieldManager: AGENT_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
  }
}
