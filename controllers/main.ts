import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import type { TokenCredential } from '@azure/core-auth';
import { pino, type Logger } from 'pino';
import type { ArmAdapter } from './azure.js';
import { AZURE_CLOUDS, flagHelp, loadConfig, type Config } from './config.js';
import type { Controller } from './controller.js';
import type { KubeClient } from './kube.js';
import { CONTROLLER_FIELD_MANAGER } from '../crds/api/group.js';
import type { LeaderElector } from './leader.js';
import { azureCallObserver, createMetrics, type Metrics } from './metrics.js';

/**
 * The controller process: configuration, credentials, the HTTP endpoints (/metrics, /healthz, /readyz),
 * leader election, and a graceful stop on SIGTERM (runs in progress finish, the lease is handed back).
 * The Azure SDKs and the Kubernetes client are loaded only once the flags are valid: `--help` and a bad
 * flag answer without them.
 */

/** A fixed bearer token, for the emulator only: config.ts refuses it without --azure-endpoint. */
class StaticTokenCredential implements TokenCredential {
  constructor(private readonly token: string) {}
  async getToken() { return { token: this.token, expiresOnTimestamp: Date.now() + 3_600_000 }; }
}

export async function azureCredential(c: Config, env: NodeJS.ProcessEnv): Promise<TokenCredential> {
  if (c.credential === 'emulator') return new StaticTokenCredential(env.PODVNET_EMULATOR_TOKEN ?? 'podvnet-emulator');
  const { AzureCliCredential, DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential } = await import('@azure/identity');
  const authorityHost = AZURE_CLOUDS[c.azureCloud].authority;
  switch (c.credential) {
    case 'workload': return new WorkloadIdentityCredential({ authorityHost });
    case 'managed': return c.managedIdentityClientId ? new ManagedIdentityCredential({ clientId: c.managedIdentityClientId }) : new ManagedIdentityCredential();
    case 'cli': return new AzureCliCredential();
    default: return new DefaultAzureCredential({ authorityHost, ...(c.managedIdentityClientId ? { managedIdentityClientId: c.managedIdentityClientId } : {}) });
  }
}

async function kubeClient(c: Config, env: NodeJS.ProcessEnv): Promise<KubeClient> {
  const [{ KubeConfig: Config_ }, { KubeClient: Client }] = await Promise.all([import('@kubernetes/client-node'), import('./kube.js')]);
  const kc: KubeConfig = new Config_();
  if (c.kubeconfig) kc.loadFromFile(c.kubeconfig);
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return new Client(kc, 64, CONTROLLER_FIELD_MANAGER);
}

/** The Azure adapter: credential, endpoint and CA, behind the ARM budget (limiter.ts), counted in the metrics. */
async function armAdapter(config: Config, env: NodeJS.ProcessEnv, metrics: Metrics): Promise<{ azure: ArmAdapter; endpoint: string }> {
  const [{ ArmAdapter: Adapter, armClientFactory }, { ArmLimiter }] = await Promise.all([import('./azure.js'), import('./limiter.js')]);
  const limiter = new ArmLimiter({
    concurrency: config.armConcurrency,
    writes: { capacity: config.writeBurst, refillPerSecond: config.writesPerSecond },
    reads: { capacity: config.readBurst, refillPerSecond: config.readsPerSecond },
  });
  const endpoint = config.azureEndpoint ?? AZURE_CLOUDS[config.azureCloud].arm;
  const extra = config.azureCaFile ? { tlsOptions: { ca: readFileSync(config.azureCaFile, 'utf8') } } : {};
  const azure = new Adapter(armClientFactory(await azureCredential(config, env), { endpoint, extra }), limiter, azureCallObserver(metrics), config.pollIntervalMs);
  return { azure, endpoint };
}

/** What the HTTP endpoints read of the process. */
interface Health {
  metrics: Metrics;
  controller(): Controller | undefined;
  shuttingDown(): boolean;
  /** Ready while standing by for the lease (with leader election). */
  standbyReady(): boolean;
}

