// HTTP(S) front end: authentication, URL routing, content negotiation (JSON / Table), watch streams.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Api, type ListQuery, type WriteOptions, type FieldValidation } from './api.js';
import { apiVersionOf, compareVersions, type ResourceType } from './registry.js';
import { ApiError, badRequest, conflict, gone, methodNotAllowed, unauthorized, internal, unsupportedMediaType } from './status.js';
import { jsonPatch, mergePatch } from './patch.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { objectKey, type Obj, type StoreEvent } from './store.js';
import { toTable } from './table.js';
import { decodeProtobufObject } from './protobuf.js';
import type { UserInfo } from './admission.js';
import { forbiddenError, impersonate, impersonationOf, requestAttributes, type RequestAttributes } from './rbac.js';
import { openApiV3Doc, openApiV3Index, hashOf, openApiV2 } from './openapi.js';

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

interface Route {
  group: string;
  version: string;
  namespace: string;
  plural: string;
  name?: string;
  subresource?: string;
}

const VERSION_INFO = {
  major: '1', minor: '32', gitVersion: 'v1.32.0-podvnet-emulator', gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23.0', compiler: 'gc', platform: 'linux/amd64',
};

function send(res: ServerResponse, code: number, body: unknown, warnings: string[] = [], contentType = 'application/json'): void {
  const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const headers: Record<string, string | string[]> = { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Content-Length': String(data.length) };
  if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(data);
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof ApiError ? e : internal(String((e as Error)?.stack ?? e));
  send(res, err.code, err.toStatus());
}

function readBody(req: IncomingMessage): Promise<string> {
  return readBodyBuffer(req).then((b) => b.toString('utf8'));
}

function readBodyBuffer(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseRoute(parts: string[]): Route | null {
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

function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}


function userAgentManager(req: IncomingMessage): string {
  const ua = req.headers['user-agent'] ?? 'unknown';
  return ua.split('/')[0] || 'unknown';
}

function writeOptions(q: URLSearchParams, subresource: string | undefined): WriteOptions {
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

export class Handler {
  /** Open watch streams, each with the function that ends it (and detaches it from the store at once). */
  private watches = new Map<ServerResponse, () => void>();
  readonly faults: Fault[] = [];
  /** Requests refused by authorization (the latest 10,000), for tests of least privilege. */
  readonly denials: Denial[] = [];
  private viewCache = new WeakMap<StoreEvent, Map<string, string>>();

  constructor(private readonly api: Api, private readonly opts: ServerOptions) {}

  closeWatches(): void {
    for (const end of [...this.watches.values()]) end();
    this.watches.clear();
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (process.env.KUBE_EMULATOR_DEBUG) process.stderr.write(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''} ${req.headers.accept ?? ''}\n`);
    this.route(req, res).catch((e) => {
      if (!res.headersSent) sendError(res, e);
      else res.end();
    });
  };

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

  private authenticate(req: IncomingMessage): UserInfo | undefined {
    const h = req.headers.authorization;
    if (!h || !h.startsWith('Bearer ')) return undefined;
    return this.opts.users.get(h.slice(7).trim());
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (['/healthz', '/livez', '/readyz'].includes(path)) return send(res, 200, 'ok', [], 'text/plain; charset=utf-8');
    if (path === '/version') return send(res, 200, VERSION_INFO);
    const authenticated = this.authenticate(req);
    if (!authenticated) return sendError(res, unauthorized());
    let user: UserInfo = authenticated;
    const imp = impersonationOf(req.headers);
    if (imp) {
      const r = impersonate((a) => this.api.authorize(a), authenticated, imp);
      if ('denied' in r) return sendError(res, r.denied);
      user = r.user;
    }
    const parts = path.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    const fault = this.takeFault(method, path);
    if (fault) {
      const err = new ApiError(fault.code, fault.reason ?? REASONS[fault.code] ?? 'InternalError', fault.message ?? `injected fault (${fault.code})`,
        fault.retryAfterSeconds !== undefined ? { retryAfterSeconds: fault.retryAfterSeconds } : undefined);
      if (fault.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(fault.retryAfterSeconds));
      return sendError(res, err);
    }
    // authorization comes before anything else looks at the request (routing, admission)
    const attrs = requestAttributes(method, url.pathname, url.searchParams, user);
    const decision = this.api.authorize(attrs);
    if (!decision.allowed) {
      const err = forbiddenError(attrs, decision.reason);
      this.denials.push({ ...attrs, message: err.message });
      if (this.denials.length > 10_000) this.denials.splice(0, this.denials.length - 10_000);
      return sendError(res, err);
    }

    const aggregated = /g=apidiscovery\.k8s\.io;\s*v=v2;\s*as=APIGroupDiscoveryList/.test(req.headers.accept ?? '');
    if ((path === '/api' || path === '/apis') && aggregated) {
      return send(res, 200, this.aggregatedDiscovery(path === '/api'), [], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    }
    if (path === '/api') return send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }] });
    if (path === '/apis') return send(res, 200, this.groupList());
    if (parts[0] === 'apis' && parts.length === 2) {
      const g = this.groupList().groups.find((x: Obj) => x.name === parts[1]);
      if (!g) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
      return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
    }
    if ((parts[0] === 'api' && parts.length === 2) || (parts[0] === 'apis' && parts.length === 3)) {
      const group = parts[0] === 'api' ? '' : parts[1]!;
      const version = parts[0] === 'api' ? parts[1]! : parts[2]!;
      const types = this.api.registry.inGroupVersion(group, version);
      if (!types.length) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
      return send(res, 200, this.resourceList(group, version, types));
    }
    if (parts[0] === 'openapi') return this.openapi(parts, res);
    const route = parseRoute(parts);
    if (!route) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    const t = this.api.registry.lookup(route.group, route.version, route.plural);
    if (!t) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    if (route.namespace && !t.namespaced) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    if (route.subresource === 'token' && t.group === '' && t.kind === 'ServiceAccount' && route.name) {
      if (method !== 'POST') return sendError(res, methodNotAllowed('the server does not allow this method on the requested resource'));
      const body = await this.readObjectOf(req);
      return send(res, 201, this.tokenRequest(route.namespace, route.name, body));
    }
    if (route.subresource === 'scale' && t.scale && route.name) {
      const name = route.name;
      const q = url.searchParams;
      const opts = { ...writeOptions(q, undefined), user };
      switch (method) {
        case 'GET': return send(res, 200, this.api.getScale(t, route.namespace, name));
        case 'PUT': {
          const body = await this.readObjectOf(req);
          return send(res, 200, this.api.updateScale(t, route.namespace, name, () => body, opts));
        }
        case 'PATCH': {
          const raw = (await readBodyBuffer(req)).toString('utf8');
          const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
          return send(res, 200, this.api.updateScale(t, route.namespace, name, (cur) => {
            const patch = parseJson(raw);
            if (ct === 'application/json-patch+json') return jsonPatch(cur, patch);
            if (ct === 'application/merge-patch+json' || ct === 'application/strategic-merge-patch+json') return mergePatch(cur, patch);
            throw unsupportedMediaType(ct);
          }, opts));
        }
        default: return sendError(res, methodNotAllowed('the server does not allow this method on the requested resource'));
      }
    }
    if (route.subresource && !(route.subresource === 'status' && t.statusSubresource) && !(route.subresource === 'finalize' && t.kind === 'Namespace')) {
      return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    }
    const bodyType = req.headers['content-type'] ?? '';
    const readObject = async (): Promise<unknown> => {
      if (bodyType.startsWith('application/vnd.kubernetes.protobuf')) return decodeProtobufObject(await readBodyBuffer(req));
      if (bodyType && !/^application\/json\b/.test(bodyType)) {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
      }
      return parseJson(await readBody(req));
    };
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1' || parts.includes('watch');
    const q = url.searchParams;
    const accept = req.headers.accept ?? '';
    const ns = route.namespace;
    const sub = route.subresource === 'finalize' ? undefined : route.subresource;

    if (t.review && !(method === 'POST' && !route.name)) return sendError(res, methodNotAllowed('the server does not allow this method on the requested resource'));
    if (!route.name) {
      switch (method) {
        case 'GET': {
          if (isWatch) return this.watch(t, ns, q, req, res, accept);
          const list = this.api.list(t, ns, listQuery(q));
          if (wantsTable(accept)) return send(res, 200, toTable(t, list.items, list.metadata, q.get('includeObject') ?? 'Metadata'), [], 'application/json');
          return send(res, 200, list);
        }
        case 'POST': {
          const body = await readObject();
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
        default: return sendError(res, methodNotAllowed(`the server does not allow this method on the requested resource`));
      }
    }
    const name = route.name;
    switch (method) {
      case 'GET': {
        if (isWatch) {
          q.set('fieldSelector', [q.get('fieldSelector'), `metadata.name=${name}`].filter(Boolean).join(','));
          return this.watch(t, ns, q, req, res, accept);
        }
        const o = this.api.get(t, ns, name);
        if (wantsTable(accept)) return send(res, 200, toTable(t, [o], { resourceVersion: o.metadata.resourceVersion }, q.get('includeObject') ?? 'Metadata'));
        return send(res, 200, o);
      }
      case 'PUT': {
        const body = await readObject();
        const r = this.api.update(t, ns, name, body, { ...writeOptions(q, sub), user }, userAgentManager(req));
        return send(res, r.created ? 201 : 200, r.obj, r.warnings);
      }
      case 'PATCH': {
        const raw = await readBody(req);
        const r = this.api.patch(t, ns, name, req.headers['content-type'] ?? '', raw, { ...writeOptions(q, sub), user }, userAgentManager(req));
        return send(res, r.created ? 201 : 200, r.obj, r.warnings);
      }
      case 'DELETE': {
        if (sub) return sendError(res, methodNotAllowed('the server does not allow this method on the requested resource'));
        const body = await readBody(req);
        const r = this.api.delete(t, ns, name, { ...deleteOptions(q, body), user });
        if (!r.deleted || t.returnDeletedObject) return send(res, 200, r.obj);
        return send(res, 200, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
          details: { name, group: t.group, kind: t.plural, uid: r.obj.metadata.uid },
        });
      }
      default: return sendError(res, methodNotAllowed('the server does not allow this method on the requested resource'));
    }
  }

  private async readObjectOf(req: IncomingMessage): Promise<Obj> {
    const ct = req.headers['content-type'] ?? '';
    const raw = await readBodyBuffer(req);
    if (ct.startsWith('application/vnd.kubernetes.protobuf')) return decodeProtobufObject(raw);
    const o = raw.length ? parseJson(raw.toString('utf8')) : {};
    if (!o || typeof o !== 'object') throw badRequest('the object provided is unrecognized');
    return o as Obj;
  }

  /**
   * TokenRequest (serviceaccounts/<name>/token): a new bearer token for the service account. Bound to
   * a Pod, it carries the pod's node in user extra, as pod-bound tokens do since Kubernetes 1.30.
   */
  private tokenRequest(ns: string, name: string, body: Obj): Obj {
    const saType = this.api.type('', 'v1', 'serviceaccounts');
    const sa = this.api.get(saType, ns, name);
    const spec = body.spec ?? {};
    const extra: Record<string, string[]> = {};
    const bound = spec.boundObjectRef;
    if (bound?.kind === 'Pod') {
      const pod = this.api.get(this.api.type('', 'v1', 'pods'), ns, bound.name);
      if (bound.uid && bound.uid !== pod.metadata.uid) throw conflict({ group: '', plural: 'pods', kind: 'Pod' }, bound.name, `the UID in the bound object reference (${bound.uid}) does not match the UID in record (${pod.metadata.uid})`);
      extra['authentication.kubernetes.io/pod-name'] = [pod.metadata.name];
      extra['authentication.kubernetes.io/pod-uid'] = [pod.metadata.uid];
      const nodeName = pod.spec?.nodeName;
      if (nodeName) {
        extra['authentication.kubernetes.io/node-name'] = [nodeName];
        const node = this.api.store.get('core/nodes', nodeName);
        if (node) extra['authentication.kubernetes.io/node-uid'] = [node.metadata.uid];
      }
    }
    const token = randomBytes(32).toString('base64url');
    const credentialId = `JTI=${randomUUID()}`;
    extra['authentication.kubernetes.io/credential-id'] = [credentialId];
    this.opts.users.set(token, {
      username: `system:serviceaccount:${ns}:${name}`, uid: sa.metadata.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'], extra,
    });
    const expirationSeconds = Number(spec.expirationSeconds ?? 3600);
    return {
      kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace: ns, creationTimestamp: null },
      spec: { audiences: spec.audiences?.length ? spec.audiences : ['https://kubernetes.default.svc.cluster.local'], expirationSeconds, boundObjectRef: bound ?? null },
      status: { token, expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  private groupList(): Obj {
    const groups: Obj[] = [];
    const all = this.api.registry.groups();
    for (const [g, vs] of all) {
      if (g === '') continue;
      const versions = vs.map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
      groups.push({ name: g, versions, preferredVersion: versions[0] });
    }
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }

  /** apidiscovery.k8s.io/v2 APIGroupDiscoveryList: every group, version and resource in one document. */
  private aggregatedDiscovery(core: boolean): Obj {
    const items: Obj[] = [];
    for (const [g, vs] of this.api.registry.groups()) {
      if ((g === '') !== core) continue;
      const versions = vs.map((v) => {
        const list = this.resourceList(g, v, this.api.registry.inGroupVersion(g, v)).resources as Obj[];
        const resources: Obj[] = [];
        for (const r of list) {
          const [name, sub] = String(r.name).split('/');
          if (!sub) {
            const out: Obj = {
              resource: name, responseKind: { group: g, version: v, kind: r.kind }, scope: r.namespaced ? 'Namespaced' : 'Cluster',
              singularResource: r.singularName, verbs: r.verbs,
            };
            if (r.shortNames) out.shortNames = r.shortNames;
            if (r.categories) out.categories = r.categories;
            resources.push(out);
          } else {
            const parent = resources.find((x) => x.resource === name);
            if (!parent) continue;
            (parent.subresources ??= []).push({ subresource: sub, responseKind: { group: r.group ?? g, version: r.version ?? v, kind: r.kind }, verbs: r.verbs });
          }
        }
        return { version: v, resources, freshness: 'Current' };
      });
      items.push({ metadata: { name: g, creationTimestamp: null }, versions });
    }
    return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
  }

  private resourceList(group: string, version: string, types: ResourceType[]): Obj {
    const resources: Obj[] = [];
    for (const t of types.sort((a, b) => a.plural.localeCompare(b.plural))) {
      const r: Obj = {
        name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind,
        verbs: t.review ? ['create'] : ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      };
      if (t.shortNames.length) r.shortNames = t.shortNames;
      if (t.categories.length) r.categories = t.categories;
      resources.push(r);
      if (t.statusSubresource) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
      if (t.scale) resources.push({ name: `${t.plural}/scale`, singularName: '', namespaced: t.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
      if (t.group === '' && t.kind === 'ServiceAccount') resources.push({ name: 'serviceaccounts/token', singularName: '', namespaced: true, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  private openapi(parts: string[], res: ServerResponse): void {
    if (parts[1] === 'v2') return send(res, 200, openApiV2(this.api.registry));
    if (parts[1] !== 'v3') return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    const reg = this.api.registry;
    if (parts.length === 2) return send(res, 200, openApiV3Index(reg, (g, v) => hashOf(openApiV3Doc(reg, g, v))));
    const group = parts[2] === 'api' ? '' : parts[3]!;
    const version = parts[2] === 'api' ? parts[3]! : parts[4]!;
    if (!version || !reg.inGroupVersion(group, version).length) return sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
    return send(res, 200, openApiV3Doc(reg, group, version));
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

  private watch(t: ResourceType, ns: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse, accept: string): void {
    const sel = this.api.parseSelectors(t, { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined });
    const rvParam = q.get('resourceVersion') ?? '';
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const table = wantsTable(accept);
    const timeoutSec = Number(q.get('timeoutSeconds') ?? '1800');
    const prefix = t.namespaced && ns ? `${ns}/` : '';
    const store = this.api.store;
    const inScope = (e: StoreEvent): boolean => !prefix || e.key.startsWith(prefix);

    let backlog: StoreEvent[] | null = [];
    let initial: Obj[] = [];
    if (rvParam === '' || rvParam === '0' || sendInitial) {
      if (sendInitial && rvParam !== '' && rvParam !== '0') {
        throw badRequest('sendInitialEvents is only supported with resourceVersion unset or "0"');
      }
      initial = store.list(t.bucket, t.namespaced && ns ? ns : undefined).filter((o) => this.api.matches(t, sel, o));
    } else {
      const rv = Number(rvParam);
      if (!Number.isInteger(rv) || rv < 0) throw badRequest(`invalid resource version "${rvParam}"`);
      backlog = store.eventsSince(t.bucket, rv);
    }
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
      }, this.opts.bookmarkIntervalMs));
    }
    if (timeoutSec > 0) timers.push(setTimeout(end, timeoutSec * 1000));
    const closed = (): void => { ended = true; detach(); };
    res.on('close', closed);
    req.on('close', closed);
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw badRequest(`the object provided is unrecognized: ${(e as Error).message}`);
  }
}

function listQuery(q: URLSearchParams): ListQuery {
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

function deleteOptions(q: URLSearchParams, body: string): Parameters<Api['delete']>[3] {
  let b: Obj = {};
  if (body.trim()) b = parseJson(body) as Obj;
  const policy = (q.get('propagationPolicy') ?? b.propagationPolicy ?? (b.orphanDependents === true ? 'Orphan' : undefined)) as 'Foreground' | 'Background' | 'Orphan' | undefined;
  if (policy && !['Foreground', 'Background', 'Orphan'].includes(policy)) throw badRequest(`propagationPolicy: Unsupported value: "${policy}"`);
  const dry = [...q.getAll('dryRun'), ...(b.dryRun ?? [])];
  return { propagationPolicy: policy, preconditions: b.preconditions, dryRun: dry.includes('All'), gracePeriodSeconds: b.gracePeriodSeconds };
}

export { objectKey, compareVersions };
