// The API server's request handler: a request goes through named steps in the API server's order
// (health and version, authentication and impersonation, injected faults, authorization, discovery) and
// then to its resource: a subresource (token, scale), the collection (list, watch, create, deletecollection)
// or one object (get, watch, update, patch, delete). Discovery, watch streams, TokenRequest and the HTTP
// helpers live in discovery.ts, watch-stream.ts, token-request.ts and http.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Api } from './api.js';
import { apiVersionOf, compareVersions, type ResourceType } from './registry.js';
import { ApiError, unauthorized, unsupportedMediaType } from './status.js';
import { jsonPatch, mergePatch } from './patch.js';
import { objectKey, type Obj } from './store.js';
import { toTable } from './table.js';
import type { UserInfo } from './admission.js';
import { forbiddenError, impersonate, impersonationOf, requestAttributes, type RequestAttributes } from './rbac.js';
import { serveDiscovery, VERSION_INFO } from './discovery.js';
import { tokenRequest } from './token-request.js';
import { WatchStreams } from './watch-stream.js';
import {
  deleteOptions, listQuery, methodNotAllowedHere, noSuchResource, parseJson, parseRoute, readBody, readBodyBuffer, readObjectBody,
  readSubresourceBody, send, sendError, userAgentManager, wantsTable, writeOptions, type ResourcePath,
} from './http.js';

/** A scripted failure: the next `times` matching requests get this error instead of being served. */
export interface Fault {
  method?: string;
  /** Matches the request path (without the query). */
  path?: string | RegExp;
  code: number;
  reason?: string;
  message?: string;
  retryAfterSeconds?: number;
  times?: number;
  /** Instead of a count: every matching request fails until this many ms have passed (an outage). */
  forMs?: number;
  /** Set when injected with forMs: when the outage ends. */
  until?: number;
}

/** A request authorization refused: its attributes and the 403 message. */
export type Denial = RequestAttributes & { message: string };

const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired',
  422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

export interface ServerOptions {
  /** Bearer token -> the user it authenticates as. */
  users: Map<string, UserInfo>;
  /** How often an idle watch with allowWatchBookmarks gets a BOOKMARK (ms). */
  bookmarkIntervalMs: number;
  log: (msg: Obj) => void;
}

/** A resource request once its type is known: what every resource step reads. */
interface ResourceRequest {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  url: URL;
  path: ResourcePath;
  t: ResourceType;
  user: UserInfo;
}

export class Handler {
  readonly faults: Fault[] = [];
  /** Requests refused by authorization (the latest 10,000), for tests of least privilege. */
  readonly denials: Denial[] = [];
  private readonly watches: WatchStreams;

  constructor(private readonly api: Api, private readonly opts: ServerOptions) {
    this.watches = new WatchStreams(api, opts.bookmarkIntervalMs);
  }

