// The HTTPS front: ARM routing, auth, throttling, fault injection, long-running operations,
// ETags, and the admin endpoint (/_emulator/...).
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AzureError, errors } from './errors.js';
import { configPatchSchema, defaultConfig, faultSchema, type EmulatorConfig, type EmulatorConfigPatch, type FaultRule, type FaultRuleInput } from './config.js';
import { EmulatorState, ids, key, type IpChangeEvent, type IpConfig, type IpOwner, type Nic, type ScaleSetInstance } from './state.js';
import { computeEtag, renderIpConfig, renderNic, renderScaleSet, renderScaleSetVm, renderSubnet, renderVm, renderVnet } from './render.js';
import { SlidingWindow, TokenBucket } from './throttle.js';
import { generateSelfSignedCert, type TlsMaterial } from './tls.js';
import { loadScenario, scenarioSchema, type ScenarioInput, type ScenarioResult } from './scenario.js';
import { EntraTokens } from './entra.js';
import { imdsReply, type ImdsMachine } from './imds.js';
import { ipInNetns, listenInNetns } from './netns-listen.js';
import type { Server as NetServer } from 'node:net';
import { desiredFromNicPut, desiredFromVmssNicConfig, nicPutSchema, parseBody, vmssVmPutSchema } from './wire.js';

export interface EmulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Certificate and key to serve; by default one self-signed certificate is made per process and shared. */
  tls?: TlsMaterial;
  config?: EmulatorConfigPatch;
  scenario?: ScenarioInput;
  /** Also serve /_emulator/... over plain HTTP on this loopback port (0 = any free port). */
  adminHttpPort?: number;
}

interface Reply { status: number; body?: unknown; headers?: Record<string, string> }

interface Ctx {
  method: string;
  url: URL;
  origin: string;
  segs: string[];
  headers: IncomingMessage['headers'];
  body: unknown;
  fault: FaultRule | undefined;
}

type Handler = (ctx: Ctx, p: Record<string, string>) => Reply | Promise<Reply>;
interface Route { method: string; pattern: string[]; kind: string; handler: Handler }

export interface OperationRecord {
  id: string;
  provider: 'Microsoft.Network' | 'Microsoft.Compute';
  name: string;
  subscriptionId: string;
  location: string;
  resourceId: string;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  startTime: string;
  endTime?: string;
  error?: { code: string; message: string; details: Array<{ code: string; message: string }> };
}

export interface CallCounts {
  /** By request kind, e.g. 'nic.put', 'vmssvm.get', 'operation.get'. */
  byKind: Record<string, number>;
  throttled: number;
  /** Of those, refused by the Network RP's write limit rather than ARM's buckets. */
  networkThrottled?: number;
  faulted: number;
  total: number;
}

const MAX_OPERATIONS = 50_000;
const LRO_KINDS = ['nic.put', 'vmssvm.put'];
/** One certificate per process unless a caller brings its own: openssl costs tens of ms per start. */
let sharedTls: TlsMaterial | undefined;
const API_VERSION_NETWORK = '2024-05-01';
const API_VERSION_COMPUTE = '2024-07-01';

