import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { Counter } from 'prom-client';
import * as datapathModule from '../datapath/index.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { AgentAddressService, type PodAddressService, type PoolSettings } from './address-service.js';
import { CniHandler, type Datapath } from './cni-handler.js';
import { listenCniSocket, type CniSocketServer } from './cni-socket.js';
import type { AgentConfig } from './config.js';
import { DelQueue } from './del-queue.js';
import { FileStore, type Store } from './ipam/store.js';
import { createMetrics, exportReadiness, startHealthServer, type AgentMetrics, type Readiness } from './metrics.js';
import { FileRecordSource } from './file-source.js';
import { NodeNetworkKeeper, ResyncLoop } from './node-network.js';
import { agentReadiness } from './readiness.js';
import { Shutdown, type CnmServer } from './shutdown.js';
import { StartupReconciliation } from './startup.js';
import { CoalescingWriter, writtenSpec, type RecordSource } from './sync.js';

/**
 * The node agent process: `startAgent` wires the store, the address service, the record source (API
 * server or file), the CNI socket, the CNM driver socket and the health/metrics endpoint. The parts with
 * a job of their own live beside it: keeping the node network in place and its periodic resync
 * (node-network.ts), start-up reconciliation (startup.ts), readiness (readiness.ts) and graceful shutdown
 * (shutdown.ts). Start with this file to see what runs and in which order.
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

export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<RunningAgent> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { component: 'podvnet-agent', node: config.nodeName } });
  const datapath = deps.datapath ?? datapathModule;
  const store = deps.store ?? new FileStore(config.stateDir);
  const state = await store.lock();

  const addresses = new AgentAddressService({
    store,
    node: { nodeName: config.nodeName, bridgeName: config.bridge, hostInterface: config.hostInterface, mtu: await hostMTU(config, datapath, logger), hostNetns: config.hostNetns },
    cooldownMs: config.cooldownMs,
    pendingWindowMs: config.pendingWindowMs,
    noFreeIPAdvice: config.standalone === 'off' ? undefined : (await import('./standalone.js')).standaloneNoFreeIPAdvice(config),
  });
  addresses.restore(state);
  // Created before the metrics: they read the node network's problems through it.
  const handler = new CniHandler({ addresses, datapath, logger, addWaitMs: config.addWaitMs });
  const network = new NodeNetworkKeeper({ addresses, handler, datapath, logger });
  const metrics = createMetrics(addresses, () => network.problems());
  logger.info({ allocations: state.allocations.length, released: state.released.length, stateDir: config.stateDir }, 'state loaded');

  const source = deps.source ?? (await openRecordSource(config, logger));
  const writer = specWriter(config, addresses, source, metrics, logger);
  addresses.onChange((change) => writer.poke(change));

  // DELs the CNI executable queued while no agent could take them: applied through the normal DEL path.
  const delQueue = new DelQueue({
    dir: config.delQueueDir ?? path.join(config.stateDir, 'del-queue'),
    apply: (env, stdin) => handler.handle(env, stdin),
    assignedAt: (containerId, ifName) => addresses.allocation({ containerId, ifName })?.assignedAt,
    logger,
  });
  await delQueue.prepare().catch((err: Error) => logger.warn({ err: err.message }, 'cannot create the DEL queue directory'));
  countQueuedDels(delQueue, metrics);

  const startup = new StartupReconciliation({ addresses, datapath, delQueue, logger });
  await source.start(followRecord(addresses, writer, () => startup.startOnce(() => network.ensure(false))));
  // Files that appear later (an executable that found the agent gone a moment ago) are applied as they come.
  delQueue.watch();
  void delQueue.applyAll();
  const resync = new ResyncLoop(config.resyncIntervalMs, () => network.ensure(true));
  resync.start();
  const cniSocket = await serveCni(config, handler, startup, metrics);
  logger.info({ socket: config.socket }, 'CNI socket listening');
  // The conflist goes in only once the socket answers, so the runtime never sees a network it cannot use.
  await installCniIfAsked(config, delQueue, logger);
  const cnmServer = await serveCnm(config, addresses, logger);

  const shutdown = new Shutdown(logger);
  const readiness = agentReadiness({ addresses, network, closing: () => shutdown.closing });
  exportReadiness(metrics, readiness);
  const health = await startHealthServer(config.metricsAddress, metrics, { live: () => !shutdown.closing, ready: readiness });
  const addr = health.address() as AddressInfo;
  const retiredVeths = { deleteNow: () => datapathModule.deleteRetiredVeths() };
  const parts = { resync, handler, cniSocket, cnmServer, delQueue, retiredVeths, addresses, writer, source, store, network, health };

  return {
    config,
    addresses,
    handler,
    metrics,
    healthAddress: `${addr.address}:${addr.port}`,
    reconciled: startup.done,
    readiness,
    delQueue,
    resyncNode: () => network.ensure(true),
    close: () => shutdown.close(parts),
  };
}

/** The MTU pods get: configured, else the host interface's, else 1500 (with a warning). */
async function hostMTU(config: AgentConfig, datapath: NonNullable<AgentDeps['datapath']>, logger: Logger): Promise<number> {
  if (config.mtu !== undefined) return config.mtu;
  try {
    return await (datapath.hostInterfaceMTU ?? datapathModule.hostInterfaceMTU)(config.hostInterface, config.hostNetns);
  } catch (err) {
    logger.warn({ err: (err as Error).message, hostInterface: config.hostInterface }, 'cannot read the host interface MTU; using 1500');
    return 1500;
  }
}

