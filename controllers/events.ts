import type { Logger } from 'pino';

/**
 * Events people read: what Azure accepted on a node's NIC (IPs added, released, before → after, how long
 * Azure took) on the node's record and on its pool, and the Warnings of the reconcilers. Two things keep a
 * burst from flooding the API server:
 * - NIC changes of one object are folded while they keep coming (a burst of three writes is one event
 *   "added 24 IPs in 3 NIC writes: 8 → 32"), and written once the object is quiet for a moment;
 * - an event that recurs is not created again but counted in its `series` (events.k8s.io/v1), as
 *   client-go's event recorder does: one object per repeating problem, with a count and the last time seen.
 * The decisions are pure functions below; EventRecorder is the thin part that talks to the API server.
 */

export type EventType = 'Normal' | 'Warning';

export interface EventSpec {
  type: EventType;
  reason: string;
  action: string;
  note: string;
}

/** One NIC write Azure accepted for one node: its count of pool ip-configs before and after. */
export interface NicChange {
  node: string;
  before: number;
  after: number;
  added: number;
  removed: number;
  /** How long the write took, long-running operation included. */
  azureMs: number;
  /** What one ip-config is: an IP (Individual), or a /28 block (Block pools). Default 'IP'. */
  unit?: 'IP' | 'block';
}

/** NIC writes folded together: the first `before`, the last `after`, the rest summed. */
export interface NicChanges {
  direction: Direction;
  /** Per node, in the order first seen: the first before and the last after. */
  nodes: Array<{ node: string; before: number; after: number }>;
  added: number;
  removed: number;
  writes: number;
  azureMs: number;
  longestMs: number;
  unit?: 'IP' | 'block';
}

export type Direction = 'added' | 'removed' | 'changed';

export const directionOf = (c: Pick<NicChange, 'added' | 'removed'>): Direction =>
  c.added > 0 && c.removed > 0 ? 'changed' : c.removed > 0 ? 'removed' : 'added';

/**
 * Folds one more write into what is pending for an object. A change of direction (a burst ends and the
 * release begins) closes the pending fold: it comes back as `flush`, to be written before the new one.
 */
export function foldNicChange(pending: NicChanges | undefined, c: NicChange): { flush?: NicChanges; pending: NicChanges } {
  const direction = directionOf(c);
  if (pending && pending.direction !== direction) return { flush: pending, pending: foldNicChange(undefined, c).pending };
  const nodes = pending ? pending.nodes.map((n) => ({ ...n })) : [];
  const seen = nodes.find((n) => n.node === c.node);
  if (seen) seen.after = c.after;
  else nodes.push({ node: c.node, before: c.before, after: c.after });
  return {
    pending: {
      direction,
      nodes,
      added: (pending?.added ?? 0) + c.added,
      removed: (pending?.removed ?? 0) + c.removed,
      writes: (pending?.writes ?? 0) + 1,
      azureMs: (pending?.azureMs ?? 0) + c.azureMs,
      longestMs: Math.max(pending?.longestMs ?? 0, c.azureMs),
      ...(c.unit === 'block' ? { unit: 'block' as const } : {}),
    },
  };
}

const REASONS: Record<Direction, string> = { added: 'IPsAdded', removed: 'IPsReleased', changed: 'IPsChanged' };
const ACTIONS: Record<Direction, string> = { added: 'AddIPs', removed: 'RemoveIPs', changed: 'UpdateNIC' };

