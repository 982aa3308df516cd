// Watch streams (GET ...?watch=true): the initial events or the backlog since a resourceVersion, then every
// store event in scope as one JSON line, BOOKMARKs when asked for, and an end at timeoutSeconds, when the
// client goes, when the CRD of a custom resource is deleted, or when the server drops every watch.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Api, Selectors } from './api.js';
import { wantsTable } from './http.js';
import { apiVersionOf, type ResourceType } from './registry.js';
import { badRequest, gone } from './status.js';
import type { Obj, StoreEvent } from './store.js';
import { toTable } from './table.js';

export class WatchStreams {
  /** Open watch streams, each with the function that ends it (and detaches it from the store at once). */
  private watches = new Map<ServerResponse, () => void>();
  /** Each store event's JSON line per view (version, type, table or not): many watchers share one string. */
  private viewCache = new WeakMap<StoreEvent, Map<string, string>>();

  constructor(private readonly api: Api, private readonly bookmarkIntervalMs: number) {}

  closeAll(): void {
    for (const end of [...this.watches.values()]) end();
    this.watches.clear();
  }

  private eventJson(t: ResourceType, e: StoreEvent, type: string, table: boolean): string {
    const key = `${apiVersionOf(t)}|${type}|${table}`;
    let m = this.viewCache.get(e);
    if (!m) this.viewCache.set(e, (m = new Map()));
    let s = m.get(key);
    if (!s) {
      const obj = this.api.view(t, e.obj);
      s = JSON.stringify({ type, object: table ? toTable(t, [obj], { resourceVersion: obj.metadata.resourceVersion }, 'Object') : obj });
      m.set(key, s);
    }
    return s;
  }

  /**
   * Where a watch starts: the matching objects now (as ADDED events) when resourceVersion is unset or "0"
   * or sendInitialEvents is on, else the stored events after resourceVersion (null: history is gone, 410).
   */
  private startingPoint(t: ResourceType, ns: string, sel: Selectors, rvParam: string, sendInitial: boolean): { initial: Obj[]; backlog: StoreEvent[] | null } {
    const store = this.api.store;
    if (rvParam === '' || rvParam === '0' || sendInitial) {
      if (sendInitial && rvParam !== '' && rvParam !== '0') {
        throw badRequest('sendInitialEvents is only supported with resourceVersion unset or "0"');
      }
      return { initial: store.list(t.bucket, t.namespaced && ns ? ns : undefined).filter((o) => this.api.matches(t, sel, o)), backlog: [] };
    }
    const rv = Number(rvParam);
    if (!Number.isInteger(rv) || rv < 0) throw badRequest(`invalid resource version "${rvParam}"`);
    return { initial: [], backlog: store.eventsSince(t.bucket, rv) };
  }

  /** Serves one watch request on `res` until it ends; a bad query throws before anything is written. */
  serve(t: ResourceType, ns: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse, accept: string): void {
    const sel = this.api.parseSelectors(t, { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined });
    const rvParam = q.get('resourceVersion') ?? '';
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const table = wantsTable(accept);
    const timeoutSec = Number(q.get('timeoutSeconds') ?? '1800');
    const prefix = t.namespaced && ns ? `${ns}/` : '';
    const store = this.api.store;
    const inScope = (e: StoreEvent): boolean => !prefix || e.key.startsWith(prefix);

    const { initial, backlog } = this.startingPoint(t, ns, sel, rvParam, sendInitial);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (backlog === null) {
      const st = gone(`too old resource version: ${rvParam} (${store.currentRV()})`).toStatus();
      res.end(`${JSON.stringify({ type: 'ERROR', object: st })}\n`);
      return;
    }
    // An ended stream is inert: ending it detaches it from the store and its timers in the same tick, and
    // every write checks first. (A stream ended by dropWatches stays subscribed until its 'close' event; a
    // store event in between used to write after end, an uncaught 'error' that took the hosting process down.)
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    let unsubscribe = (): void => undefined;
    const detach = (): void => {
      unsubscribe();
      for (const tm of timers) clearInterval(tm);
      this.watches.delete(res);
    };
    const end = (): void => {
      if (ended) return;
      ended = true;
      detach();
      if (!res.writableEnded && !res.destroyed) res.end();
    };
    const write = (s: string): void => {
      if (ended || res.writableEnded || res.destroyed) return;
      res.write(`${s}\n`);
    };
    // a client gone mid-write (EPIPE, ECONNRESET) ends the stream; it is not the host's error
    res.on('error', end);
    this.watches.set(res, end);
    const forward = (e: StoreEvent): void => {
      if (!inScope(e)) return;
      const type = this.api.watchEventType(t, sel, e);
      if (type) write(this.eventJson(t, e, type, table));
    };
    for (const o of initial) {
      const obj = this.api.view(t, o);
      write(JSON.stringify({ type: 'ADDED', object: table ? toTable(t, [obj], { resourceVersion: obj.metadata.resourceVersion }, 'Object') : obj }));
    }
    if (sendInitial && bookmarks) {
      write(JSON.stringify({ type: 'BOOKMARK', object: { kind: t.kind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(store.currentRV()), annotations: { 'k8s.io/initial-events-end': 'true' } } } }));
    }
    for (const e of backlog) forward(e);
    const unsubscribeObjects = store.subscribe(t.bucket, forward);
    // a custom resource's watches end when its CRD goes away
    const unsubscribeCrd = t.crdName
      ? store.subscribe('apiextensions.k8s.io/customresourcedefinitions', (e) => { if (e.type === 'DELETED' && e.obj.metadata.name === t.crdName) end(); })
      : () => true;
    unsubscribe = (): void => { unsubscribeObjects(); unsubscribeCrd(); };
    if (ended) { detach(); return; }
    if (bookmarks) {
      timers.push(setInterval(() => {
        write(JSON.stringify({ type: 'BOOKMARK', object: { kind: t.kind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(store.currentRV()) } } }));
      }, this.bookmarkIntervalMs));
    }
    if (timeoutSec > 0) timers.push(setTimeout(end, timeoutSec * 1000));
    const closed = (): void => { ended = true; detach(); };
    res.on('close', closed);
    req.on('close', closed);
  }
}
