// The Azure emulator: one HTTPS server speaking ARM (and Entra ID's token endpoint), its state, and the
// methods tests and tools drive it with. A request goes: HTTP (here) -> the ARM pipeline (pipeline.ts:
// auth, throttling, faults) -> a route (network-routes.ts, compute-routes.ts, lro.ts); /_emulator/...
// goes to the admin endpoint (admin.ts) instead.
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors } from './errors.js';
import { configPatchSchema, defaultConfig, type EmulatorConfig, type EmulatorConfigPatch, type FaultRuleInput } from './config.js';
import { EmulatorState, key, type IpChangeEvent, type IpOwner } from './state.js';
import { renderNic, renderScaleSet, renderScaleSetVm, renderVm } from './render.js';
import { Throttles } from './throttle.js';
import { generateSelfSignedCert, type TlsMaterial } from './tls.js';
import { loadScenario, type ScenarioInput, type ScenarioResult } from './scenario.js';
import { EntraTokens } from './entra.js';
import { imdsReply, type ImdsMachine } from './imds.js';
import { ipInNetns, listenInNetns } from './netns-listen.js';
import { errorReply, hostForUrl, listen, parseJson, readBody, type Reply, type Route } from './http.js';
import { Faults, type PendingFault } from './faults.js';
import { Operations, type OperationRecord } from './lro.js';
import { countKind, noCalls, runArm, type CallCounts, type PipelineDeps } from './pipeline.js';
import { networkRoutes } from './network-routes.js';
import { computeRoutes } from './compute-routes.js';
import { adminReply, isEventStream, streamEvents } from './admin.js';

export type { CallCounts } from './pipeline.js';
export type { OperationRecord } from './lro.js';

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

/** One certificate per process unless a caller brings its own: openssl costs tens of ms per start. */
let sharedTls: TlsMaterial | undefined;

export class AzureEmulator {
  readonly state: EmulatorState;
  private cfg: EmulatorConfig;
  private readonly faults = new Faults();
  private readonly throttles = new Throttles(() => this.cfg);
  private readonly operations = new Operations(() => this.cfg);
  /** The emulated Entra ID token endpoint (/<tenant>/oauth2/v2.0/token). */
  readonly entra = new EntraTokens();
  private counts: CallCounts = noCalls();
  private readonly pipeline: PipelineDeps;
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
    const cfg = () => this.cfg;
    const routeDeps = { state: this.state, cfg, operations: this.operations };
    // Order matters only between routes of one path (a 405 needs every method's route looked at).
    const routes: Route[] = [...this.operations.routes(), ...networkRoutes(routeDeps), ...computeRoutes(routeDeps)];
    this.pipeline = { routes, state: this.state, cfg, entra: this.entra, throttles: this.throttles, faults: this.faults, counts: () => this.counts };
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
    this.operations.stop();
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
      countKind(this.counts, reply.status === 200 && req.url?.includes('/identity/') ? 'imds.token' : 'imds.get');
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

  // ---- fault injection and inspection (also served under /_emulator, admin.ts) ----

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
    this.state.options.allowMultipleSubnetsPerNic = this.cfg.allowMultipleSubnetsPerNic;
    this.throttles.limitsChanged();
    return this.config;
  }

  /** Makes the next `count` matching calls fail. Returns the rule id. */
  injectFault(rule: FaultRuleInput): string { return this.faults.inject(rule); }

  clearFaults(): void { this.faults.clear(); }

  pendingFaults(): PendingFault[] { return this.faults.pending(); }

  calls(): CallCounts { return structuredClone(this.counts); }

  resetCalls(): void { this.counts = noCalls(); }

  /** Refills every throttling bucket (new buckets start full). */
  resetThrottling(): void { this.throttles.reset(); }

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
  finishOperations(): number { return this.operations.finishAll(); }

  dump(): Record<string, unknown> {
    const s = this.state;
    return {
      config: this.config,
      subnets: [...s.subnets.values()].map((sub) => ({ id: sub.id, addressPrefix: sub.addressPrefix, used: sub.pool.used, free: sub.pool.free, capacity: sub.pool.capacity })),
      networkInterfaces: [...s.nics.values()].map(renderNic),
      virtualMachines: [...s.vms.values()].map(renderVm),
      virtualMachineScaleSets: [...s.scaleSets.values()].map((ss) => ({ ...renderScaleSet(ss), instances: [...ss.instances.values()].map(renderScaleSetVm) })),
      operations: this.operations.all(),
      faults: this.pendingFaults(),
      calls: this.calls(),
    };
  }

  // ---- HTTP ----

  /**
   * A request's whole life; nothing it throws may escape into the hosting process (an unhandled rejection
   * ends a Node process): a reply that cannot be written, e.g. to a client already gone, ends that socket.
   */
  private serve(req: IncomingMessage, res: ServerResponse, adminOnly: boolean): void {
    res.on('error', () => res.destroy());
    this.handle(req, res, adminOnly).catch(() => res.destroy());
  }

  /** Sends the request to the Entra token endpoint, the admin endpoint or ARM, and writes the reply. */
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
      if (isEventStream(req.method, segs)) {
        streamEvents(this, req, res);
        return;
      }
      const method = (req.method ?? 'GET').toUpperCase();
      const entra = adminOnly || segs[0]?.toLowerCase() === 'subscriptions' ? undefined
        : this.entra.handle(method, segs, raw, origin, { clients: this.cfg.entraClients, tokenLifetimeSeconds: this.cfg.tokenLifetimeSeconds });
      if (entra) {
        countKind(this.counts, segs[1]?.toLowerCase() === 'oauth2' ? 'entra.token' : 'entra.discovery');
        reply = entra;
      } else if (segs[0]?.toLowerCase() === '_emulator') reply = adminReply(this, method, segs.slice(1), parseJson(raw));
      else if (adminOnly) reply = errorReply(errors.unsupportedRoute(method, url.pathname));
      else reply = await runArm(this.pipeline, { method, url, origin, segs, headers: req.headers, body: parseJson(raw), fault: undefined });
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
}
