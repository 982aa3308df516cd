import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { makeInformer, type KubeConfig, type KubernetesObject, type KubernetesListObject } from '@kubernetes/client-node';
import { WatchBackoff } from './watch-backoff.js';

/**
 * The API-server side, kept thin: a small REST client (JSON, merge patch, optimistic concurrency through
 * resourceVersion) on the credentials of a client-node KubeConfig, and client-node informers for the
 * watched kinds. The controller sees plain objects; zod checks them where it reads them.
 */

export const PATHS = {
  pools: '/apis/podvnet.io/v1alpha1/nodeippools',
  records: '/apis/podvnet.io/v1alpha1/nodeipallocations',
  nodes: '/api/v1/nodes',
  events: (ns: string) => `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
  leases: (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
};

export class KubeError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isConflict = (e: unknown) => e instanceof KubeError && e.status === 409;
export const isNotFound = (e: unknown) => e instanceof KubeError && e.status === 404;

export type Json = Record<string, unknown>;

export class KubeClient {
  private readonly server: URL;
  private base: RequestOptions | undefined;

  /** Writes are attributed to `fieldManager` in managedFields (the controller's and the agent's stay apart). */
  constructor(private readonly kc: KubeConfig, private readonly maxSockets = 64, readonly fieldManager?: string) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  private async options(): Promise<RequestOptions> {
    if (!this.base) {
      const opts: RequestOptions = { headers: {} };
      await this.kc.applyToHTTPSOptions(opts);
      const tls = this.server.protocol === 'https:';
      const agentOpts = { keepAlive: true, maxSockets: this.maxSockets };
      opts.agent = tls
        ? new HttpsAgent({ ...agentOpts, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized ?? true })
        : new HttpAgent(agentOpts);
      this.base = opts;
    }
    return this.base;
  }

  /** Sends one request; 2xx gives the parsed body, anything else a KubeError with the Status reason. */
  async request<T = Json>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const base = await this.options();
    const url = new URL(path, this.server);
    if (this.fieldManager && (method === 'POST' || method === 'PUT' || method === 'PATCH')) url.searchParams.set('fieldManager', this.fieldManager);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, {
        ...base,
        method,
        headers: {
          ...(base.headers as Record<string, string>),
          accept: 'application/json',
          ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const s = (parsed ?? {}) as { reason?: string; message?: string };
          reject(new KubeError(status, s.reason ?? 'Unknown', `${method} ${path}: ${status} ${s.message ?? text}`));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  get<T = Json>(path: string): Promise<T> { return this.request<T>('GET', path); }
  create<T = Json>(collection: string, obj: unknown): Promise<T> { return this.request<T>('POST', collection, obj); }
  mergePatch<T = Json>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, patch, 'application/merge-patch+json');
  }
  jsonPatch<T = Json>(path: string, ops: unknown[]): Promise<T> {
    return this.request<T>('PATCH', path, ops, 'application/json-patch+json');
  }
  update<T = Json>(path: string, obj: unknown): Promise<T> { return this.request<T>('PUT', path, obj); }
  delete<T = Json>(path: string, options?: unknown): Promise<T> { return this.request<T>('DELETE', path, options); }

  /**
   * An informer (list + watch, client-node's) over a collection, restarted after errors. start() resolves
   * only once a list has succeeded and filled the cache: client-node's start() also resolves when its
   * first list fails (it reports the error and returns), and a controller that then acts on an empty cache
   * takes every record for one whose pool or node is gone and tears its IPs down (seen in the soak: a
   * controller restarted while the API server answered 429).
   */
  informer<T extends KubernetesObject>(path: string, onError: (e: unknown) => void = () => {}) {
    const backoff = new WatchBackoff({ firstMs: 100, maxMs: 1000 });
    let markListed!: () => void;
    const listed = new Promise<void>((resolve) => { markListed = resolve; });
    const list = async (): Promise<KubernetesListObject<T>> => {
      const l = await this.get<KubernetesListObject<T>>(path);
      backoff.reset();
      // client-node fills its cache from this list in the continuations that follow; a macrotask later it has
      setImmediate(markListed);
      return l;
    };
    const inf = makeInformer<T>(this.kc, path, list);
    let stopped = false;
    inf.on('error', (e: unknown) => {
      onError(e);
      // at once after a dropped stream (demand must not wait), backing off while the API server is down
      if (!stopped) setTimeout(() => { if (!stopped) void inf.start().catch(onError); }, backoff.next()).unref();
    });
    return {
      informer: inf,
      async start() { await inf.start(); await listed; },
      async stop() { stopped = true; markListed(); await inf.stop(); },
    };
  }
}
