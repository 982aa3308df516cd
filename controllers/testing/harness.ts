import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { parseAllDocuments } from 'yaml';
import { AzureEmulator, EmulatorCredential, type EmulatorConfigPatch, type ScenarioInput, type ScenarioNode } from '../../hack/azure-emulator/index.js';
import { startKubeEmulator, type KubeEmulator } from '../../hack/kube-emulator/index.js';
import { AGENT_FIELD_MANAGER, API_GROUP_VERSION, CONTROLLER_FIELD_MANAGER, type NodeIPAllocation, type NodeIPPool } from '../../crds/api/index.js';
import { ArmAdapter, armClientFactory } from '../azure.js';
import { Controller, type ControllerOptions } from '../controller.js';
import { KubeClient, PATHS, isNotFound } from '../kube.js';
import { ArmLimiter, ARM_READ_BUDGET, ARM_WRITE_BUDGET, type BucketLimits } from '../limiter.js';
import { azureCallObserver, createMetrics, type Metrics } from '../metrics.js';

/**
 * Both emulators, the CRDs, Nodes matching the Azure scenario's machines, and the real controller wired
 * to them: what the integration tests and the benchmark start from. Also plays the node agent's part
 * (writing demand and released IPs) so tests can drive the handshake.
 */

export interface WorldOptions {
  scenario: ScenarioInput;
  azureConfig?: EmulatorConfigPatch;
  controller?: Partial<ControllerOptions>;
  budget?: { writes?: BucketLimits; reads?: BucketLimits; concurrency?: number };
  nodeLabels?: (n: ScenarioNode, i: number) => Record<string, string>;
  /** Start the controller right away (default true). */
  startController?: boolean;
  log?: Logger;
  pollIntervalMs?: number;
}

export interface World {
  azure: AzureEmulator;
  kube: KubeEmulator;
  /** The admin (for setting up and inspecting); the controller itself runs as its service account with deploy/base's grants. */
  client: KubeClient;
  nodes: ScenarioNode[];
  subnets: Record<string, string>;
  metrics: Metrics;
  limiter: ArmLimiter;
  controller: Controller;
  log: Logger;
  startController(): Promise<void>;
  /** Stops the controller (as a crash or a rollout would) and starts a fresh one on the same state. */
  restartController(): Promise<void>;
  createPool(name: string, spec: Record<string, unknown>): Promise<void>;
  deletePool(name: string): Promise<void>;
  record(name: string): Promise<NodeIPAllocation | undefined>;
  pool(name: string): Promise<NodeIPPool | undefined>;
  setDemand(node: string, usedIPs: number, pendingIPs?: number): Promise<void>;
  release(node: string, ips: string[]): Promise<void>;
  /** Block mode: the agent's spec.releasedBlocks. */
  releaseBlocks(node: string, blocks: string[]): Promise<void>;
  /** Our ip-configs on the node's NIC, as Azure has them. */
  nicIPs(node: string): string[];
  close(): Promise<void>;
}

const crdDir = fileURLToPath(new URL('../../crds/', import.meta.url));

export async function applyCRDs(client: KubeClient): Promise<void> {
  for (const file of ['podvnet.io_nodeippools.yaml', 'podvnet.io_nodeipallocations.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(crdDir + file, 'utf8'))) {
      await client.create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', doc.toJS());
    }
  }
}

const RBAC_PATHS: Record<string, string> = {
  ClusterRole: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  Role: '/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles',
  RoleBinding: '/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings',
};

/**
 * The controller's grants exactly as deploy/base ships them (its ClusterRole, and the Role for events in
 * `default`), so every integration test runs the controller under RBAC as its own service account: a
 * request the deployed roles do not allow fails the test that makes it (and shows in `kube.denials`).
 */