const seconds = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** What the folded changes say, on the node's record (`scope` 'node') or on its pool ('pool'). */
export function nicChangesEvent(c: NicChanges, scope: 'node' | 'pool'): EventSpec {
  const unit = c.unit === 'block' ? '/28 block' : 'IP';
  const what = c.direction === 'added' ? `added ${plural(c.added, unit)}`
    : c.direction === 'removed' ? `removed ${plural(c.removed, `released ${unit}`)}`
    : `added ${plural(c.added, unit)} and removed ${plural(c.removed, `released ${unit}`)}`;
  const writes = c.writes === 1 ? 'in 1 NIC write' : `in ${c.writes} NIC writes`;
  const took = c.writes === 1 ? `Azure took ${seconds(c.azureMs)}` : `Azure took ${seconds(c.azureMs)} in all, the longest write ${seconds(c.longestMs)}`;
  let where: string;
  if (scope === 'node') {
    const n = c.nodes[0]!;
    where = `: ${n.before} → ${n.after} ${c.unit === 'block' ? 'blocks' : 'IPs'} on the NIC`;
  } else {
    const shown = c.nodes.slice(0, 3).map((n) => `${n.node} ${n.before} → ${n.after}`).join(', ');
    const more = c.nodes.length > 3 ? ` and ${c.nodes.length - 3} more` : '';
    where = ` on ${plural(c.nodes.length, 'node')} (${shown}${more})`;
  }
  return { type: 'Normal', reason: REASONS[c.direction], action: ACTIONS[c.direction], note: `${what} ${writes}${where}; ${took}` };
}

/** What is known of an event already written, for deciding whether a new one repeats it. */
export interface SeenEvent {
  note: string;
  createdAt: number;
  lastObservedAt: number;
}

export interface RepeatPolicy {
  /** A repeat within this long of the last observation joins the series (client-go: 6 minutes). */
  seriesWindowMs: number;
  /** A different note within this long of the event's creation joins the series too, rather than making a new event. */
  minNewEventMs: number;
}

export const DEFAULT_REPEAT_POLICY: RepeatPolicy = { seriesWindowMs: 6 * 60_000, minNewEventMs: 60_000 };

/**
 * Create a new event, or count this one in the series of the last (same object, type, reason and action).
 * The API server keeps an event's note immutable, so a changed note gets an event of its own, but at most
 * one per `minNewEventMs`: a Warning whose text carries a changing number does not make one per round.
 */
export function repeatDecision(last: SeenEvent | undefined, note: string, now: number, p: RepeatPolicy = DEFAULT_REPEAT_POLICY): 'create' | 'series' {
  if (!last || now - last.lastObservedAt >= p.seriesWindowMs) return 'create';
  if (last.note === note || now - last.createdAt < p.minNewEventMs) return 'series';
  return 'create';
}

/** The API server's MicroTime: RFC 3339 with exactly six fractional digits. */
export const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

// ---- the recorder: the thin part that writes ----

export interface EventSink {
  create(collection: string, body: unknown): Promise<unknown>;
  mergePatch(path: string, patch: unknown): Promise<unknown>;
}

export interface Regarding {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string | undefined;
}

export interface RecorderOptions {
  /** Events API collection of the namespace events go to. */
  collection: string;
  reportingController: string;
  reportingInstance: string;
  /** NIC changes are written once an object saw none for this long... */
  quietMs: number;
  /** ...or this long after the first, whichever comes first. */
  maxHoldMs: number;
  /** Series counts are written at most this often per event. */
  seriesFlushMs: number;
  repeat: RepeatPolicy;
  now: () => number;
}

export const DEFAULT_RECORDER_OPTIONS = { quietMs: 3000, maxHoldMs: 30_000, seriesFlushMs: 10_000, repeat: DEFAULT_REPEAT_POLICY, now: Date.now };

interface Written extends SeenEvent {
  /** The event's name, once the create returned. */
  name: Promise<string | undefined>;
  count: number;
  patchTimer?: NodeJS.Timeout | undefined;
  patched: number;
}

interface Held {
  regarding: Regarding;
  scope: 'node' | 'pool';
  changes: NicChanges;
  firstAt: number;
  timer: NodeJS.Timeout;
}