/** /metrics, /healthz (503 once shutting down), /readyz (the controller's caches synced, or standing by). */
async function serveHttp(config: Config, h: Health): Promise<{ server: Server; url: string }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      h.metrics.queueDepth.set(h.controller()?.queue.depth ?? 0);
      h.metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': h.metrics.registry.contentType });
        res.end(body);
      }, (e) => { res.writeHead(500); res.end(String(e)); });
      return;
    }
    if (path === '/healthz') {
      const down = h.shuttingDown();
      res.writeHead(down ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(down ? 'shutting down\n' : 'ok\n');
      return;
    }
    if (path === '/readyz') {
      const c = h.controller();
      const ready = !h.shuttingDown() && (c ? c.ready : h.standbyReady());
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ready ? 'ok\n' : 'not ready\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.httpPort, config.httpHost, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}` };
}

export interface Running {
  /** http://host:port of the metrics and health server. */
  url: string;
  config: Config;
  controller(): Controller | undefined;
  isLeader(): boolean;
  stop(): Promise<void>;
  /** Resolves when the process should exit (lost leadership or stopped), with the exit code. */
  done: Promise<number>;
}

export async function run(argv: readonly string[], env: NodeJS.ProcessEnv, log?: Logger): Promise<Running> {
  const config = loadConfig(argv, env);
  const logger = log ?? pino({ level: config.logLevel, base: { component: 'podvnet-controller' } });
  const metrics = createMetrics({ defaultMetrics: true });
  // In this order, as before: a kubeconfig problem is said before a credential problem.
  const kube = await kubeClient(config, env);
  const { azure, endpoint } = await armAdapter(config, env, metrics);
  const { Controller: ControllerClass } = await import('./controller.js');

  let controller: Controller | undefined;
  let shuttingDown = false;
  let standbyReady = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => { finish = resolve; });

  const startController = async () => {
    controller = new ControllerClass(kube, azure, logger, metrics, {
      workers: config.workers,
      resyncMs: config.resyncSeconds * 1000,
      // Events about cluster-scoped objects are accepted only in 'default' (or kube-system) by the API server.
      eventNamespace: config.eventNamespace ?? 'default',
      instance: config.identity,
    });
    try {
      await controller.start();
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'controller failed to start');
      finish(1);
    }
  };

  const { server, url } = await serveHttp(config, {
    metrics, controller: () => controller, shuttingDown: () => shuttingDown, standbyReady: () => standbyReady,
  });
  logger.info({ url, leaderElect: config.leaderElect, identity: config.identity, azure: endpoint, credential: config.credential }, 'serving metrics and health');

  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
    const { LeaderElector: Elector, DEFAULT_LEADER_TIMING } = await import('./leader.js');
    elector = new Elector(kube, {
      namespace: config.leaseNamespace, name: config.leaseName, identity: config.identity, ...DEFAULT_LEADER_TIMING,
    }, logger, {
      onStartedLeading: () => { metrics.leader.set(1); void startController(); },
      onStoppedLeading: () => {
        metrics.leader.set(0);
        // Another replica leads now: stop at once and let the process restart clean.
        logger.warn('lost leadership; exiting');
        void stop(1);
      },
    });
    elector.start();
    standbyReady = true;
  } else {
    metrics.leader.set(1);
    await startController();
  }

  /** Graceful stop; `done` resolves with `code` (1 after lost leadership, so the restart shows why). */
  const stop = async (code = 0) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info('shutting down');
    const timeout = setTimeout(() => { logger.error('shutdown took too long; exiting'); finish(1); }, config.shutdownTimeoutSeconds * 1000);
    timeout.unref();
    await controller?.stop();
    await elector?.stop();
    await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
    clearTimeout(timeout);
    finish(code);
  };

  return { url, config, controller: () => controller, isLeader: () => (elector ? elector.isLeader : true), stop, done };
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(flagHelp());
    process.exit(0);
  }
  run(args, process.env).then((r) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void r.stop());
    return r.done.then((code) => process.exit(code));
  }, (e: Error) => {
    process.stderr.write(`${JSON.stringify({ level: 60, msg: e.message, component: 'podvnet-controller' })}\n`);
    process.exit(2);
  });
}
