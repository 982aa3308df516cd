import { z } from 'zod';
import { WatchBackoff } from '../../../controllers/watch-backoff.js';
import { KubeApiError, type KubeHttp } from './http.js';

/**
 * One set of objects (a collection path and a field selector) kept in view the way an informer does it,
 * per the API's list/watch protocol: a LIST gives the objects and the collection's resourceVersion; a
 * WATCH from there (allowWatchBookmarks) brings ADDED, MODIFIED and DELETED events and BOOKMARKs that
 * only move the resourceVersion on. A watch the server ends (its timeoutSeconds, a restart, a load
 * balancer) resumes from the last resourceVersion seen; a resourceVersion too old to resume from (410
 * Gone, as an HTTP answer or as an ERROR event) means a new LIST, whose difference from what was known
 * is delivered as add/update/delete. Failures (a refused or dropped connection, 429, 5xx) retry with
 * WatchBackoff: almost at once the first time, slower while they repeat.
 */

export interface KubeObject {
  metadata: { name: string; resourceVersion?: string };
  [key: string]: unknown;
}

const ObjectMeta = z.looseObject({ metadata: z.looseObject({ name: z.string().min(1), resourceVersion: z.string().optional() }) });
const ObjectList = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string().min(1) }),
  items: z.array(ObjectMeta).nullable().transform((items) => items ?? []),
});
const WatchEvent = z.discriminatedUnion('type', [
  z.object({ type: z.enum(['ADDED', 'MODIFIED', 'DELETED']), object: ObjectMeta }),
  z.object({ type: z.literal('BOOKMARK'), object: z.looseObject({ metadata: z.looseObject({ resourceVersion: z.string().min(1) }) }) }),
  z.object({ type: z.literal('ERROR'), object: z.looseObject({ code: z.number().optional(), reason: z.string().optional(), message: z.string().optional() }) }),
]);

export type InformerEvent = 'add' | 'update' | 'delete';

export interface InformerOptions {
  http: KubeHttp;
  /** The collection, e.g. /apis/podvnet.io/v1alpha1/nodeipallocations. */
  path: string;
  fieldSelector?: string;
  /** After every successful LIST, with its items, before the events it leads to. */
  onList?(items: KubeObject[]): void;
  onEvent(event: InformerEvent, object: KubeObject): void;
  /** A failure; the informer retries after `retryInMs`. */
  onError?(err: Error, retryInMs: number): void;
  backoff?: WatchBackoff;
  /** The server-side timeoutSeconds of each watch; by default 5 to 10 minutes, spread so clients do not all reconnect together. */
  watchTimeoutSeconds?: () => number;
}

/** Why a watch ended: a resourceVersion too old (list again), or an end after which the watch resumes. */
type WatchEnd = 'expired' | 'timed-out' | 'ended';

export class Informer {
  private readonly known = new Map<string, string | undefined>(); // name -> resourceVersion
  private rv: string | undefined;
  private stopped = false;
  private readonly aborted = new AbortController();
  private wake: (() => void) | undefined;
  private readonly backoff: WatchBackoff;
  private running: Promise<void> | undefined;
  /** LISTs done so far (the first, and one after each 410). */
  lists = 0;
  /** WATCH requests the server accepted so far. */
  watches = 0;

  constructor(private readonly o: InformerOptions) {
    this.backoff = o.backoff ?? new WatchBackoff({ firstMs: 100, maxMs: 2000 });
  }

  /** The resourceVersion the next watch starts from (undefined: a LIST comes first). */
  get resourceVersion(): string | undefined {
    return this.rv;
  }