export class AzureEmulator {
  readonly state: EmulatorState;
  private cfg: EmulatorConfig;
  private readonly faults: Array<FaultRule & { id: string; remaining: number }> = [];
  private readonly buckets = new Map<string, { reads: TokenBucket; writes: TokenBucket }>();
  /** The Network RP's write windows, by subscription and region. */
  private readonly networkWindows = new Map<string, SlidingWindow>();
  private readonly operations = new Map<string, OperationRecord>();
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; complete: () => void }>();
  /** The emulated Entra ID token endpoint (/<tenant>/oauth2/v2.0/token). */
  readonly entra = new EntraTokens();
  private counts: CallCounts = { byKind: {}, throttled: 0, faulted: 0, total: 0 };
  private readonly routes: Route[];
  private server!: Server;
  private adminServer: Server | undefined;
  /** Listeners inside simulated VMs (IMDS, the ARM endpoint), closed with the emulator. */
  private readonly vmListeners = new Set<NetServer>();
  private tmpDir!: string;
  /** https://127.0.0.1:<port> */
  url = '';
  /** http://127.0.0.1:<port> when adminHttpPort was given. */
  adminUrl: string | undefined;
  /** PEM of the self-signed certificate clients must trust. */
  readonly ca: string;
  /** The same PEM, written to a file (for the command line and other processes). */
  caPath = '';

  private constructor(private readonly tls: TlsMaterial, config: EmulatorConfig) {
    this.cfg = config;
    this.ca = tls.cert;
    this.state = new EmulatorState({
      maxIpConfigsPerNic: config.maxIpConfigsPerNic,
      allowMultipleSubnetsPerNic: config.allowMultipleSubnetsPerNic,
      maxPrivateIpsPerVnet: config.maxPrivateIpsPerVnet,
    });
    this.routes = this.buildRoutes();
  }

  static async start(opts: EmulatorOptions = {}): Promise<AzureEmulator> {
    const config = defaultConfig();
    sharedTls ??= generateSelfSignedCert();
    const emu = new AzureEmulator(opts.tls ?? sharedTls, config);
    if (opts.config) emu.configure(opts.config);
    emu.tmpDir = mkdtempSync(join(tmpdir(), 'azure-emulator-'));
    emu.caPath = join(emu.tmpDir, 'ca.pem');
    writeFileSync(emu.caPath, emu.ca);
    if (opts.scenario) emu.loadScenario(opts.scenario);
    const host = opts.host ?? '127.0.0.1';
    emu.server = createHttpsServer({ key: emu.tls.key, cert: emu.tls.cert, keepAlive: true }, (req, res) => { emu.serve(req, res, false); });
    // Node closes idle keep-alive sockets after 5 s, racing clients that reuse them (ECONNRESET); ARM keeps them longer.
    emu.server.keepAliveTimeout = 120_000;
    emu.server.headersTimeout = 121_000;
    await listen(emu.server, opts.port ?? 0, host);
    emu.url = `https://${hostForUrl(host)}:${(emu.server.address() as AddressInfo).port}`;
    if (opts.adminHttpPort !== undefined) {
      emu.adminServer = createHttpServer((req, res) => { emu.serve(req, res, true); });
      await listen(emu.adminServer, opts.adminHttpPort, host);
      emu.adminUrl = `http://${hostForUrl(host)}:${(emu.adminServer.address() as AddressInfo).port}`;
    }
    return emu;
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    const closeOne = (s: Server | undefined) => new Promise<void>((resolve) => {
      if (!s) return resolve();
      s.close(() => resolve());
      s.closeAllConnections();
    });
    for (const l of this.vmListeners) l.close();
    this.vmListeners.clear();
    await Promise.all([closeOne(this.server), closeOne(this.adminServer)]);
    rmSync(this.tmpDir, { recursive: true, force: true });
  }

  // ---- inside a simulated VM ----

  /**
   * Serves one VM inside its network namespace (`netnsPath`), as Azure does and nowhere else: the
   * Instance Metadata Service at http://169.254.169.254 (added to the namespace's loopback) for the VM
   * or scale-set instance `resourceId` (its NICs as they are now, tokens for its managed identity), and
   * this emulator's ARM endpoint at the same URL as outside (`emu.url`, https://127.0.0.1:<port>), the
   * stand-in for the VM's way out to management.azure.com. Returns a function that stops both.
   */
  async serveVm(opts: { netnsPath: string; resourceId: string; imdsPort?: number }): Promise<() => void> {
    await ipInNetns(opts.netnsPath, ['link', 'set', 'lo', 'up']);
    await ipInNetns(opts.netnsPath, ['addr', 'replace', '169.254.169.254/32', 'dev', 'lo']);
    const armPort = (this.server.address() as AddressInfo).port;
    const [imds, arm] = await listenInNetns(opts.netnsPath, [{ host: '169.254.169.254', port: opts.imdsPort ?? 80 }, { host: '127.0.0.1', port: armPort }]);
    const imdsHttp = createHttpServer((req, res) => {
      const reply = imdsReply(
        { method: req.method ?? 'GET', url: new URL(req.url ?? '/', 'http://169.254.169.254'), headers: req.headers },
        this.imdsMachine(opts.resourceId),
        (resource) => this.managedIdentityToken(opts.resourceId, resource),
      );
      this.countKind(reply.status === 200 && req.url?.includes('/identity/') ? 'imds.token' : 'imds.get');
      const json = JSON.stringify(reply.body);
      res.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), server: 'IMDS/150.870.65.1854' });
      res.end(json);
      req.resume();
    });
    for (const [listener, server] of [[imds!, imdsHttp], [arm!, this.server]] as const) {
      listener.on('connection', (socket) => server.emit('connection', socket));
      this.vmListeners.add(listener);
    }
    return () => {
      for (const l of [imds!, arm!]) {
        l.close();
        this.vmListeners.delete(l);
      }
      imdsHttp.closeAllConnections();
    };
  }

  private imdsMachine(resourceId: string): ImdsMachine | undefined {
    const k = key(resourceId);
    const vm = this.state.vms.get(k);
    if (vm) {
      return { resourceId: vm.id, name: vm.name, computerName: vm.computerName, subscriptionId: vm.subscriptionId, resourceGroup: vm.resourceGroup,
        location: vm.location, vmId: vm.vmId, vmSize: vm.vmSize, nics: vm.nics };
    }
    const inst = this.state.instances.get(k);
    if (!inst) return undefined;
    const ss = inst.scaleSet;
    return { resourceId: inst.id, name: `${ss.name}_${inst.instanceId}`, computerName: inst.computerName, subscriptionId: ss.subscriptionId,
      resourceGroup: ss.resourceGroup, location: ss.location, vmId: inst.vmId, vmSize: ss.vmSize, nics: inst.nics };
  }

  /** The VM's system-assigned identity: its client id is the VM's vmId. */
  private managedIdentityToken(resourceId: string, _resource: string): { token: string; clientId: string; expiresInSeconds: number } {
    const clientId = this.imdsMachine(resourceId)?.vmId ?? resourceId;
    return { token: this.entra.issue(clientId, this.cfg.tokenLifetimeSeconds), clientId, expiresInSeconds: this.cfg.tokenLifetimeSeconds };
  }

  // ---- fault injection and inspection (also served under /_emulator) ----

  get config(): EmulatorConfig { return structuredClone(this.cfg); }

  configure(patch: EmulatorConfigPatch): EmulatorConfig {
    const p = configPatchSchema.parse(patch);
    const { throttling, networkWriteLimit, ...rest } = p;
    this.cfg = {
      ...this.cfg, ...rest,
      throttling: { ...this.cfg.throttling, ...(throttling ?? {}) },
      networkWriteLimit: { ...this.cfg.networkWriteLimit, ...(networkWriteLimit ?? {}) },
    };
    this.state.options.maxIpConfigsPerNic = this.cfg.maxIpConfigsPerNic;
    this.state.options.maxPrivateIpsPerVnet = this.cfg.maxPrivateIpsPerVnet;
    for (const w of this.networkWindows.values()) w.setLimits(this.cfg.networkWriteLimit);
    this.state.options.allowMultipleSubnetsPerNic = this.cfg.allowMultipleSubnetsPerNic;
    for (const b of this.buckets.values()) {
      b.reads.setLimits(this.cfg.throttling.reads);
      b.writes.setLimits(this.cfg.throttling.writes);
    }
    return this.config;
  }

  /** Makes the next `count` matching calls fail. Returns the rule id. */
  injectFault(rule: FaultRuleInput): string {
    const parsed = faultSchema.parse(rule);
    if (parsed.as === 'operation' && !LRO_KINDS.includes(parsed.kind?.toLowerCase() ?? '')) {
      throw new Error(`a fault with as: 'operation' needs kind ${LRO_KINDS.join(' or ')}, the writes that run a long-running operation`);
    }
    const id = randomUUID();
    this.faults.push({ ...parsed, id, remaining: parsed.count });
    return id;
  }

  clearFaults(): void { this.faults.length = 0; }

  pendingFaults(): Array<FaultRule & { id: string; remaining: number }> { return this.faults.map((f) => ({ ...f })); }

  calls(): CallCounts { return structuredClone(this.counts); }

  resetCalls(): void { this.counts = { byKind: {}, throttled: 0, faulted: 0, total: 0 }; }

  /** Refills every throttling bucket (new buckets start full). */
  resetThrottling(): void { this.buckets.clear(); this.networkWindows.clear(); }

  loadScenario(input: ScenarioInput): ScenarioResult { return loadScenario(this.state, input); }

  /** Who holds this private IP right now (the fabric's delivery table). */
  ipOwner(ip: string): IpOwner | undefined { return this.state.ipOwner(ip); }

  ipOwners(): IpOwner[] { return this.state.ipOwners(); }

  /** Called on every change of a NIC's addresses. Returns an unsubscribe function. */
  onIpChange(listener: (ev: IpChangeEvent) => void): () => void {
    this.state.on('ipchange', listener);
    return () => { this.state.off('ipchange', listener); };
  }

  operation(id: string): OperationRecord | undefined { return this.operations.get(id); }

  /** Ends every in-flight operation now (as if asyncDurationMs had passed): deterministic tests use a long duration and this. */
  finishOperations(): number {
    const all = [...this.pending.values()];
    for (const p of all) p.complete();
    return all.length;
  }

  dump(): Record<string, unknown> {
    const s = this.state;
    return {
      config: this.config,
      subnets: [...s.subnets.values()].map((sub) => ({ id: sub.id, addressPrefix: sub.addressPrefix, used: sub.pool.used, free: sub.pool.free, capacity: sub.pool.capacity })),
      networkInterfaces: [...s.nics.values()].map(renderNic),
      virtualMachines: [...s.vms.values()].map(renderVm),
      virtualMachineScaleSets: [...s.scaleSets.values()].map((ss) => ({ ...renderScaleSet(ss), instances: [...ss.instances.values()].map(renderScaleSetVm) })),
      operations: [...this.operations.values()],
      faults: this.pendingFaults(),
      calls: this.calls(),
    };
  }

  // ---- request pipeline ----

  /**
   * A request's whole life; nothing it throws may escape into the hosting process (an unhandled rejection
   * ends a Node process): a reply that cannot be written, e.g. to a client already gone, ends that socket.
   */
  private serve(req: IncomingMessage, res: ServerResponse, adminOnly: boolean): void {
    res.on('error', () => res.destroy());
    this.handle(req, res, adminOnly).catch(() => res.destroy());
  }

  private async handle(req: IncomingMessage, res: ServerResponse, adminOnly: boolean): Promise<void> {
    const requestId = randomUUID();
    let reply: Reply;
    try {
      const raw = await readBody(req);
      const origin = `${adminOnly ? 'http' : 'https'}://${req.headers.host ?? new URL(this.url).host}`;
      const url = new URL(req.url ?? '/', origin);
      let segs: string[];
      try {
        segs = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      } catch {
        throw errors.badRequest('The request path is not valid percent-encoding.');
      }
      if (req.method === 'GET' && segs.length === 2 && segs[0]?.toLowerCase() === '_emulator' && segs[1]?.toLowerCase() === 'events') {
        this.streamEvents(req, res);
        return;
      }
      const method = (req.method ?? 'GET').toUpperCase();
      const entra = adminOnly || segs[0]?.toLowerCase() === 'subscriptions' ? undefined
        : this.entra.handle(method, segs, raw, origin, { clients: this.cfg.entraClients, tokenLifetimeSeconds: this.cfg.tokenLifetimeSeconds });
      if (entra) {
        this.countKind(segs[1]?.toLowerCase() === 'oauth2' ? 'entra.token' : 'entra.discovery');
        reply = entra;
      } else if (segs[0]?.toLowerCase() === '_emulator') reply = this.admin(method, segs.slice(1), parseJson(raw));
      else if (adminOnly) reply = errorReply(errors.unsupportedRoute(method, url.pathname));
      else reply = await this.arm({ method, url, origin, segs, headers: req.headers, body: parseJson(raw), fault: undefined });
    } catch (e) {
      reply = errorReply(e);
    }
    const json = reply.body === undefined ? '' : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'x-ms-request-id': requestId,
      'x-ms-correlation-request-id': (req.headers['x-ms-client-request-id'] as string | undefined) ?? requestId,
      ...(json ? { 'content-type': 'application/json; charset=utf-8' } : {}),
      'content-length': Buffer.byteLength(json),
      ...reply.headers,
    });
    res.end(json);
  }

  /** NDJSON stream for other processes (the sandbox fabric): a snapshot line, then one line per change. */
  private streamEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(`${JSON.stringify({ type: 'snapshot', owners: this.ipOwners() })}\n`);
    const off = this.onIpChange((ev) => { res.write(`${JSON.stringify({ type: 'ipchange', ...ev })}\n`); });
    req.on('close', off);
    res.on('close', off);
  }

  private async arm(ctx: Ctx): Promise<Reply> {
    if (this.cfg.requireAuth || this.cfg.requireIssuedToken) {
      const auth = ctx.headers.authorization;
      if (!auth) throw errors.authMissing();
      const bearer = /^Bearer\s+(\S+)/i.exec(auth);
      if (!bearer) throw errors.authInvalid();
      if (this.cfg.requireIssuedToken && !this.entra.isIssued(bearer[1]!)) throw errors.authInvalid();
    }
    if (!ctx.url.searchParams.has('api-version')) {
      throw new AzureError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    }
    const lsegs = ctx.segs.map((s) => s.toLowerCase());
    let pathMatched = false;
    let match: { route: Route; params: Record<string, string> } | undefined;
    for (const route of this.routes) {
      const params = matchPattern(route.pattern, lsegs, ctx.segs);
      if (!params) continue;
      pathMatched = true;
      if (route.method === ctx.method) { match = { route, params }; break; }
    }
    if (!match) {
      if (pathMatched) throw new AzureError(405, 'MethodNotAllowed', `The ${ctx.method} method is not supported on ${ctx.url.pathname}.`);
      throw errors.unsupportedRoute(ctx.method, ctx.url.pathname);
    }
    const { route, params } = match;
    this.countKind(route.kind);
    const delay = this.cfg.latencyByKind[route.kind] ?? this.cfg.latencyMs;
    if (delay > 0) await sleep(delay);

    const write = ctx.method !== 'GET' && ctx.method !== 'HEAD';
    const sub = params.sub!;
    const throttle = this.takeToken(sub, write);
    if (!throttle.ok) {
      this.counts.throttled++;
      const e = errors.throttled(write ? 'write' : 'read', sub, Math.max(1, Math.ceil(throttle.retryAfterMs / 1000)));
      return errorReply(e, throttle.headers);
    }
    if (write && route.pattern.includes('microsoft.network')) {
      const nrp = this.takeNetworkWrite(sub, params.rg);
      if (nrp) {
        this.counts.throttled++;
        this.counts.networkThrottled = (this.counts.networkThrottled ?? 0) + 1;
        return errorReply(nrp, throttle.headers);
      }
    }
    const fault = this.takeFault(route.kind, ctx);
    if (fault && fault.as === 'response') {
      this.counts.faulted++;
      const headers: Record<string, string> = { ...throttle.headers };
      if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
      if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
      return errorReply(new AzureError(fault.status, fault.code, fault.message, fault.details), headers);
    }
    if (fault) this.counts.faulted++;
    ctx.fault = fault;
    try {
      const reply = await route.handler(ctx, params);
      return { ...reply, headers: { ...throttle.headers, ...reply.headers } };
    } catch (e) {
      return errorReply(e, throttle.headers);
    }
  }

  private countKind(kind: string): void {
    this.counts.total++;
    this.counts.byKind[kind] = (this.counts.byKind[kind] ?? 0) + 1;
  }

  /** The Network RP's window for the subscription and the resource group's region: an error when spent. */
  private takeNetworkWrite(sub: string, rg: string | undefined): AzureError | undefined {
    const lim = this.cfg.networkWriteLimit;
    if (!this.cfg.throttling.enabled || !lim.enabled) return undefined;
    const location = (rg && this.state.resourceGroups.get(key(ids.rg(sub, rg)))?.location) || 'unknown';
    const k = `${sub.toLowerCase()}/${location.toLowerCase()}`;
    let w = this.networkWindows.get(k);
    if (!w) { w = new SlidingWindow(lim); this.networkWindows.set(k, w); }
    const r = w.take();
    if (r.ok) return undefined;
    return errors.networkThrottled(sub, location, Math.max(1, Math.ceil(r.retryAfterMs / 1000)), lim.limit, lim.windowSeconds);
  }

  private takeToken(sub: string, write: boolean): { ok: boolean; retryAfterMs: number; headers: Record<string, string> } {
    if (!this.cfg.throttling.enabled) return { ok: true, retryAfterMs: 0, headers: {} };
    const k = sub.toLowerCase();
    let b = this.buckets.get(k);
    if (!b) {
      b = { reads: new TokenBucket(this.cfg.throttling.reads), writes: new TokenBucket(this.cfg.throttling.writes) };
      this.buckets.set(k, b);
    }
    const r = (write ? b.writes : b.reads).take();
    const name = write ? 'writes' : 'reads';
    return {
      ok: r.ok,
      retryAfterMs: r.retryAfterMs,
      headers: {
        [`x-ms-ratelimit-remaining-subscription-${name}`]: String(r.remaining),
        [`x-ms-ratelimit-remaining-subscription-global-${name}`]: String(r.remaining),
      },
    };
  }

  private takeFault(kind: string, ctx: Ctx): FaultRule | undefined {
    const path = ctx.url.pathname.toLowerCase();
    const i = this.faults.findIndex((f) =>
      (f.kind === undefined || f.kind === '*' || f.kind.toLowerCase() === kind) &&
      (f.method === undefined || f.method.toUpperCase() === ctx.method) &&
      (f.pathContains === undefined || path.includes(f.pathContains.toLowerCase())));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    f.remaining--;
    if (f.remaining <= 0) this.faults.splice(i, 1);
    return f;
  }

  // ---- long-running operations ----

  private operationUrl(ctx: Ctx, op: OperationRecord, kind: 'operations' | 'operationResults'): string {
    const api = ctx.url.searchParams.get('api-version') ?? (op.provider === 'Microsoft.Network' ? API_VERSION_NETWORK : API_VERSION_COMPUTE);
    return `${ctx.origin}/subscriptions/${op.subscriptionId}/providers/${op.provider}/locations/${op.location}/${kind}/${op.id}?api-version=${api}`;
  }

  /** Starts an operation that finishes after asyncDurationMs; `finish` runs then and may return an error to fail it. */
  private startOperation(ctx: Ctx, provider: OperationRecord['provider'], name: string, subscriptionId: string, location: string, resourceId: string,
    finish: () => AzureError | undefined): { op: OperationRecord; headers: Record<string, string> } {
    const op: OperationRecord = {
      id: randomUUID(), provider, name, subscriptionId, location: location.toLowerCase().replace(/\s+/g, ''), resourceId,
      status: 'InProgress', startTime: new Date().toISOString(),
    };
    this.operations.set(op.id, op);
    this.pruneOperations();
    const complete = () => {
      clearTimeout(timer);
      this.pending.delete(op.id);
      let err: AzureError | undefined;
      try { err = finish(); } catch (e) { err = e instanceof AzureError ? e : new AzureError(500, 'InternalServerError', String(e)); }
      op.endTime = new Date().toISOString();
      if (err) { op.status = 'Failed'; op.error = err.body().error; } else op.status = 'Succeeded';
    };
    const timer = setTimeout(complete, this.cfg.asyncDurationMs);
    timer.unref();
    this.pending.set(op.id, { timer, complete });
    const headers: Record<string, string> = { 'Azure-AsyncOperation': this.operationUrl(ctx, op, 'operations') };
    if (provider === 'Microsoft.Compute') headers.Location = this.operationUrl(ctx, op, 'operationResults');
    if (this.cfg.asyncRetryAfterSeconds > 0) headers['Retry-After'] = String(this.cfg.asyncRetryAfterSeconds);
    return { op, headers };
  }

  /** Keeps memory flat in long benchmarks: forgets the oldest finished operations past a cap. */
  private pruneOperations(): void {
    if (this.operations.size <= MAX_OPERATIONS) return;
    for (const [id, op] of this.operations) {
      if (this.operations.size <= MAX_OPERATIONS * 0.9) break;
      if (op.status !== 'InProgress') this.operations.delete(id);
    }
  }

  private busyError(busy: { operationId: string; operationName: string; until: number }, resourceId: string): AzureError {
    const seconds = this.cfg.retryableRetryAfterSeconds || Math.max(1, Math.ceil((busy.until - Date.now()) / 1000));
    return errors.retryableDueToAnotherOperation(busy.operationName, busy.operationId, resourceId, seconds);
  }

  private getOperation(provider: OperationRecord['provider']): Handler {
    return (_ctx, p) => {
      const op = this.operations.get(p.op!.toLowerCase());
      if (!op || op.provider !== provider || op.subscriptionId.toLowerCase() !== p.sub!.toLowerCase()) {
        throw new AzureError(404, 'OperationNotFound', `The operation '${p.op}' could not be found.`);
      }
      const headers: Record<string, string> = {};
      if (op.status === 'InProgress' && this.cfg.asyncRetryAfterSeconds > 0) headers['Retry-After'] = String(this.cfg.asyncRetryAfterSeconds);
      if (provider === 'Microsoft.Network') {
        const body: Record<string, unknown> = { status: op.status };
        if (op.error) body.error = op.error;
        return { status: 200, body, headers };
      }
      const body: Record<string, unknown> = { startTime: op.startTime, status: op.status, name: op.id };
      if (op.endTime) body.endTime = op.endTime;
      if (op.error) body.error = op.error;
      return { status: 200, body, headers };
    };
  }

  private getOperationResult(provider: OperationRecord['provider']): Handler {
    return (ctx, p) => {
      const op = this.operations.get(p.op!.toLowerCase());
      if (!op || op.provider !== provider) throw new AzureError(404, 'OperationNotFound', `The operation '${p.op}' could not be found.`);
      if (op.status === 'InProgress') return { status: 202, headers: { Location: this.operationUrl(ctx, op, 'operationResults') } };
      if (op.status === 'Failed' && op.error) throw new AzureError(400, op.error.code, op.error.message, op.error.details);
      return { status: 204 };
    };
  }

  // ---- network interfaces ----

  private nicOr404(p: Record<string, string>): Nic {
    const nic = this.state.nics.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Network/networkInterfaces/${p.nic}`));
    if (!nic) throw errors.notFound('Microsoft.Network/networkInterfaces', p.nic!, p.rg!);
    return nic;
  }

  private putNic: Handler = (ctx, p) => {
    if (!this.state.hasResourceGroup(p.sub!, p.rg!)) throw errors.resourceGroupNotFound(p.rg!);
    const id = `/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Network/networkInterfaces/${p.nic}`;
    const existing = this.state.nics.get(key(id));
    checkIfMatch(ctx, existing?.id ?? id, existing?.etag);
    const body = parseBody(nicPutSchema, ctx.body);
    const location = body.location ?? existing?.location;
    if (!location) throw new AzureError(400, 'LocationRequired', 'The location property is required for this definition.');
    const async = this.cfg.mode === 'async' || ctx.fault?.as === 'operation';
    if (existing?.busy) {
      if (this.cfg.concurrentWrite === 'retryable') throw this.busyError(existing.busy, existing.id);
      const busy = existing.busy;
      const { headers } = this.startOperation(ctx, 'Microsoft.Network', 'PutNetworkInterfaceOperation', p.sub!, existing.location, existing.id,
        () => errors.anotherOperationInProgress(busy.operationName, busy.operationId, existing.id));
      return { status: 200, body: renderNic(existing), headers };
    }
    const spec: Parameters<EmulatorState['putNic']>[1] = { location, ipConfigs: desiredFromNicPut(body) };
    if (body.tags) spec.tags = body.tags;
    if (typeof body.properties.enableAcceleratedNetworking === 'boolean') spec.enableAcceleratedNetworking = body.properties.enableAcceleratedNetworking;
    if (typeof body.properties.enableIPForwarding === 'boolean') spec.enableIPForwarding = body.properties.enableIPForwarding;
    const { nic, created, previous } = this.state.putNic(existing?.id ?? id, spec);
    const status = created ? 201 : 200;
    if (!async) {
      nic.provisioningState = 'Succeeded';
      return { status, body: renderNic(nic) };
    }
    nic.provisioningState = 'Updating';
    const fault = ctx.fault;
    const { op, headers } = this.startOperation(ctx, 'Microsoft.Network', 'PutNetworkInterfaceOperation', p.sub!, nic.location, nic.id, () => {
      delete nic.busy; // busy lasts exactly until this operation ends, so no other write ran meanwhile
      if (fault) {
        this.state.restoreIpConfigs(nic, previous);
        nic.provisioningState = 'Failed';
        return new AzureError(fault.status, fault.code, fault.message, fault.details);
      }
      nic.provisioningState = 'Succeeded';
      return undefined;
    });
    nic.busy = { operationId: op.id, operationName: op.name, until: Date.now() + this.cfg.asyncDurationMs };
    return { status, body: renderNic(nic), headers };
  };

  private deleteNic: Handler = (ctx, p) => {
    const id = `/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Network/networkInterfaces/${p.nic}`;
    const nic = this.state.nics.get(key(id));
    if (!nic) return { status: 204 };
    checkIfMatch(ctx, nic.id, nic.etag);
    if (nic.busy) throw this.busyError(nic.busy, nic.id);
    this.state.deleteNic(nic);
    if (this.cfg.mode === 'sync') return { status: 200 };
    const { headers } = this.startOperation(ctx, 'Microsoft.Network', 'DeleteNetworkInterfaceOperation', p.sub!, nic.location, nic.id, () => undefined);
    headers.Location = headers['Azure-AsyncOperation']!.replace('/operations/', '/operationResults/');
    return { status: 202, headers };
  };

  private patchNicTags: Handler = (ctx, p) => {
    const nic = this.nicOr404(p);
    checkIfMatch(ctx, nic.id, nic.etag);
    const body = parseBody(z.looseObject({ tags: z.record(z.string(), z.string()).optional() }), ctx.body);
    nic.tags = body.tags ?? {};
    return { status: 200, body: renderNic(nic) };
  };

  private page<T>(ctx: Ctx, items: T[], render: (t: T) => unknown): Reply {
    const skip = Number(ctx.url.searchParams.get('$skiptoken') ?? '0') || 0;
    const slice = items.slice(skip, skip + this.cfg.pageSize);
    const body: Record<string, unknown> = { value: slice.map(render) };
    if (skip + this.cfg.pageSize < items.length) {
      const next = new URL(ctx.url.toString());
      next.searchParams.set('$skiptoken', String(skip + this.cfg.pageSize));
      body.nextLink = `${ctx.origin}${next.pathname}${next.search}`;
    }
    return { status: 200, body };
  }

  private instanceOr404(p: Record<string, string>): ScaleSetInstance {
    const ssId = `/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${p.ss}`;
    const inst = this.state.instances.get(key(`${ssId}/virtualMachines/${p.vm}`));
    if (!inst) {
      if (!this.state.scaleSets.has(key(ssId))) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets', p.ss!, p.rg!);
      throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets/virtualMachines', `${p.ss}/${p.vm}`, p.rg!);
    }
    return inst;
  }

  private vmssNicOr404(p: Record<string, string>): Nic {
    const inst = this.instanceOr404(p);
    const nic = inst.nics.find((n) => n.name.toLowerCase() === p.nic!.toLowerCase());
    if (!nic) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces', `${p.ss}/${p.vm}/${p.nic}`, p.rg!);
    return nic;
  }

  /** Scale-set VM update: the ip-configs of its NICs come from networkProfileConfiguration. */
  private putScaleSetVm: Handler = (ctx, p) => {
    const inst = this.instanceOr404(p);
    const ifMatch = header(ctx, 'if-match');
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== computeEtag(inst.etag)) {
      throw new AzureError(412, 'PreconditionFailed', `The specified precondition 'If-Match = ${ifMatch}' was not met. Current ETag is '${computeEtag(inst.etag)}'.`);
    }
    if (inst.busy) {
      if (this.cfg.concurrentWrite === 'retryable') throw this.busyError(inst.busy, inst.id);
      const busy = inst.busy;
      const { headers } = this.startOperation(ctx, 'Microsoft.Compute', 'PutVirtualMachineScaleSetVMOperation', p.sub!, inst.scaleSet.location, inst.id,
        () => errors.anotherOperationInProgress(busy.operationName, busy.operationId, inst.id));
      return { status: 200, body: renderScaleSetVm(inst), headers };
    }
    const body = parseBody(vmssVmPutSchema, ctx.body);
    const configs = body.properties?.networkProfileConfiguration?.networkInterfaceConfigurations;
    const undo: Array<{ nic: Nic; previous: readonly IpConfig[] }> = [];
    if (configs) {
      try {
        for (const c of configs) {
          const nic = inst.nics.find((n) => n.name.toLowerCase() === c.name.toLowerCase());
          if (!nic) throw errors.invalidParameter(`Network interface configuration '${c.name}' does not exist on virtual machine ${inst.id}; adding NICs is not emulated.`);
          const r = this.state.putNic(nic.id, { location: nic.location, ipConfigs: desiredFromVmssNicConfig(c.properties?.ipConfigurations ?? []) });
          undo.push({ nic, previous: r.previous });
        }
      } catch (e) {
        for (const u of undo.reverse()) this.state.restoreIpConfigs(u.nic, u.previous);
        throw e;
      }
    }
    inst.etag++;
    const async = this.cfg.mode === 'async' || ctx.fault?.as === 'operation';
    if (!async) {
      inst.provisioningState = 'Succeeded';
      return { status: 200, body: renderScaleSetVm(inst) };
    }
    inst.provisioningState = 'Updating';
    for (const u of undo) u.nic.provisioningState = 'Updating';
    const fault = ctx.fault;
    const { op, headers } = this.startOperation(ctx, 'Microsoft.Compute', 'PutVirtualMachineScaleSetVMOperation', p.sub!, inst.scaleSet.location, inst.id, () => {
      delete inst.busy;
      if (fault) {
        for (const u of [...undo].reverse()) { this.state.restoreIpConfigs(u.nic, u.previous); u.nic.provisioningState = 'Failed'; }
        inst.provisioningState = 'Failed';
        inst.etag++;
        return new AzureError(fault.status, fault.code, fault.message, fault.details);
      }
      for (const u of undo) u.nic.provisioningState = 'Succeeded';
      inst.provisioningState = 'Succeeded';
      return undefined;
    });
    inst.busy = { operationId: op.id, operationName: op.name, until: Date.now() + this.cfg.asyncDurationMs };
    return { status: 200, body: renderScaleSetVm(inst), headers };
  };

  private buildRoutes(): Route[] {
    const S = 'subscriptions/:sub';
    const RG = `${S}/resourcegroups/:rg/providers`;
    const NET = `${RG}/microsoft.network`;
    const CMP = `${RG}/microsoft.compute`;
    const VMSSVM = `${CMP}/virtualmachinescalesets/:ss/virtualmachines/:vm`;
    const st = this.state;
    const r = (method: string, pattern: string, kind: string, handler: Handler): Route => ({ method, pattern: pattern.split('/'), kind, handler });
    const rgCheck = (p: Record<string, string>) => { if (!st.hasResourceGroup(p.sub!, p.rg!)) throw errors.resourceGroupNotFound(p.rg!); };
    const inRg = (p: Record<string, string>) => (x: { subscriptionId: string; resourceGroup: string }) =>
      x.subscriptionId.toLowerCase() === p.sub!.toLowerCase() && x.resourceGroup.toLowerCase() === p.rg!.toLowerCase();
    const inSub = (p: Record<string, string>) => (x: { subscriptionId: string }) => x.subscriptionId.toLowerCase() === p.sub!.toLowerCase();
    const vnetOr404 = (p: Record<string, string>) => {
      const v = st.vnets.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Network/virtualNetworks/${p.vnet}`));
      if (!v) throw errors.notFound('Microsoft.Network/virtualNetworks', p.vnet!, p.rg!);
      return v;
    };
    const ok = (body: unknown): Reply => ({ status: 200, body });
    return [
      r('GET', `${S}/providers/microsoft.network/locations/:loc/operations/:op`, 'operation.get', this.getOperation('Microsoft.Network')),
      r('GET', `${S}/providers/microsoft.network/locations/:loc/operationresults/:op`, 'operationresult.get', this.getOperationResult('Microsoft.Network')),
      r('GET', `${S}/providers/microsoft.compute/locations/:loc/operations/:op`, 'operation.get', this.getOperation('Microsoft.Compute')),
      r('GET', `${S}/providers/microsoft.compute/locations/:loc/operationresults/:op`, 'operationresult.get', this.getOperationResult('Microsoft.Compute')),
      r('GET', `${S}/providers/microsoft.network/networkinterfaces`, 'nic.listall', (ctx, p) =>
        this.page(ctx, [...st.nics.values()].filter((n) => !n.vmss && inSub(p)(n)), renderNic)),
      r('GET', `${S}/providers/microsoft.compute/virtualmachines`, 'vm.listall', (ctx, p) =>
        this.page(ctx, [...st.vms.values()].filter(inSub(p)), renderVm)),
      r('GET', `${NET}/networkinterfaces`, 'nic.list', (ctx, p) => {
        rgCheck(p);
        return this.page(ctx, [...st.nics.values()].filter((n) => !n.vmss && inRg(p)(n)), renderNic);
      }),
      r('GET', `${NET}/networkinterfaces/:nic`, 'nic.get', (_ctx, p) => {
        const nic = this.nicOr404(p);
        return { status: 200, body: renderNic(nic), headers: { ETag: nic.etag } };
      }),
      r('PUT', `${NET}/networkinterfaces/:nic`, 'nic.put', this.putNic),
      r('DELETE', `${NET}/networkinterfaces/:nic`, 'nic.delete', this.deleteNic),
      r('PATCH', `${NET}/networkinterfaces/:nic`, 'nic.patch', this.patchNicTags),
      r('GET', `${NET}/networkinterfaces/:nic/ipconfigurations`, 'ipconfig.list', (ctx, p) => {
        const nic = this.nicOr404(p);
        return this.page(ctx, [...nic.ipConfigs], (c) => renderIpConfig(nic, c));
      }),
      r('GET', `${NET}/networkinterfaces/:nic/ipconfigurations/:cfg`, 'ipconfig.get', (_ctx, p) => {
        const nic = this.nicOr404(p);
        const c = nic.ipConfigs.find((x) => x.name.toLowerCase() === p.cfg!.toLowerCase());
        if (!c) throw errors.notFound('Microsoft.Network/networkInterfaces/ipConfigurations', `${p.nic}/${p.cfg}`, p.rg!);
        return ok(renderIpConfig(nic, c));
      }),
      r('GET', `${NET}/virtualnetworks`, 'vnet.list', (ctx, p) => { rgCheck(p); return this.page(ctx, [...st.vnets.values()].filter(inRg(p)), renderVnet); }),
      r('GET', `${NET}/virtualnetworks/:vnet`, 'vnet.get', (_ctx, p) => ok(renderVnet(vnetOr404(p)))),
      r('GET', `${NET}/virtualnetworks/:vnet/subnets`, 'subnet.list', (ctx, p) => this.page(ctx, [...vnetOr404(p).subnets.values()], (s) => renderSubnet(s, st.subnetIpConfigIds(s)))),
      r('GET', `${NET}/virtualnetworks/:vnet/subnets/:subnet`, 'subnet.get', (_ctx, p) => {
        const s = vnetOr404(p).subnets.get(p.subnet!.toLowerCase());
        if (!s) throw errors.notFound('Microsoft.Network/virtualNetworks/subnets', `${p.vnet}/${p.subnet}`, p.rg!);
        return ok(renderSubnet(s, st.subnetIpConfigIds(s)));
      }),
      r('GET', `${CMP}/virtualmachines`, 'vm.list', (ctx, p) => { rgCheck(p); return this.page(ctx, [...st.vms.values()].filter(inRg(p)), renderVm); }),
      r('GET', `${CMP}/virtualmachines/:vm`, 'vm.get', (_ctx, p) => {
        const vm = st.vms.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute/virtualMachines/${p.vm}`));
        if (!vm) throw errors.notFound('Microsoft.Compute/virtualMachines', p.vm!, p.rg!);
        return { status: 200, body: renderVm(vm), headers: { ETag: computeEtag(vm.etag) } };
      }),
      r('GET', `${CMP}/virtualmachinescalesets`, 'vmss.list', (ctx, p) => { rgCheck(p); return this.page(ctx, [...st.scaleSets.values()].filter(inRg(p)), renderScaleSet); }),
      r('GET', `${CMP}/virtualmachinescalesets/:ss`, 'vmss.get', (_ctx, p) => {
        const ss = st.scaleSets.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${p.ss}`));
        if (!ss) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets', p.ss!, p.rg!);
        return ok(renderScaleSet(ss));
      }),
      r('GET', `${CMP}/virtualmachinescalesets/:ss/virtualmachines`, 'vmssvm.list', (ctx, p) => {
        const ss = st.scaleSets.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${p.ss}`));
        if (!ss) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets', p.ss!, p.rg!);
        return this.page(ctx, [...ss.instances.values()], renderScaleSetVm);
      }),
      r('GET', `${CMP}/virtualmachinescalesets/:ss/networkinterfaces`, 'vmssnic.listall', (ctx, p) => {
        const ss = st.scaleSets.get(key(`/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${p.ss}`));
        if (!ss) throw errors.notFound('Microsoft.Compute/virtualMachineScaleSets', p.ss!, p.rg!);
        return this.page(ctx, [...ss.instances.values()].flatMap((i) => i.nics), renderNic);
      }),
      r('GET', VMSSVM, 'vmssvm.get', (_ctx, p) => {
        const inst = this.instanceOr404(p);
        return { status: 200, body: renderScaleSetVm(inst), headers: { ETag: computeEtag(inst.etag) } };
      }),
      r('PUT', VMSSVM, 'vmssvm.put', this.putScaleSetVm),
      r('GET', `${VMSSVM}/networkinterfaces`, 'vmssnic.list', (ctx, p) => this.page(ctx, this.instanceOr404(p).nics, renderNic)),
      r('GET', `${VMSSVM}/networkinterfaces/:nic`, 'vmssnic.get', (_ctx, p) => {
        const nic = this.vmssNicOr404(p);
        return { status: 200, body: renderNic(nic), headers: { ETag: nic.etag } };
      }),
      r('GET', `${VMSSVM}/networkinterfaces/:nic/ipconfigurations`, 'vmssipconfig.list', (ctx, p) => {
        const nic = this.vmssNicOr404(p);
        return this.page(ctx, [...nic.ipConfigs], (c) => renderIpConfig(nic, c));
      }),
      r('GET', `${VMSSVM}/networkinterfaces/:nic/ipconfigurations/:cfg`, 'vmssipconfig.get', (_ctx, p) => {
        const nic = this.vmssNicOr404(p);
        const c = nic.ipConfigs.find((x) => x.name.toLowerCase() === p.cfg!.toLowerCase());
        if (!c) throw errors.notFound('Microsoft.Network/networkInterfaces/ipConfigurations', `${p.nic}/${p.cfg}`, p.rg!);
        return ok(renderIpConfig(nic, c));
      }),
    ];
  }

  // ---- admin endpoint ----

  private admin(method: string, segs: string[], body: unknown): Reply {
    const path = segs.join('/').toLowerCase();
    const ok = (b: unknown, status = 200): Reply => ({ status, body: b });
    try {
      switch (`${method} ${path}`) {
        case 'GET state': return ok(this.dump());
        case 'GET config': return ok(this.config);
        case 'PATCH config': case 'POST config': return ok(this.configure(body as EmulatorConfigPatch));
        case 'GET calls': return ok(this.calls());
        case 'DELETE calls': case 'POST calls/reset': this.resetCalls(); return ok(this.calls());
        case 'GET faults': return ok(this.pendingFaults());
        case 'POST faults': return ok({ id: this.injectFault(body as FaultRuleInput) }, 201);
        case 'DELETE faults': this.clearFaults(); return { status: 204 };
        case 'POST throttling/reset': this.resetThrottling(); return { status: 204 };
        case 'POST operations/finish': return ok({ finished: this.finishOperations() });
        case 'POST scenario': return ok(this.loadScenario(scenarioSchema.parse(body ?? {})), 201);
        case 'GET ips': return ok(this.ipOwners());
        default: {
          if (method === 'GET' && segs[0]?.toLowerCase() === 'ips' && segs[1]) {
            const o = this.ipOwner(segs[1]);
            return o ? ok(o) : ok({ error: { code: 'NotFound', message: `no NIC holds ${segs[1]}` } }, 404);
          }
          return ok({ error: { code: 'NotFound', message: `no admin route ${method} /_emulator/${path}` } }, 404);
        }
      }
    } catch (e) {
      if (e instanceof z.ZodError) return ok({ error: { code: 'InvalidRequest', message: z.prettifyError(e) } }, 400);
      if (e instanceof AzureError) return errorReply(e);
      return ok({ error: { code: 'InvalidRequest', message: (e as Error).message } }, 400);
    }
  }
}

function checkIfMatch(ctx: Ctx, id: string, etag: string | undefined): void {
  const ifMatch = header(ctx, 'if-match');
  if (ifMatch === undefined) return;
  if (etag !== undefined && (ifMatch === '*' || ifMatch === etag)) return;
  throw errors.preconditionFailed(id, ifMatch, etag);
}

function header(ctx: Ctx, name: string): string | undefined {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function matchPattern(pattern: string[], lsegs: string[], segs: string[]): Record<string, string> | undefined {
  if (pattern.length !== lsegs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = segs[i]!;
    else if (p !== lsegs[i]) return undefined;
  }
  return params;
}

function errorReply(e: unknown, headers: Record<string, string> = {}): Reply {
  if (e instanceof AzureError) return { status: e.status, body: e.body(), headers: { ...headers, ...e.headers } };
  const err = new AzureError(500, 'InternalServerError', `Emulator error: ${(e as Error)?.message ?? String(e)}`);
  return { status: 500, body: err.body(), headers };
}

const MAX_BODY = 16 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw errors.badRequest('Request body too large.');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw errors.badRequest('The request body is not valid JSON.');
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}

function hostForUrl(host: string): string { return host.includes(':') ? `[${host}]` : host; }
