// The HTTP side of the API server shared by its handlers: writing replies and Status errors, reading and
// decoding bodies, the resource path (/api/v1/namespaces/<ns>/<plural>/<name>/<subresource>) and the query
// parameters of lists, writes and deletes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Api, FieldValidation, ListQuery, WriteOptions } from './api.js';
import { decodeProtobufObject } from './protobuf.js';
import { ApiError, badRequest, internal, methodNotAllowed } from './status.js';
import type { Obj } from './store.js';

/** A resource request's path, parsed: `namespace` is '' for cluster-scoped paths. */
export interface ResourcePath {
  group: string;
  version: string;
  namespace: string;
  plural: string;
  name?: string;
  subresource?: string;
}

/** The API server's 404 for a path it does not serve. */
export const noSuchResource = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource');

/** The API server's 405 for a method the path does not take. */
export const methodNotAllowedHere = (): ApiError => methodNotAllowed('the server does not allow this method on the requested resource');

export function send(res: ServerResponse, code: number, body: unknown, warnings: string[] = [], contentType = 'application/json'): void {
  const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const headers: Record<string, string | string[]> = { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Content-Length': String(data.length) };
  if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(data);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof ApiError ? e : internal(String((e as Error)?.stack ?? e));
  send(res, err.code, err.toStatus());
}

export function readBody(req: IncomingMessage): Promise<string> {
  return readBodyBuffer(req).then((b) => b.toString('utf8'));
}

export function readBodyBuffer(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function parseRoute(parts: string[]): ResourcePath | null {
  // parts after /api or /apis/{group}: [version, ...]
  let group = '';
  let rest: string[];
  if (parts[0] === 'api') {
    rest = parts.slice(1);
  } else if (parts[0] === 'apis') {
    group = parts[1] ?? '';
    rest = parts.slice(2);
  } else return null;
  const version = rest[0];
  if (!version) return null;
  let r = rest.slice(1);
  if (r[0] === 'watch') r = r.slice(1);
  let namespace = '';
  if (r[0] === 'namespaces' && r.length >= 3 && !(group === '' && r.length === 3 && (r[2] === 'status' || r[2] === 'finalize'))) {
    namespace = r[1]!;
    r = r.slice(2);
  }
  if (!r[0]) return null;
  return { group, version, namespace, plural: r[0], name: r[1], subresource: r[2] };
}

export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

export function userAgentManager(req: IncomingMessage): string {
  const ua = req.headers['user-agent'] ?? 'unknown';
  return ua.split('/')[0] || 'unknown';
}

export function writeOptions(q: URLSearchParams, subresource: string | undefined): WriteOptions {
  const fv = q.get('fieldValidation');
  let fieldValidation: FieldValidation = 'Warn';
  if (fv) {
    if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw badRequest(`fieldValidation parameter unsupported: ${fv}`);
    fieldValidation = fv as FieldValidation;
  }
  const dry = q.getAll('dryRun');
  for (const d of dry) if (d !== 'All') throw badRequest(`dryRun value "${d}" is not supported`);
  if (subresource && subresource !== 'status') throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  return {
    dryRun: dry.includes('All'),
    fieldManager: q.get('fieldManager') ?? undefined,
    fieldValidation,
    subresource: (subresource as '' | 'status' | undefined) ?? '',
    force: q.get('force') === 'true',
  };
}

/** A create or update body: JSON or protobuf; another media type is a 415. */
export async function readObjectBody(req: IncomingMessage): Promise<unknown> {
  const bodyType = req.headers['content-type'] ?? '';
  if (bodyType.startsWith('application/vnd.kubernetes.protobuf')) return decodeProtobufObject(await readBodyBuffer(req));
  if (bodyType && !/^application\/json\b/.test(bodyType)) {
    throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
  }
  return parseJson(await readBody(req));
}

/** A subresource body (TokenRequest, Scale): JSON or protobuf, empty as {}, and an object. */
export async function readSubresourceBody(req: IncomingMessage): Promise<Obj> {
  const ct = req.headers['content-type'] ?? '';
  const raw = await readBodyBuffer(req);
  if (ct.startsWith('application/vnd.kubernetes.protobuf')) return decodeProtobufObject(raw);
  const o = raw.length ? parseJson(raw.toString('utf8')) : {};
  if (!o || typeof o !== 'object') throw badRequest('the object provided is unrecognized');
  return o as Obj;
}

export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw badRequest(`the object provided is unrecognized: ${(e as Error).message}`);
  }
}

export function listQuery(q: URLSearchParams): ListQuery {
  const limit = q.get('limit');
  return {
    labelSelector: q.get('labelSelector') ?? undefined,
    fieldSelector: q.get('fieldSelector') ?? undefined,
    limit: limit ? Number(limit) : undefined,
    continue: q.get('continue') ?? undefined,
    resourceVersion: q.get('resourceVersion') ?? undefined,
    resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
  };
}

export function deleteOptions(q: URLSearchParams, body: string): Parameters<Api['delete']>[3] {
  let b: Obj = {};
  if (body.trim()) b = parseJson(body) as Obj;
  const policy = (q.get('propagationPolicy') ?? b.propagationPolicy ?? (b.orphanDependents === true ? 'Orphan' : undefined)) as 'Foreground' | 'Background' | 'Orphan' | undefined;
  if (policy && !['Foreground', 'Background', 'Orphan'].includes(policy)) throw badRequest(`propagationPolicy: Unsupported value: "${policy}"`);
  const dry = [...q.getAll('dryRun'), ...(b.dryRun ?? [])];
  return { propagationPolicy: policy, preconditions: b.preconditions, dryRun: dry.includes('All'), gracePeriodSeconds: b.gracePeriodSeconds };
}
