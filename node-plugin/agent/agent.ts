import { existsSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { Counter } from 'prom-client';
import * as datapathModule from '../datapath/index.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import type { NodeNetwork } from '../datapath/index.js';
import { AgentAddressService, type PodAddressService, type PoolSettings } from './address-service.js';
import { CniHandler, type Datapath } from './cni-handler.js';
import { listenCniSocket, type CniSocketServer } from './cni-socket.js';
import type { AgentConfig } from './config.js';
import { DelQueue } from './del-queue.js';
import { FileStore, type Store } from './ipam/store.js';
import { createMetrics, exportReadiness, startHealthServer, type AgentMetrics, type Readiness } from './metrics.js';
import { FileRecordSource } from './file-source.js';
import { awaitingVethTeardown, planReconcile, type ReconcileInput } from './reconcile.js';
import { CoalescingWriter, writtenSpec, type RecordSource } from './sync.js';

/**
 * The node agent process: wires the store, the address service, the record source (API server or
 * file), the CNI socket, the CNM driver socket and the health/metrics endpoint, reconciles on start and
 * shuts down gracefully.
 */

export interface AgentDeps {
  logger?: Logger;
  datapath?: Datapath & Partial<Pick<typeof datapathModule, 'hostInterfaceMTU'>>;
  source?: RecordSource;
  store?: Store;
}

export interface RunningAgent {
  config: AgentConfig;
  addresses: AgentAddressService;
  handler: CniHandler;
  metrics: AgentMetrics;
  /** host:port of /healthz, /readyz, /metrics. */
  healthAddress: string;
  /** Resolves after start-up reconciliation has run (once the record first arrived with status). */
  reconciled: Promise<void>;
  /** What /readyz answers. */
  readiness(): Promise<Readiness>;
  /** DELs the CNI executable queued while the agent was unreachable. */
  delQueue: DelQueue;
  /** One round of the periodic node resync (ensureNode with force); resolves when done. */
  resyncNode(): Promise<void>;
  /** SIGTERM behaviour: stop accepting, finish in-flight requests, flush state and spec, release the lock. */
  close(): Promise<void>;
}

type CnmServer = http.Server & { shutdown?: () => Promise<void> };
interface CnmModule {
  createCnmServer(deps: { addresses: PodAddressService; datapath: typeof datapathModule; logger: Logger; stateDir: string }): CnmServer;
  listenOnSocket(server: http.Server, socketPath: string): Promise<void>;
}

async function loadCnm(logger: Logger): Promise<CnmModule | undefined> {
  const spec = '../cnm/index.js'; // resolved at run time: the node can run without the CNM driver
  try {
    return (await import(spec)) as CnmModule;
  } catch (err) {
    logger.info({ err: (err as Error).message }, 'CNM driver not available; serving CNI only');
    return undefined;
  }
}

function netnsExists(path: string): boolean {
  return existsSync(path);
}

export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<RunningAgent> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { component: 'podvnet-agent', node: config.nodeName } });
  const datapath = deps.datapath ?? datapathModule;
  const store = deps.store ?? new FileStore(config.stateDir);
  const state = await store.lock();

  let mtu = config.mtu;
  if (mtu === undefined) {
    try {
      mtu = await (datapath.hostInterfaceMTU ?? datapathModule.hostInterfaceMTU)(config.hostInterface, config.hostNetns);
    } catch (err) {
      logger.warn({ err: (err as Error).message, hostInterface: config.hostInterface }, 'cannot read the host interface MTU; using 1500');
      mtu = 1500;
    }
  }

  // Concurrent readers (probes, scrapes) share one run of the diagnostics.
  let diagnosing: ReturnType<NonNullable<Datapath['nodeDiagnostics']>> | undefined;
  const diagnose = (net: NodeNetwork) => (diagnosing ??= datapath.nodeDiagnostics!(net).finally(() => (diagnosing = undefined)));

  const addresses = new AgentAddressService({
    store,
    node: { nodeName: config.nodeName, bridgeName: config.bridge, hostInterface: config.hostInterface, mtu, hostNetns: config.hostNetns },
    cooldownMs: config.cooldownMs,
    pendingWindowMs: config.pendingWindowMs,
    noFreeIPAdvice: config.standalone === 'off' ? undefined : (await import('./standalone.js')).standaloneNoFreeIPAdvice(config),
  });
  addresses.restore(state);
  const metrics = createMetrics(addresses, async () => {
    const net = addresses.nodeNetwork();
    return net && datapath.nodeDiagnostics ? (await diagnose(net)).problems : undefined;
  });
  logger.info({ allocations: state.allocations.length, released: state.released.length, stateDir: config.stateDir }, 'state loaded');

  let source: RecordSource;
  if (deps.source) source = deps.source;
  else if (config.recordFile) source = new FileRecordSource(config.recordFile, logger);
  else if (config.standalone !== 'off') source = await (await import('./standalone.js')).standaloneSource(config, logger);
  else {
    // The Kubernetes client is loaded only when used: it is most of the agent's memory.
    const [{ KubeConfig }, { KubeRecordSource }] = await Promise.all([import('@kubernetes/client-node'), import('./record-source.js')]);
    const kc = new KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
    source = new KubeRecordSource(kc, config.nodeName, logger);
  }

  const writer = new CoalescingWriter({
    minIntervalMs: config.syncIntervalMs,
    // No record, nothing to patch (a node no pool selects would otherwise retry a 404 forever).
    enabled: () => addresses.recordPresence() === 'present',
    desired: async () => {
      const releasedIPs = await addresses.planReleases();
      // Block mode: whole /28s go back in spec.releasedBlocks (the handshake per block).
      return { demand: addresses.demand(), releasedIPs, ...(addresses.blockMode() ? { releasedBlocks: addresses.releasedBlockList() } : {}) };
    },
    write: async (patch) => {
      await source.writeSpec(patch.spec);
      metrics.specWrites.inc();
      logger.debug({ spec: patch.spec }, 'wrote demand and releases');
    },
    onError: (err) => logger.warn({ err: (err as Error).message }, 'writing spec.demand/releasedIPs failed; will retry'),
  });
  addresses.onChange((change) => writer.poke(change));

  const handler = new CniHandler({ addresses, datapath, logger });

  // DELs the CNI executable queued while no agent could take them: applied through the normal DEL path.
  const delQueue = new DelQueue({
    dir: config.delQueueDir ?? path.join(config.stateDir, 'del-queue'),
    apply: (env, stdin) => handler.handle(env, stdin),
    assignedAt: (containerId, ifName) => addresses.allocation({ containerId, ifName })?.assignedAt,
    logger,
  });
  await delQueue.prepare().catch((err: Error) => logger.warn({ err: err.message }, 'cannot create the DEL queue directory'));
  new Counter({
    name: 'podvnet_agent_queued_dels_total',
    help: 'DELs the CNI executable queued while the agent was unreachable, by what became of them (applied, superseded by a later ADD, rejected as unreadable, failed attempts that are retried).',
    labelNames: ['result'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const [result, n] of Object.entries(delQueue.totals)) this.inc({ result }, n);
    },
  });

  // The node network is set up as soon as it is known, then re-applied periodically (force), so chains
  // flushed by other software (a firewall reload, `iptables -F`) come back without a pod event.
  let resyncing: Promise<void> | undefined;
  let setupError: string | undefined; // why the last attempt to set up the node network failed
  const resyncNode = (force: boolean): Promise<void> => {
    const net = addresses.nodeNetwork();
    if (!net) return Promise.resolve();
    resyncing ??= (async () => {
      try {
        if (force && datapath.nodeDiagnostics) {
          const { problems } = await datapath.nodeDiagnostics(net);
          if (problems.length) logger.warn({ problems }, 'node network drifted; re-applying it');
        }
        await handler.ensureNode(net, { force });
        setupError = undefined;
      } catch (err) {
        setupError = (err as Error).message;
        logger.error({ err: (err as Error).message }, 'setting up the node network failed; will retry');
      } finally {
        resyncing = undefined;
      }
    })();
    return resyncing;
  };

  // Start-up reconciliation runs once, when the record first arrives with enough status to build the node network.
  let resolveReconciled!: () => void;
  const reconciled = new Promise<void>((r) => (resolveReconciled = r));
  let reconcileStarted = false;
  const reconcile = async () => {
    const net = addresses.nodeNetwork()!;
    const observe = async (): Promise<ReconcileInput> => {
      const attachments = await datapath.listAttachments(net);
      const allocations = addresses.listAllocations();
      return {
        allocations,
        attachments,
        netnsExists: new Map(allocations.filter((a) => a.netnsPath).map((a) => [a.netnsPath!, netnsExists(a.netnsPath!)])),
        // Block mode: an attachment with an address of one of the node's blocks is adopted too.
        poolIPs: addresses.podAddresses(),
        now: Date.now(),
      };
    };
    try {
      // Queued DELs first: they are the runtime telling us those pods are gone, and must land before
      // any ADD (which waits for this reconciliation) could be given their IPs or names.
      const queue = await delQueue.applyAll();
      if (queue.applied || queue.retrying.length || queue.rejected) logger.info({ ...queue }, 'applied the DELs queued while the agent was down');
      const queuedDels = new Set(queue.retrying);
      let input = { ...(await observe()), queuedDels };
      // Namespaces deleted a moment ago may still have their veth: give the kernel up to ~2 s.
      for (let i = 0; i < 20 && awaitingVethTeardown(input).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        input = { ...(await observe()), queuedDels };
      }
      const { attachments } = input;
      const plan = planReconcile(input);
      for (const a of plan.free) {
        // Its veth died with its namespace, but the node's /32 route to it did not: remove it (by IP).
        await datapath.detachPod(net, { containerId: a.containerId, ifName: a.ifName, ip: a.ip }).catch((err: Error) =>
          logger.warn({ containerId: a.containerId, ip: a.ip, err: err.message }, 'removing the route of a pod gone while the agent was down failed; GC will'),
        );
        await addresses.release(a);
      }
      for (const a of plan.adopt) await addresses.adopt(a);
      for (const c of plan.conflicts) logger.warn({ conflict: c }, 'reconciliation conflict');
      logger.info({ kept: plan.keep.length, freed: plan.free.map((a) => a.ip), adopted: plan.adopt.map((a) => a.ip), attachments: attachments.length }, 'reconciled with the kernel');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'start-up reconciliation failed; keeping every stored allocation');
    }
    resolveReconciled();
  };
  let previous: string | null | undefined; // the last record's uid; null: absent; undefined: nothing heard yet
  const onUpdate = (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => {
    const uid = record ? record.metadata.uid ?? '' : null;
    const recreated = record !== undefined && previous !== undefined && uid !== previous;
    previous = uid;
    if (recreated) writer.reset(writtenSpec(record)); // before setRecord's change event pokes the writer
    else if (record) writer.observe(writtenSpec(record));
    addresses.setRecord(record, pool);
    if (!reconcileStarted && addresses.nodeNetwork()) {
      reconcileStarted = true;
      // The node network first (readiness checks it once reconciled), then the reconciliation.
      void resyncNode(false).then(reconcile);
    }
  };
  await source.start(onUpdate);
  // Files that appear later (an executable that found the agent gone a moment ago) are applied as they come.
  delQueue.watch();
  void delQueue.applyAll();
  const resyncTimer = config.resyncIntervalMs > 0 ? setInterval(() => void resyncNode(true), config.resyncIntervalMs).unref() : undefined;
  const cniSocket: CniSocketServer = await listenCniSocket(config.socket, async (env, stdin) => {
    const started = process.hrtime.bigint();
    const command = env.CNI_COMMAND ?? 'UNKNOWN';
    // Requests that touch allocations wait for start-up reconciliation; before any record they get "try again".
    if (reconcileStarted && command !== 'VERSION' && command !== 'STATUS') await reconciled;
    const res = await handler.handle(env, stdin);
    const code = res.exitCode === 0 ? '0' : String((JSON.parse(res.stdout) as { code?: number }).code ?? 'unknown');
    metrics.cniRequests.inc({ command, code });
    metrics.cniDuration.observe({ command }, Number(process.hrtime.bigint() - started) / 1e9);
    return res;
  });
  logger.info({ socket: config.socket }, 'CNI socket listening');
  // The conflist goes in only once the socket answers, so the runtime never sees a network it cannot use.
  if (config.cniBinDir || config.cniConfDir) {
    const { installCni } = await import('./install.js'); // only where the agent installs the plugin itself
    const written = await installCni({
      binarySource: config.cniBinary || fileURLToPath(new URL('../cni/bin/podvnet-cni', import.meta.url)),
      binDir: config.cniBinDir || undefined,
      confDir: config.cniConfDir || undefined,
      networkName: config.cniNetworkName,
      agentSocket: config.socket,
      delQueueDir: delQueue.dir,
      mtu: config.mtu,
      portmap: true,
    });
    logger.info({ written }, 'CNI executable and configuration installed');
  }

  let cnmServer: CnmServer | undefined;
  if (config.cnmSocket) {
    const cnm = await loadCnm(logger);
    if (cnm) {
      // The CNM driver keeps its own crash-safe state (networks, endpoints) beside the agent's.
      cnmServer = cnm.createCnmServer({ addresses, datapath: datapathModule, logger, stateDir: path.join(config.stateDir, 'cnm') });
      await cnm.listenOnSocket(cnmServer, config.cnmSocket);
      logger.info({ socket: config.cnmSocket }, 'CNM driver listening');
    }
  }

  let closing = false;
  const readiness = async (): Promise<Readiness> => {
    if (closing) return { ready: false, detail: 'shutting down' };
    // A node no pool selects is a normal state: the DaemonSet runs everywhere, and the agent is healthy.
    if (addresses.recordPresence() === 'absent') return { ready: true, detail: addresses.notReadyReason() };
    const net = addresses.nodeNetwork();
    if (!net || !addresses.isReady()) return { ready: false, detail: addresses.notReadyReason() };
    if (datapath.nodeDiagnostics) {
      const { problems } = await diagnose(net);
      if (problems.length) {
        return { ready: false, detail: `the node network is broken: ${problems.join('; ')}${setupError ? `; setting it up failed: ${setupError}` : ''}` };
      }
    }
    return { ready: true };
  };
  exportReadiness(metrics, readiness);
  const health = await startHealthServer(config.metricsAddress, metrics, { live: () => !closing, ready: readiness });
  const addr = health.address() as AddressInfo;

  return {
    config,
    addresses,
    handler,
    metrics,
    healthAddress: `${addr.address}:${addr.port}`,
    reconciled,
    readiness,
    delQueue,
    resyncNode: () => resyncNode(true),
    async close() {
      if (closing) return;
      closing = true;
      if (resyncTimer) clearInterval(resyncTimer);
      logger.info({ inFlight: cniSocket.inFlight() }, 'shutting down: finishing requests in flight');
      await Promise.all([
        cniSocket.close(),
        cnmServer?.shutdown ? cnmServer.shutdown() : cnmServer ? new Promise<void>((r) => cnmServer!.close(() => r())) : Promise.resolve(),
      ]);
      await delQueue.stop();
      await addresses.flush();
      await writer.flush().catch((err: Error) => logger.warn({ err: err.message }, 'final spec write failed'));
      await source.stop();
      await store.unlock();
      await resyncing;
      await new Promise<void>((r) => health.close(() => r()));
      logger.info('stopped');
    },
  };
}
