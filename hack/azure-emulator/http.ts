// The request and reply shapes every route shares, and the small HTTP helpers around them: body reading,
// JSON parsing, path matching, If-Match, paging, and turning an error into Azure's error reply.
import type { IncomingMessage, Server } from 'node:http';
import type { FaultRule } from './config.js';
import { AzureError, errors } from './errors.js';

export interface Reply { status: number; body?: unknown; headers?: Record<string, string> }

/** An ARM request as the routes see it; `fault` is set when an `as: 'operation'` fault matched it. */
export interface Ctx {
  method: string;
  url: URL;
  /** scheme://host the client connected to: absolute URLs in replies (operations, nextLink) use it. */
  origin: string;
  segs: string[];
  headers: IncomingMessage['headers'];
  body: unknown;
  fault: FaultRule | undefined;
}

/** The path parameters a route pattern named (`:sub`, `:rg`, `:nic`, ...), as the client spelled them. */
export type Params = Record<string, string>;
export type Handler = (ctx: Ctx, p: Params) => Reply | Promise<Reply>;
/** `kind` names the request for counts, latency and faults ('nic.put', 'vmssvm.get', ...). */
export interface Route { method: string; pattern: string[]; kind: string; handler: Handler }

/** A route; `pattern` is lower case, '/'-separated, with `:name` for a parameter. */
export const route = (method: string, pattern: string, kind: string, handler: Handler): Route =>
  ({ method, pattern: pattern.split('/'), kind, handler });

export const ok = (body: unknown): Reply => ({ status: 200, body });

/** Path parameters when the lower-cased segments `lsegs` fit `pattern`; values keep the client's case. */
export function matchPattern(pattern: string[], lsegs: string[], segs: string[]): Params | undefined {
  if (pattern.length !== lsegs.length) return undefined;
  const params: Params = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = segs[i]!;
    else if (p !== lsegs[i]) return undefined;
  }
  return params;
}

export function header(ctx: Ctx, name: string): string | undefined {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Network resources' If-Match: the ETag itself or `*` (which needs the resource to exist). */
export function checkIfMatch(ctx: Ctx, id: string, etag: string | undefined): void {
  const ifMatch = header(ctx, 'if-match');
  if (ifMatch === undefined) return;
  if (etag !== undefined && (ifMatch === '*' || ifMatch === etag)) return;
  throw errors.preconditionFailed(id, ifMatch, etag);
}

/** One page of a list, `$skiptoken` the offset, with an absolute nextLink while more remain. */
export function page<T>(ctx: Ctx, items: T[], render: (t: T) => unknown, pageSize: number): Reply {
  const skip = Number(ctx.url.searchParams.get('$skiptoken') ?? '0') || 0;
  const slice = items.slice(skip, skip + pageSize);
  const body: Record<string, unknown> = { value: slice.map(render) };
  if (skip + pageSize < items.length) {
    const next = new URL(ctx.url.toString());
    next.searchParams.set('$skiptoken', String(skip + pageSize));
    body.nextLink = `${ctx.origin}${next.pathname}${next.search}`;
  }
  return { status: 200, body };
}

/** Azure's error body for an AzureError; anything else is the emulator's own fault, a 500. */
export function errorReply(e: unknown, headers: Record<string, string> = {}): Reply {
  if (e instanceof AzureError) return { status: e.status, body: e.body(), headers: { ...headers, ...e.headers } };
  const err = new AzureError(500, 'InternalServerError', `Emulator error: ${(e as Error)?.message ?? String(e)}`);
  return { status: 500, body: err.body(), headers };
}

const MAX_BODY = 16 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw errors.badRequest('Request body too large.');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function parseJson(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw errors.badRequest('The request body is not valid JSON.');
  }
}

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}

export function hostForUrl(host: string): string { return host.includes(':') ? `[${host}]` : host; }