export async function applyControllerRBAC(client: KubeClient): Promise<void> {
  for (const file of ['cluster/controller-rbac.yaml', 'cluster/controller-events-rbac.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(fileURLToPath(new URL(`../../deploy/base/${file}`, import.meta.url)), 'utf8'))) {
      const obj = doc.toJS();
      const path = RBAC_PATHS[obj.kind];
      if (!path) throw new Error(`unexpected ${obj.kind} in deploy/base/${file}`);
      await client.create(path.replace('{ns}', obj.metadata.namespace ?? 'default'), obj);
    }
  }
}

/** The identity the controller runs as in deploy/base. */
export const CONTROLLER_SERVICE_ACCOUNT = { namespace: 'podvnet-system', name: 'podvnet-controller' } as const;

/**
 * Polls `probe` until it says done, and returns what it said: `true`, or an object (a record, a pool...);
 * `false`, `undefined` and `null` mean not yet. A number or a string is refused (is `0` done? `''`?): a
 * probe like `a.length && b.length` would pass while both are empty. The types refuse it, and so does the
 * run time for a probe typed loosely. The deadline is generous on purpose (a loaded 2-core CI machine runs
 * many emulators at once): a passing test never waits for it, a failing one says what it waited for and
 * the probe's last error.
 */
/** An object that is not a promise (a promise would always look done). */
type NotAPromise = object & { then?: never };

export function waitFor(what: string, probe: () => Promise<boolean | undefined> | boolean | undefined, timeoutMs?: number, everyMs?: number): Promise<true>;
export function waitFor<T extends NotAPromise>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs?: number, everyMs?: number): Promise<T>;
export async function waitFor(what: string, probe: () => unknown, timeoutMs = 30_000, everyMs = 25): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    let v: unknown;
    try {
      v = await probe();
    } catch (e) {
      last = e;
    }
    if (v === true || (typeof v === 'object' && v !== null)) return v;
    if (v !== false && v !== undefined && v !== null) {
      throw new TypeError(`waiting for ${what}: the probe returned ${typeof v} ${JSON.stringify(v)}; return a boolean (or an object) so that done is unambiguous`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until `count()` has not changed for `quietMs` (work in flight has settled), and returns the
 * settled value. Fails if it keeps changing until the deadline: a hot loop does not pass for quiet.
 */
export async function waitForQuiet(what: string, count: () => number, quietMs = 500, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = count();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 25));
    const now = count();
    if (now !== last) { last = now; since = Date.now(); }
    else if (Date.now() - since >= quietMs) return now;
    if (Date.now() > deadline) throw new Error(`${what} never settled for ${quietMs} ms within ${timeoutMs} ms (now ${now})`);
  }
}

/** A Node per scenario machine, with its providerID and the test's labels. */
async function createNodes(client: KubeClient, nodes: readonly ScenarioNode[], labels: WorldOptions['nodeLabels']): Promise<void> {
  for (const [i, n] of nodes.entries()) {
    await client.create(PATHS.nodes, {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: n.nodeName, labels: { 'kubernetes.io/hostname': n.nodeName, ...(labels?.(n, i) ?? {}) } },
      spec: { providerID: n.providerID },
    });
  }
}

/** The controller's ARM adapter on the Azure emulator, behind the test's budget, counted in `metrics` as main.ts counts. */
function emulatorAdapter(azure: AzureEmulator, metrics: Metrics, o: WorldOptions): { limiter: ArmLimiter; adapter: ArmAdapter } {
  const limiter = new ArmLimiter({
    concurrency: o.budget?.concurrency ?? 64,
    writes: o.budget?.writes ?? ARM_WRITE_BUDGET,
    reads: o.budget?.reads ?? ARM_READ_BUDGET,
  });
  const adapter = new ArmAdapter(armClientFactory(new EmulatorCredential(), { endpoint: azure.url, extra: { tlsOptions: { ca: azure.ca } } }), limiter, azureCallObserver(metrics), o.pollIntervalMs ?? 10);
  return { limiter, adapter };
}

