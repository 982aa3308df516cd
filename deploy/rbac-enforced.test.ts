// Least privilege, proven against an API server that enforces RBAC: the whole of deploy/base (CRDs,
// service accounts, Roles, ClusterRoles, bindings, the admission policy) is applied to the Kubernetes
// API emulator, and each component runs with its own service account's token only:
//  (a) the real controller process (leader election, a pool reconcile that creates, patches and deletes
//      node records, pool and record status, finalizers, events) against the Azure emulator;
//  (b) the node agent's record client with a token bound to a pod on its node;
//  (c) the CNI installer's DaemonSet lookup;
// and the emulator's log of refused requests shows that none of them ever hit a 403, while (d) every
// request beyond the grants is refused.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { AzureEmulator } from '../hack/azure-emulator/index.js';
import { kubeconfigYaml, startKubeEmulator, type KubeEmulator } from '../hack/kube-emulator/index.js';
import { waitFor } from '../controllers/testing/harness.js';
import { KubeClient, PATHS, KubeError } from '../controllers/kube.js';
import { run } from '../controllers/main.js';
import { KubeRecordSource } from '../node-plugin/agent/record-source.js';
import { kubeconfigFileTarget } from '../node-plugin/agent/kube/kubeconfig.js';
import type { NodeIPAllocation } from '../crds/api/index.js';
import { daemonSetLookup } from './cni-install/kube.js';
import { kubectl } from './testing/kubectl.js';
import { build } from './testing/manifests.js';

const NS = 'podvnet-system';
const CONTROLLER = `system:serviceaccount:${NS}:podvnet-controller`;
const AGENT = `system:serviceaccount:${NS}:podvnet-node`;
const silent = pino({ level: 'silent' });

/** The status code of a KubeClient call that must fail (0 if it succeeded). */
async function refused(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
    return { status: 0, message: '' };
  } catch (e) {
    if (e instanceof KubeError) return { status: e.status, message: e.message };
    throw e;
  }
}

/** A token from the API's TokenRequest, optionally bound to a pod (whose node then appears in user extra). */
async function tokenFor(admin: KubeClient, sa: string, pod?: { name: string; uid: string }): Promise<string> {
  const spec = pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid } } : {};
  const tr = await admin.create<{ status: { token: string } }>(`/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec });
  return tr.status.token;
}

interface Cluster {
  kube: KubeEmulator;
  admin: KubeClient;
  azure: AzureEmulator;
  vms: Array<{ name: string; providerID: string }>;
  subnet: string;
  kubeconfigFor(token: string): string;
}

async function cluster(t: { teardown(fn: () => Promise<void> | void): void }, vmCount: number): Promise<Cluster> {
  const azure = await AzureEmulator.start({ scenario: { vms: [{ count: vmCount }] }, config: { asyncDurationMs: 5 } });
  const kube = await startKubeEmulator({ authorization: 'RBAC' });
  const dir = mkdtempSync(join(tmpdir(), 'rbac-enforced-'));
  t.teardown(async () => { await kube.close(); await azure.close(); rmSync(dir, { recursive: true, force: true }); });
  // everything deploy/base declares, as an admin would apply it (Argo CD, kubectl apply -k)
  const r = await kubectl(kube.kubeconfigPath, ['apply', '--server-side', '-f', '-'], build('deploy/base').map((o) => stringify(o)).join('---\n'));
  if (r.code !== 0) throw new Error(`apply deploy/base: ${r.stderr}`);
  await kubectl(kube.kubeconfigPath, ['wait', '--for=condition=Established', 'crd/nodeipallocations.podvnet.io', 'crd/nodeippools.podvnet.io']);
  const admin = new KubeClient(kube.kubeConfig());
  const dump = azure.dump() as { virtualMachines: Array<{ id: string; properties: { osProfile: { computerName: string } } }>; subnets: Array<{ id: string }> };
  const vms = dump.virtualMachines.map((vm) => ({ name: vm.properties.osProfile.computerName, providerID: `azure://${vm.id}` }));
  for (const vm of vms) await admin.create(PATHS.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name: vm.name }, spec: { providerID: vm.providerID } });
  let n = 0;
  return {
    kube, admin, azure, vms, subnet: dump.subnets[0]!.id,
    kubeconfigFor(token) {
      const file = join(dir, `kubeconfig-${n++}`);
      writeFileSync(file, kubeconfigYaml(kube.url, token, kube.caPem), { mode: 0o600 });
      return file;
    },
  };
}