export class EventRecorder {
  private readonly opts: RecorderOptions;
  private readonly written = new Map<string, Written>();
  private readonly held = new Map<string, Held>();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly sink: EventSink, private readonly log: Pick<Logger, 'warn'>, opts: Pick<RecorderOptions, 'collection' | 'reportingController' | 'reportingInstance'> & Partial<RecorderOptions>) {
    this.opts = { ...DEFAULT_RECORDER_OPTIONS, ...opts };
  }

  /** A NIC write Azure accepted for `node`: folded into what is held for its record and for its pool. */
  nicChanged(record: Regarding, pool: Regarding | undefined, change: NicChange): void {
    this.hold(record, 'node', change);
    if (pool) this.hold(pool, 'pool', change);
  }

  /** An event now (Warnings), or a count in the series of the same one written recently. */
  record(regarding: Regarding, spec: EventSpec): void {
    const now = this.opts.now();
    const key = `${regarding.kind}/${regarding.name}/${spec.type}/${spec.reason}/${spec.action}`;
    const last = this.written.get(key);
    // Normal NIC-change events are folded already (one per burst): each says something new, so only a
    // repeat of the same note joins a series; a Warning's changing text is held to one event a minute.
    const policy = spec.type === 'Normal' ? { ...this.opts.repeat, minNewEventMs: 0 } : this.opts.repeat;
    if (repeatDecision(last, spec.note, now, policy) === 'series' && last) {
      last.count++;
      last.lastObservedAt = now;
      last.patchTimer ??= setTimeout(() => this.patchSeries(key, last), Math.max(0, last.patched + this.opts.seriesFlushMs - now)).unref();
      return;
    }
    if (last?.patchTimer) { clearTimeout(last.patchTimer); this.patchSeries(key, last); }
    const body = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { generateName: `${regarding.name}.`, namespace: this.namespace },
      eventTime: microTime(now),
      reportingController: this.opts.reportingController,
      reportingInstance: this.opts.reportingInstance,
      action: spec.action,
      reason: spec.reason,
      type: spec.type,
      note: spec.note.slice(0, 1024),
      regarding,
    };
    const name = this.track(this.sink.create(this.opts.collection, body))
      .then((o) => (o as { metadata?: { name?: string } })?.metadata?.name)
      .catch((e: Error) => { this.log.warn({ err: e.message, reason: spec.reason }, 'could not record event'); return undefined; });
    this.written.set(key, { note: spec.note, createdAt: now, lastObservedAt: now, name, count: 1, patched: now });
    if (this.written.size > 10_000) this.forgetOld(now);
  }

  /** Writes everything held and every pending series count (shutdown, tests). */
  async flush(): Promise<void> {
    for (const key of [...this.held.keys()]) this.release(key);
    for (const [key, w] of this.written) if (w.patchTimer) { clearTimeout(w.patchTimer); this.patchSeries(key, w); }
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private get namespace(): string {
    return this.opts.collection.split('/namespaces/')[1]?.split('/')[0] ?? 'default';
  }

  private hold(regarding: Regarding, scope: 'node' | 'pool', change: NicChange): void {
    const key = `${regarding.kind}/${regarding.name}`;
    const now = this.opts.now();
    const h = this.held.get(key);
    const folded = foldNicChange(h?.changes, change);
    if (folded.flush && h) {
      clearTimeout(h.timer);
      this.held.delete(key);
      this.record(h.regarding, nicChangesEvent(folded.flush, scope));
    }
    const firstAt = folded.flush || !h ? now : h.firstAt;
    if (h && !folded.flush) clearTimeout(h.timer);
    const wait = Math.max(0, Math.min(this.opts.quietMs, firstAt + this.opts.maxHoldMs - now));
    const timer = setTimeout(() => this.release(key), wait).unref();
    this.held.set(key, { regarding, scope, changes: folded.pending, firstAt, timer });
  }

  private release(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    clearTimeout(h.timer);
    this.held.delete(key);
    this.record(h.regarding, nicChangesEvent(h.changes, h.scope));
  }

  private patchSeries(key: string, w: Written): void {
    w.patchTimer = undefined;
    w.patched = this.opts.now();
    const series = { count: w.count, lastObservedTime: microTime(w.lastObservedAt) };
    this.track(w.name.then((name) => name && this.sink.mergePatch(`${this.opts.collection}/${name}`, { series })))
      .catch((e: Error) => this.log.warn({ err: e.message, key }, 'could not update event series'));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  private forgetOld(now: number): void {
    for (const [k, w] of this.written) if (!w.patchTimer && now - w.lastObservedAt >= this.opts.repeat.seriesWindowMs) this.written.delete(k);
  }
}