export async function startWorld(o: WorldOptions): Promise<World> {
  const log = o.log ?? pino({ level: process.env.PODVNET_TEST_LOG ?? 'silent' });
  const azure = await AzureEmulator.start({ config: { asyncDurationMs: 5, ...(o.azureConfig ?? {}) } });
  const kube = await startKubeEmulator();
  // `client` is the admin (tests set up and inspect with it); the controller gets its own service account.
  const client = new KubeClient(kube.kubeConfig(), 128, CONTROLLER_FIELD_MANAGER);
  const controllerClient = new KubeClient(kube.kubeConfig(kube.serviceAccountToken(CONTROLLER_SERVICE_ACCOUNT.namespace, CONTROLLER_SERVICE_ACCOUNT.name)), 128, CONTROLLER_FIELD_MANAGER);
  const agent = new KubeClient(kube.kubeConfig(), 16, AGENT_FIELD_MANAGER);
  await applyCRDs(client);
  await applyControllerRBAC(client);
  const sc = azure.loadScenario(o.scenario);
  await createNodes(client, sc.nodes, o.nodeLabels);
  const metrics = createMetrics();
  const { limiter, adapter } = emulatorAdapter(azure, metrics, o);
  const makeController = () => new Controller(controllerClient, adapter, log, metrics, { retryBaseMs: 50, subnetFullBackoffMs: 300, poolStatusDelayMs: 100, ...(o.controller ?? {}) });

  const poolPath = (n: string) => `${PATHS.pools}/${n}`;
  const recordPath = (n: string) => `${PATHS.records}/${n}`;
  const getOrUndefined = async <T>(path: string): Promise<T | undefined> => {
    try { return await client.get<T>(path); } catch (e) { if (isNotFound(e)) return undefined; throw e; }
  };
  let running = false;
  const world: World = {
    azure, kube, client, nodes: sc.nodes, subnets: sc.subnets, metrics, limiter, log,
    controller: makeController(),
    async startController() {
      await world.controller.start();
      running = true;
    },
    async restartController() {
      if (running) await world.controller.stop();
      world.controller = makeController();
      await world.controller.start();
      running = true;
    },
    async createPool(name, spec) {
      await client.create(PATHS.pools, { apiVersion: API_GROUP_VERSION, kind: 'NodeIPPool', metadata: { name }, spec });
    },
    async deletePool(name) { await client.delete(poolPath(name)); },
    record: (name) => getOrUndefined<NodeIPAllocation>(recordPath(name)),
    pool: (name) => getOrUndefined<NodeIPPool>(poolPath(name)),
    async setDemand(node, usedIPs, pendingIPs = 0) {
      await agent.mergePatch(recordPath(node), { spec: { demand: { usedIPs, pendingIPs } } });
    },
    async release(node, ips) {
      await agent.mergePatch(recordPath(node), { spec: { releasedIPs: ips } });
    },
    async releaseBlocks(node, blocks) {
      await agent.mergePatch(recordPath(node), { spec: { releasedBlocks: blocks } });
    },
    nicIPs(node) {
      const n = sc.nodes.find((x) => x.nodeName === node);
      if (!n) throw new Error(`no node ${node}`);
      const nic = azure.state.nics.get(n.nicId.toLowerCase());
      return (nic?.ipConfigs ?? []).filter((c) => c.name.startsWith('podvnet-')).map((c) => c.privateIPAddress);
    },
    async close() {
      if (running) await world.controller.stop();
      const denied = kube.denials.map((d) => d.message);
      await kube.close();
      await azure.close();
      // The controller retries a refused request quietly; a test must still fail when its grants fall short.
      if (denied.length) throw new Error(`the Kubernetes API emulator refused ${denied.length} request(s) of the controller (deploy/base RBAC): ${[...new Set(denied)].join('; ')}`);
    },
  };
  if (o.startController !== false) await world.startController();
  return world;
}