const denialsOf = (kube: KubeEmulator, user: string) => kube.denials.filter((d) => d.user === user).map((d) => d.message);

test('(a) the controller, with only its own service account: leader election, a pool served, records created, patched and deleted, events; never refused', async (t) => {
  const c = await cluster(t, 2);
  const { kube, admin } = c;
  const token = await tokenFor(admin, 'podvnet-controller');
  // a node the pool selects whose providerID names no Azure VM: the controller must record a Warning event
  await admin.create(PATHS.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'not-azure', labels: { pool: 'p' } }, spec: { providerID: 'aws:///us-east-1a/i-0123' } });
  for (const vm of c.vms) await admin.mergePatch(`${PATHS.nodes}/${vm.name}`, { metadata: { labels: { pool: 'p' } } });

  const ctl = await run([
    '--kubeconfig', c.kubeconfigFor(token), '--azure-endpoint', c.azure.url, '--azure-ca-file', c.azure.caPath, '--credential', 'emulator',
    '--http-port', '0', '--http-host', '127.0.0.1', '--leader-elect', 'true', '--lease-namespace', NS, '--lease-name', 'podvnet-controller',
    '--event-namespace', 'default', '--identity', 'ctl-rbac', '--poll-interval-ms', '10', '--resync-seconds', '10',
  ], {}, silent);
  let stopped = false;
  t.teardown(async () => { if (!stopped) await ctl.stop(); });
  await waitFor('leadership', () => ctl.isLeader());
  const leasePath = `${PATHS.leases(NS)}/podvnet-controller`;
  t.is((await admin.get<{ spec: { holderIdentity: string } }>(leasePath)).spec.holderIdentity, 'ctl-rbac', 'the Lease was created in the controller\'s namespace');
  await waitFor('ready', async () => (await fetch(`${ctl.url}/readyz`)).status === 200);

  await admin.create(PATHS.pools, { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'p' }, spec: { nodeSelector: { matchLabels: { pool: 'p' } }, subnetID: c.subnet, scaling: { batchSize: 4 } } });
  await waitFor('pool served (its status patched)', async () => (await admin.get<{ status?: { allocatedIPs?: number } }>(`${PATHS.pools}/p`)).status?.allocatedIPs === 8);
  for (const vm of c.vms) {
    const rec = await admin.get<NodeIPAllocation>(`${PATHS.records}/${vm.name}`);
    t.is(rec.status?.ips?.length, 4, `${vm.name}: record created and its status patched`);
    t.deepEqual(rec.metadata.finalizers, ['podvnet.io/release-ip-configs'], 'finalizer merge-patched');
  }
  const pool = await admin.get<{ metadata: { finalizers?: string[] } }>(`${PATHS.pools}/p`);
  t.true((pool.metadata.finalizers ?? []).length > 0, 'the pool finalizer was patched in');
  const events = await waitFor('a Warning event in default', async () => {
    const l = await admin.get<{ items: Array<{ reason: string; regarding?: { name?: string } }> }>(PATHS.events('default'));
    return l.items.find((e) => e.reason === 'InvalidProviderID');
  });
  t.is(events.regarding?.name, 'not-azure');

  // a node leaves the pool: its record is released and deleted
  const gone = c.vms[1]!.name;
  await admin.mergePatch(`${PATHS.nodes}/${gone}`, { metadata: { labels: { pool: null } } });
  await waitFor('record of the deselected node deleted', async () => (await refused(admin.get(`${PATHS.records}/${gone}`))).status === 404);
  t.deepEqual(c.azure.state.nics.size > 0, true);

  // the pool goes: every record is released and deleted, then the pool's finalizer is removed
  await admin.delete(`${PATHS.pools}/p`);
  await waitFor('pool deleted after its records', async () => (await refused(admin.get(`${PATHS.pools}/p`))).status === 404, 20_000);
  t.is((await admin.get<{ items: unknown[] }>(PATHS.records)).items.length, 0);

  await ctl.stop();
  stopped = true;
  t.is(await ctl.done, 0);
  t.is((await admin.get<{ spec: { holderIdentity: string } }>(leasePath)).spec.holderIdentity, '', 'the lease was handed back (update)');
  t.deepEqual(denialsOf(kube, CONTROLLER), [], 'the controller never needed more than its Roles grant');
});

