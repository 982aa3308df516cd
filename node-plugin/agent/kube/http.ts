import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { describeIssues } from '../../../crds/api/validation.js';
import type { KubeTarget } from './config.js';

/**
 * Requests to the API server over one keep-alive connection pool: JSON in and out, every answer checked
 * with zod where it comes in, and a refusal turned into a KubeApiError carrying the Status the API server
 * sent (code, reason, message). `stream` opens a watch: one JSON object per line until the server ends it.
 */

/** The API server's error body (kind Status); the fields the agent uses. */
const StatusBody = z.looseObject({
  kind: z.literal('Status'),
  code: z.number().int().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
});
export type KubeStatus = z.infer<typeof StatusBody>;

export class KubeApiError extends Error {
  constructor(
    /** The HTTP status (the Status's code). */
    readonly code: number,
    /** The Status's reason (NotFound, Conflict, Expired, ...), or the HTTP status text. */
    readonly reason: string,
    message: string,
    /** Seconds the server asked to wait (Retry-After), if it said. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** The error for an answer with status `code` and this body: the Status's own words when the body is one. */
export function apiError(code: number, body: string, retryAfter?: string, what = ''): KubeApiError {
  let parsed: KubeStatus | undefined;
  try {
    const r = StatusBody.safeParse(JSON.parse(body));
    if (r.success) parsed = r.data;
  } catch {
    // not JSON: described from the HTTP status and the text
  }
  const reason = parsed?.reason || http.STATUS_CODES[code] || 'Unknown';
  const message = parsed?.message || body.trim().slice(0, 200) || `HTTP ${code}`;
  const seconds = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
  return new KubeApiError(parsed?.code ?? code, reason, `${what}${code} ${reason}: ${message}`, seconds);
}

export interface RequestOptions<T> {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Content-Type of the body; application/json unless a patch says which kind it is. */
  contentType?: string;
  /** What the answer must look like. */
  schema: z.ZodType<T>;
  /** How long the server may stay silent (default 30 s). */
  timeoutMs?: number;
  /** Aborts the request (stopping an informer must not wait for an answer). */
  signal?: AbortSignal;
}

export interface WatchStream {
  /** The lines the server sends, until it ends the stream (or `abort`). */
  lines: AsyncIterable<string>;
  abort(): void;
}

export class KubeHttp {
  private readonly agent: http.Agent;

  constructor(private readonly target: KubeTarget) {
    const common = { keepAlive: true, keepAliveMsecs: 30_000 };
    this.agent = target.server.protocol === 'https:'
      ? new https.Agent({ ...common, ca: target.ca, cert: target.cert, key: target.key, rejectUnauthorized: !target.insecureSkipTLSVerify })
      : new http.Agent(common);
  }

  /** One request with a JSON answer, checked against `schema`. */
  async request<T>(method: string, path: string, o: RequestOptions<T>): Promise<T> {
    const what = `${method} ${path}: `;
    const body = o.body === undefined ? undefined : { text: JSON.stringify(o.body), type: o.contentType ?? 'application/json' };
    const timeoutMs = o.timeoutMs ?? 30_000;
    const res = await this.send(method, path, o.query, body, { answerMs: timeoutMs, streamMs: timeoutMs, signal: o.signal });
    const text = await readAll(res);
    if (res.statusCode !== 200 && res.statusCode !== 201) throw apiError(res.statusCode ?? 0, text, header(res, 'retry-after'), what);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${what}the answer is not JSON: ${text.slice(0, 200)}`);
    }
    const r = o.schema.safeParse(json);
    if (!r.success) throw new Error(`${what}unexpected answer: ${describeIssues(r.error)}`);
    return r.data;
  }

  /**
   * Opens a watch (GET with watch=true). Resolves once the server answered 200; other answers reject with
   * a KubeApiError. The answer must come within 30 s; then `idleMs`: a stream that sends nothing (not
   * even a bookmark) for that long is ended.
   */
  async stream(path: string, query: RequestOptions<unknown>['query'], idleMs: number, signal?: AbortSignal): Promise<WatchStream> {
    const what = `watch ${path}: `;
    const res = await this.send('GET', path, { ...query, watch: true }, undefined, { answerMs: 30_000, streamMs: idleMs, signal });
    if (res.statusCode !== 200) throw apiError(res.statusCode ?? 0, await readAll(res), header(res, 'retry-after'), what);
    return { lines: linesOf(res), abort: () => res.destroy() };
  }

  /** Closes the pooled connections. */
  close(): void {
    this.agent.destroy();
  }

  private send(
    method: string,
    path: string,
    query: RequestOptions<unknown>['query'],
    body: { text: string; type: string } | undefined,
    limits: { answerMs: number; streamMs: number; signal?: AbortSignal },
  ): Promise<http.IncomingMessage> {
    const url = new URL(path, this.target.server);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'podvnet-agent' };
    const token = this.target.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) {
      headers['Content-Type'] = body.type;
      headers['Content-Length'] = String(Buffer.byteLength(body.text));
    }
    const send = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      let silentMs = limits.answerMs;
      const req = send(url, { method, headers, agent: this.agent, signal: limits.signal }, (res) => {
        // answered: from now on the body (a watch: events and bookmarks) may pause up to streamMs
        silentMs = limits.streamMs;
        req.setTimeout(silentMs);
        resolve(res);
      });
      // a server silent that long (no answer; a watch with no event and no bookmark) is given up
      req.setTimeout(silentMs, () => req.destroy(new Error(`${method} ${url.pathname}: nothing from the API server for ${silentMs} ms`)));
      req.on('error', reject);
      req.end(body?.text);
    });
  }
}

function header(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The lines of a watch stream as they arrive. A stream cut off (reset, idle, aborted) just ends, without
 * its unfinished last line; what follows is the caller's resume. (Not node:readline: 0.4 MiB more.)
 */
async function* linesOf(res: http.IncomingMessage): AsyncGenerator<string> {
  res.setEncoding('utf8'); // a character split across chunks stays whole
  let partial = '';
  try {
    for await (const chunk of res as AsyncIterable<string>) {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      yield* lines;
    }
  } catch {
    return; // cut off
  }
  if (partial) yield partial;
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