  /** Lists once (resolving when that first LIST answered or failed), then keeps watching until stop. */
  start(): Promise<void> {
    return new Promise((firstListDone) => {
      this.running = this.loop(firstListDone);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.aborted.abort(); // a request or watch in flight ends now
    this.wake?.();
    await this.running;
  }

  private async loop(firstListDone: () => void): Promise<void> {
    while (!this.stopped) {
      let delayMs = 0;
      try {
        if (this.rv === undefined) {
          try {
            await this.list();
          } finally {
            firstListDone();
          }
        }
        const end = await this.watch();
        if (end === 'expired') this.rv = undefined;
        // a watch that ran its whole timeoutSeconds resumes at once; any other end counts as a failure
        if (end !== 'timed-out') delayMs = this.backoff.next();
      } catch (err) {
        if (this.stopped) break;
        delayMs = this.backoff.next();
        if (err instanceof KubeApiError && err.code === 410) this.rv = undefined; // compacted: list again, nothing failed
        else {
          if (err instanceof KubeApiError && err.retryAfterSeconds !== undefined) delayMs = Math.max(delayMs, Math.min(err.retryAfterSeconds * 1000, 30_000));
          this.o.onError?.(err as Error, delayMs);
        }
      }
      if (delayMs > 0 && !this.stopped) await this.sleep(delayMs);
    }
    firstListDone(); // stopped before the first list answered
  }

  private async list(): Promise<void> {
    const list = await this.o.http.request('GET', this.o.path, { query: { fieldSelector: this.o.fieldSelector }, schema: ObjectList, signal: this.aborted.signal });
    this.lists++;
    this.backoff.reset();
    if (this.stopped) return;
    const items = list.items as KubeObject[];
    this.o.onList?.(items);
    const gone = new Set(this.known.keys());
    for (const item of items) {
      const name = item.metadata.name;
      gone.delete(name);
      const before = this.known.has(name);
      const changed = this.known.get(name) !== item.metadata.resourceVersion;
      this.known.set(name, item.metadata.resourceVersion);
      if (!before) this.o.onEvent('add', item);
      else if (changed) this.o.onEvent('update', item);
    }
    for (const name of gone) {
      this.known.delete(name);
      this.o.onEvent('delete', { metadata: { name } });
    }
    this.rv = list.metadata.resourceVersion;
  }

  private async watch(): Promise<WatchEnd> {
    const timeoutSeconds = (this.o.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300)))();
    const started = Date.now();
    // the server ends the watch after timeoutSeconds; a stream silent well past that is dead
    const stream = await this.o.http.stream(this.o.path, { fieldSelector: this.o.fieldSelector, resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds }, (timeoutSeconds + 30) * 1000, this.aborted.signal);
    this.watches++;
    try {
      if (this.stopped) return 'ended';
      for await (const line of stream.lines) {
        if (this.stopped) return 'ended';
        if (!line.trim()) continue;
        const end = this.apply(line);
        if (end) return end;
      }
    } finally {
      stream.abort();
    }
    return Date.now() - started >= timeoutSeconds * 1000 - 1000 ? 'timed-out' : 'ended';
  }

  /** Applies one watch line; says when it ends the watch. */
  private apply(line: string): WatchEnd | undefined {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new Error(`watch ${this.o.path}: a line that is not JSON: ${line.slice(0, 200)}`);
    }
    const r = WatchEvent.safeParse(json);
    if (!r.success) throw new Error(`watch ${this.o.path}: unexpected event: ${line.slice(0, 200)}`);
    const ev = r.data;
    if (ev.type === 'ERROR') {
      if (ev.object.code === 410) return 'expired';
      throw new KubeApiError(ev.object.code ?? 500, ev.object.reason ?? 'Unknown', `watch ${this.o.path}: ${ev.object.message ?? 'error event'}`);
    }
    this.backoff.reset(); // events flow: the watch works
    this.rv = ev.object.metadata.resourceVersion ?? this.rv;
    if (ev.type === 'BOOKMARK') return undefined;
    const obj = ev.object as KubeObject;
    const name = obj.metadata.name;
    if (ev.type === 'DELETED') {
      this.known.delete(name);
      this.o.onEvent('delete', obj);
    } else {
      const before = this.known.has(name);
      this.known.set(name, obj.metadata.resourceVersion);
      this.o.onEvent(before ? 'update' : 'add', obj);
    }
    return undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).then(() => {
      this.wake = undefined;
    });
  }
}