test('(b) the node agent\'s record client with a token bound to a pod on its node, (c) the CNI installer\'s lookup; (d) everything else is refused', async (t) => {
  const c = await cluster(t, 1);
  const { kube, admin } = c;
  const node = c.vms[0]!.name;
  await admin.create(PATHS.pools, { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'p' }, spec: { nodeSelector: {}, subnetID: c.subnet, scaling: { batchSize: 4 } } });
  const record = (name: string, pool = 'p') => ({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name }, spec: { poolName: pool } });
  await admin.create(PATHS.records, record(node));
  await admin.create(PATHS.records, record('other-node'));
  // the agent's pod on the node, and the token the kubelet would mount into it
  const pod = await admin.create<{ metadata: { name: string; uid: string } }>(`/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'podvnet-node-abcde' },
    spec: { nodeName: node, serviceAccountName: 'podvnet-node', containers: [{ name: 'agent', image: 'podvnet' }] },
  });
  const token = await tokenFor(admin, 'podvnet-node', pod.metadata);
  const kc = (await import('@kubernetes/client-node')).KubeConfig;
  const agentKc = new kc();
  agentKc.loadFromFile(c.kubeconfigFor(token));

  // (b) read its record and its pool, write its demand
  const source = new KubeRecordSource(kubeconfigFileTarget(c.kubeconfigFor(token)), node, silent);
  const seen: Array<{ record?: NodeIPAllocation; pool?: unknown }> = [];
  await source.start((rec, pool) => seen.push({ record: rec, pool }));
  t.teardown(() => source.stop());
  const first = await waitFor('own record with its pool\'s settings', () => seen.find((s) => s.record && s.pool));
  t.is(first.record?.metadata.name, node);
  await source.writeSpec({ demand: { usedIPs: 3, pendingIPs: 1 }, releasedIPs: [] });
  t.deepEqual((await admin.get<NodeIPAllocation>(`${PATHS.records}/${node}`)).spec.demand, { usedIPs: 3, pendingIPs: 1 });
  await waitFor('the watch delivers the agent\'s own write', () => seen.some((s) => s.record?.spec.demand?.usedIPs === 3));

  // (c) the CNI installer asks whether its DaemonSet still exists, with the same service account
  const target = { server: kube.url, ca: kube.caPem, token: () => token };
  t.like(await daemonSetLookup(target, NS, 'podvnet-node')(), { kind: 'found', deleting: false });
  t.deepEqual(await daemonSetLookup(target, NS, 'kube-proxy')(), { kind: 'error', message: 'HTTP 403' }, 'only its own DaemonSet, by name');
  t.deepEqual(denialsOf(kube, AGENT).length, 1);
  t.is(denialsOf(kube, AGENT)[0], `daemonsets.apps "kube-proxy" is forbidden: User "${AGENT}" cannot get resource "daemonsets" in API group "apps" in the namespace "${NS}"`);

  // (d) beyond the grants: the agent
  const agent = new KubeClient(agentKc);
  const recs = PATHS.records;
  const cases: Array<[string, Promise<unknown>, number, RegExp?]> = [
    ['delete its record', agent.delete(`${recs}/${node}`), 403, new RegExp(`nodeipallocations.podvnet.io "${node}" is forbidden: User "${AGENT}" cannot delete resource "nodeipallocations" in API group "podvnet.io" at the cluster scope`)],
    ['create a record', agent.create(recs, record('new-node')), 403, /cannot create resource "nodeipallocations"/],
    ['update (PUT) its record', agent.update(`${recs}/${node}`, await admin.get(`${recs}/${node}`)), 403, /cannot update resource "nodeipallocations"/],
    ['patch its record status', agent.mergePatch(`${recs}/${node}/status`, { status: { ips: [] } }), 403, /cannot patch resource "nodeipallocations\/status"/],
    ['patch another node\'s record (the admission policy)', agent.mergePatch(`${recs}/other-node`, { spec: { demand: { usedIPs: 1, pendingIPs: 0 } } }), 403, /ValidatingAdmissionPolicy/],
    ['list pools', agent.get(PATHS.pools), 403, /cannot list resource "nodeippools"/],
    ['patch a pool', agent.mergePatch(`${PATHS.pools}/p`, { spec: { scaling: { batchSize: 1 } } }), 403, /cannot patch resource "nodeippools"/],
    ['list secrets', agent.get(`/api/v1/namespaces/${NS}/secrets`), 403, new RegExp(`secrets is forbidden: User "${AGENT}" cannot list resource "secrets" in API group "" in the namespace "${NS}"`)],
    ['get nodes', agent.get(`${PATHS.nodes}/${node}`), 403, /cannot get resource "nodes"/],
    ['list pods', agent.get('/api/v1/pods'), 403, /cannot list resource "pods" in API group "" at the cluster scope/],
    ['delete its DaemonSet', agent.delete(`/apis/apps/v1/namespaces/${NS}/daemonsets/podvnet-node`), 403, /cannot delete resource "daemonsets"/],
    ['create a token for the controller', agent.create(`/api/v1/namespaces/${NS}/serviceaccounts/podvnet-controller/token`, { spec: {} }), 403, /cannot create resource "serviceaccounts\/token"/],
    ['create a ClusterRoleBinding', agent.create('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {}), 403],
  ];
  for (const [what, p, status, message] of cases) {
    const r = await refused(p);
    t.is(r.status, status, `agent: ${what}`);
    if (message) t.regex(r.message, message, what);
  }

  // (d) beyond the grants: the controller
  const ctlKc = new kc();
  ctlKc.loadFromFile(c.kubeconfigFor(await tokenFor(admin, 'podvnet-controller')));
  const ctl = new KubeClient(ctlKc);
  const ctlCases: Array<[string, Promise<unknown>, RegExp]> = [
    ['read secrets', ctl.get('/api/v1/namespaces/kube-system/secrets'), new RegExp(`secrets is forbidden: User "${CONTROLLER}" cannot list resource "secrets" in API group "" in the namespace "kube-system"`)],
    ['patch a node', ctl.mergePatch(`${PATHS.nodes}/${node}`, { metadata: { labels: { a: 'b' } } }), new RegExp(`nodes "${node}" is forbidden: User "${CONTROLLER}" cannot patch resource "nodes" in API group "" at the cluster scope`)],
    ['get a node (it lists and watches only)', ctl.get(`${PATHS.nodes}/${node}`), /cannot get resource "nodes"/],
    ['update a record', ctl.update(`${recs}/${node}`, await admin.get(`${recs}/${node}`)), /cannot update resource "nodeipallocations"/],
    ['delete a pool', ctl.delete(`${PATHS.pools}/p`), /cannot delete resource "nodeippools"/],
    ['create a pool', ctl.create(PATHS.pools, { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'x' }, spec: {} }), /cannot create resource "nodeippools"/],
    ['events outside default', ctl.create(PATHS.events(NS), { metadata: { name: 'e' } }), new RegExp(`cannot create resource "events" in API group "events.k8s.io" in the namespace "${NS}"`)],
    ['core events', ctl.create('/api/v1/namespaces/default/events', { metadata: { name: 'e' } }), /cannot create resource "events" in API group "" in the namespace "default"/],
    ['someone else\'s Lease', ctl.get(`${PATHS.leases(NS)}/other-controller`), /leases.coordination.k8s.io "other-controller" is forbidden/],
    ['its Lease in another namespace', ctl.get(`${PATHS.leases('kube-system')}/podvnet-controller`), /in the namespace "kube-system"/],
    ['delete its Lease', ctl.delete(`${PATHS.leases(NS)}/podvnet-controller`), /cannot delete resource "leases"/],
    ['list pods', ctl.get('/api/v1/pods'), /cannot list resource "pods"/],
  ];
  for (const [what, p, message] of ctlCases) {
    const r = await refused(p);
    t.is(r.status, 403, `controller: ${what}`);
    t.regex(r.message, message, what);
  }

  // kubectl agrees (access reviews evaluate the same authorizer)
  const agentKubeconfig = c.kubeconfigFor(token);
  const can = async (...args: string[]) => (await kubectl(agentKubeconfig, ['auth', 'can-i', ...args])).stdout.trim();
  t.is(await can('patch', 'nodeipallocations.podvnet.io'), 'yes');
  t.is(await can('delete', 'nodeipallocations.podvnet.io'), 'no');
  t.is(await can('get', 'nodeippools.podvnet.io/p'), 'yes');
  t.is(await can('get', 'daemonsets.apps/podvnet-node', '-n', NS), 'yes');
  t.is(await can('get', 'daemonsets.apps/other', '-n', NS), 'no');
  t.is(await can('list', 'secrets', '-n', NS), 'no');
});