/** Where the node's record comes from: a file, standalone mode (IMDS or a managed file), or the API server. */
async function openRecordSource(config: AgentConfig, logger: Logger): Promise<RecordSource> {
  if (config.recordFile) return new FileRecordSource(config.recordFile, logger);
  if (config.standalone !== 'off') return (await import('./standalone.js')).standaloneSource(config, logger);
  // Loaded only when used (a file or standalone node needs no API server client).
  const [{ loadKubeTarget }, { KubeRecordSource }] = await Promise.all([import('./kube/config.js'), import('./record-source.js')]);
  return new KubeRecordSource(await loadKubeTarget(config.kubeconfig), config.nodeName, logger);
}

/** Writes spec.demand, spec.releasedIPs (and releasedBlocks) back to the record, coalesced. */
function specWriter(config: AgentConfig, addresses: AgentAddressService, source: RecordSource, metrics: AgentMetrics, logger: Logger): CoalescingWriter {
  return new CoalescingWriter({
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
}

/**
 * What happens when the record changes: the writer learns what the record already says (or starts over
 * when the record was recreated), the address service takes the new record, and `networkKnown` runs
 * (start-up reconciliation starts the first time the node network is known).
 */
function followRecord(addresses: AgentAddressService, writer: CoalescingWriter, networkKnown: () => void) {
  let previous: string | null | undefined; // the last record's uid; null: absent; undefined: nothing heard yet
  return (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined): void => {
    const uid = record ? record.metadata.uid ?? '' : null;
    const recreated = record !== undefined && previous !== undefined && uid !== previous;
    previous = uid;
    if (recreated) writer.reset(writtenSpec(record)); // before setRecord's change event pokes the writer
    else if (record) writer.observe(writtenSpec(record));
    addresses.setRecord(record, pool);
    networkKnown();
  };
}

function countQueuedDels(delQueue: DelQueue, metrics: AgentMetrics): void {
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
}

/** The CNI socket: each request waits for start-up reconciliation when it must, and is counted and timed. */
function serveCni(config: AgentConfig, handler: CniHandler, startup: StartupReconciliation, metrics: AgentMetrics): Promise<CniSocketServer> {
  return listenCniSocket(config.socket, async (env, stdin) => {
    const started = process.hrtime.bigint();
    const command = env.CNI_COMMAND ?? 'UNKNOWN';
    await startup.gate(command);
    const res = await handler.handle(env, stdin);
    const code = res.exitCode === 0 ? '0' : String((JSON.parse(res.stdout) as { code?: number }).code ?? 'unknown');
    metrics.cniRequests.inc({ command, code });
    metrics.cniDuration.observe({ command }, Number(process.hrtime.bigint() - started) / 1e9);
    return res;
  });
}

/** Copies the CNI executable and writes the conflist, where the agent is configured to (not in the DaemonSet). */
async function installCniIfAsked(config: AgentConfig, delQueue: DelQueue, logger: Logger): Promise<void> {
  if (!config.cniBinDir && !config.cniConfDir) return;
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

/** The Docker (CNM) driver's socket, when configured and the driver is present. */
async function serveCnm(config: AgentConfig, addresses: AgentAddressService, logger: Logger): Promise<CnmServer | undefined> {
  if (!config.cnmSocket) return undefined;
  const cnm = await loadCnm(logger);
  if (!cnm) return undefined;
  // The CNM driver keeps its own crash-safe state (networks, endpoints) beside the agent's.
  const server = cnm.createCnmServer({ addresses, datapath: datapathModule, logger, stateDir: path.join(config.stateDir, 'cnm') });
  await cnm.listenOnSocket(server, config.cnmSocket);
  logger.info({ socket: config.cnmSocket }, 'CNM driver listening');
  return server;
}