  closeWatches(): void { this.watches.closeAll(); }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (process.env.KUBE_EMULATOR_DEBUG) process.stderr.write(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''} ${req.headers.accept ?? ''}\n`);
    this.route(req, res).catch((e) => {
      if (!res.headersSent) sendError(res, e);
      else res.end();
    });
  };

  /** Each step either answers the request (and the route ends) or lets it through to the next. */
  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (['/healthz', '/livez', '/readyz'].includes(path)) return send(res, 200, 'ok', [], 'text/plain; charset=utf-8');
    if (path === '/version') return send(res, 200, VERSION_INFO);
    const user = this.authenticate(req, res);
    if (!user) return;
    const method = req.method ?? 'GET';
    if (this.injectedFault(method, path, res)) return;
    // authorization comes before anything else looks at the request (routing, admission)
    if (!this.authorized(method, url, user, res)) return;
    const parts = path.split('/').filter(Boolean);
    if (serveDiscovery(this.api.registry, path, parts, req, res)) return;
    const resourcePath = parseRoute(parts);
    if (!resourcePath) return sendError(res, noSuchResource());
    const t = this.api.registry.lookup(resourcePath.group, resourcePath.version, resourcePath.plural);
    if (!t) return sendError(res, noSuchResource());
    if (resourcePath.namespace && !t.namespaced) return sendError(res, noSuchResource());
    const r: ResourceRequest = { req, res, method, url, path: resourcePath, t, user };
    if (resourcePath.subresource === 'token' && t.group === '' && t.kind === 'ServiceAccount' && resourcePath.name) return this.serveToken(r);
    if (resourcePath.subresource === 'scale' && t.scale && resourcePath.name) return this.serveScale(r, resourcePath.name);
    const sub = resourcePath.subresource;
    if (sub && !(sub === 'status' && t.statusSubresource) && !(sub === 'finalize' && t.kind === 'Namespace')) return sendError(res, noSuchResource());
    if (t.review && !(method === 'POST' && !resourcePath.name)) return sendError(res, methodNotAllowedHere());
    if (!resourcePath.name) return this.serveCollection(r, parts);
    return this.serveObject(r, resourcePath.name, parts);
  }

  /** The user of the bearer token, or of the impersonation headers if it may impersonate; else a 401 or 403 is sent. */
  private authenticate(req: IncomingMessage, res: ServerResponse): UserInfo | undefined {
    const authenticated = this.userOfToken(req);
    if (!authenticated) {
      sendError(res, unauthorized());
      return undefined;
    }
    const imp = impersonationOf(req.headers);
    if (!imp) return authenticated;
    const r = impersonate((a) => this.api.authorize(a), authenticated, imp);
    if ('denied' in r) {
      sendError(res, r.denied);
      return undefined;
    }
    return r.user;
  }

  private userOfToken(req: IncomingMessage): UserInfo | undefined {
    const h = req.headers.authorization;
    if (!h || !h.startsWith('Bearer ')) return undefined;
    return this.opts.users.get(h.slice(7).trim());
  }

  /** A scripted failure for this request, sent; false when none matches. */
  private injectedFault(method: string, path: string, res: ServerResponse): boolean {
    const fault = this.takeFault(method, path);
    if (!fault) return false;
    const err = new ApiError(fault.code, fault.reason ?? REASONS[fault.code] ?? 'InternalError', fault.message ?? `injected fault (${fault.code})`,
      fault.retryAfterSeconds !== undefined ? { retryAfterSeconds: fault.retryAfterSeconds } : undefined);
    if (fault.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(fault.retryAfterSeconds));
    sendError(res, err);
    return true;
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const now = Date.now();
    for (let k = this.faults.length - 1; k >= 0; k--) if (this.faults[k]!.until !== undefined && this.faults[k]!.until! <= now) this.faults.splice(k, 1);
    const i = this.faults.findIndex((f) => (!f.method || f.method.toUpperCase() === method)
      && (!f.path || (typeof f.path === 'string' ? f.path === path : f.path.test(path))));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.until !== undefined) return f;
    const left = (f.times ?? 1) - 1;
    if (left <= 0) this.faults.splice(i, 1); else f.times = left;
    return f;
  }

  /** RBAC on the request's attributes; a refusal is recorded in `denials` and sent as a 403. */
  private authorized(method: string, url: URL, user: UserInfo, res: ServerResponse): boolean {
    const attrs = requestAttributes(method, url.pathname, url.searchParams, user);
    const decision = this.api.authorize(attrs);
    if (decision.allowed) return true;
    const err = forbiddenError(attrs, decision.reason);
    this.denials.push({ ...attrs, message: err.message });
    if (this.denials.length > 10_000) this.denials.splice(0, this.denials.length - 10_000);
    sendError(res, err);
    return false;
  }

  /** POST serviceaccounts/<name>/token. */
  private async serveToken({ req, res, method, path }: ResourceRequest): Promise<void> {
    if (method !== 'POST') return sendError(res, methodNotAllowedHere());
    const body = await readSubresourceBody(req);
    return send(res, 201, tokenRequest(this.api, this.opts.users, path.namespace, path.name!, body));
  }

  /** GET, PUT and PATCH of <plural>/<name>/scale. */
  private async serveScale({ req, res, method, url, path, t, user }: ResourceRequest, name: string): Promise<void> {
    const opts = { ...writeOptions(url.searchParams, undefined), user };
    switch (method) {
      case 'GET': return send(res, 200, this.api.getScale(t, path.namespace, name));
      case 'PUT': {
        const body = await readSubresourceBody(req);
        return send(res, 200, this.api.updateScale(t, path.namespace, name, () => body, opts));
      }
      case 'PATCH': {
        const raw = (await readBodyBuffer(req)).toString('utf8');
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        return send(res, 200, this.api.updateScale(t, path.namespace, name, (cur) => {
          const patch = parseJson(raw);
          if (ct === 'application/json-patch+json') return jsonPatch(cur, patch);
          if (ct === 'application/merge-patch+json' || ct === 'application/strategic-merge-patch+json') return mergePatch(cur, patch);
          throw unsupportedMediaType(ct);
        }, opts));
      }
      default: return sendError(res, methodNotAllowedHere());
    }
  }

  /** list, watch, create and deletecollection on <plural>. */
  private async serveCollection({ req, res, method, url, path, t, user }: ResourceRequest, parts: string[]): Promise<void> {
    const q = url.searchParams;
    const ns = path.namespace;
    const accept = req.headers.accept ?? '';
    switch (method) {
      case 'GET': {
        if (isWatch(q, parts)) return this.watches.serve(t, ns, q, req, res, accept);
        const list = this.api.list(t, ns, listQuery(q));
        if (wantsTable(accept)) return send(res, 200, toTable(t, list.items, list.metadata, q.get('includeObject') ?? 'Metadata'), [], 'application/json');
        return send(res, 200, list);
      }
      case 'POST': {
        const body = await readObjectBody(req);
        const r = this.api.create(t, ns, body, { ...writeOptions(q, undefined), user }, userAgentManager(req));
        return send(res, 201, r.obj, r.warnings);
      }
      case 'DELETE': {
        const body = await readBody(req);
        const list = this.api.list(t, ns, listQuery(q));
        const opts = { ...deleteOptions(q, body), user };
        const deleted: Obj[] = [];
        for (const o of list.items) {
          try { deleted.push(this.api.delete(t, o.metadata.namespace ?? '', o.metadata.name, opts).obj); } catch (e) { if (!(e instanceof ApiError && e.code === 404)) throw e; }
        }
        return send(res, 200, { kind: t.listKind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(this.api.store.currentRV()) }, items: deleted });
      }
      default: return sendError(res, methodNotAllowedHere());
    }
  }

  /** get, watch, update, patch and delete of <plural>/<name> (and its status or finalize subresource). */
  private async serveObject({ req, res, method, url, path, t, user }: ResourceRequest, name: string, parts: string[]): Promise<void> {
    const q = url.searchParams;
    const ns = path.namespace;
    const accept = req.headers.accept ?? '';
    const sub = path.subresource === 'finalize' ? undefined : path.subresource;
    switch (method) {
      case 'GET': {
        if (isWatch(q, parts)) {
          q.set('fieldSelector', [q.get('fieldSelector'), `metadata.name=${name}`].filter(Boolean).join(','));
          return this.watches.serve(t, ns, q, req, res, accept);
        }
        const o = this.api.get(t, ns, name);
        if (wantsTable(accept)) return send(res, 200, toTable(t, [o], { resourceVersion: o.metadata.resourceVersion }, q.get('includeObject') ?? 'Metadata'));
        return send(res, 200, o);
      }
      case 'PUT': {
        const body = await readObjectBody(req);
        const r = this.api.update(t, ns, name, body, { ...writeOptions(q, sub), user }, userAgentManager(req));
        return send(res, r.created ? 201 : 200, r.obj, r.warnings);
      }
      case 'PATCH': {
        const raw = await readBody(req);
        const r = this.api.patch(t, ns, name, req.headers['content-type'] ?? '', raw, { ...writeOptions(q, sub), user }, userAgentManager(req));
        return send(res, r.created ? 201 : 200, r.obj, r.warnings);
      }
      case 'DELETE': {
        if (sub) return sendError(res, methodNotAllowedHere());
        const body = await readBody(req);
        const r = this.api.delete(t, ns, name, { ...deleteOptions(q, body), user });
        if (!r.deleted || t.returnDeletedObject) return send(res, 200, r.obj);
        return send(res, 200, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
          details: { name, group: t.group, kind: t.plural, uid: r.obj.metadata.uid },
        });
      }
      default: return sendError(res, methodNotAllowedHere());
    }
  }
}

const isWatch = (q: URLSearchParams, parts: string[]): boolean => q.get('watch') === 'true' || q.get('watch') === '1' || parts.includes('watch');

export { objectKey, compareVersions };
