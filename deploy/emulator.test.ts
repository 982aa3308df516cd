import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { startKubeEmulator, type KubeEmulator } from '../hack/kube-emulator/index.js';
import { kubectl } from './testing/kubectl.js';
import { build, OVERLAYS, type K8sObject } from './testing/manifests.js';

/**
 * Every manifest, validated by an API server: the CRDs load into the Kubernetes API emulator, and each
 * overlay passes `kubectl apply --server-side --dry-run=server` (schema, CEL rules, RBAC and admission
 * object validation on the server side). Then the GitOps claim itself: after the controller and the
 * agent have written what they write, Git's manifests still apply without conflict and `kubectl diff`
 * shows nothing, i.e. Argo CD would report no drift.
 */

const toYAML = (objs: K8sObject[]) => objs.map((o) => stringify(o)).join('---\n');
const ARGO = 'argocd-controller';

async function emulator(t: ExecutionContext): Promise<{ emu: KubeEmulator; k: (args: string[], stdin?: string) => ReturnType<typeof kubectl> }> {
  const emu = await startKubeEmulator();
  t.teardown(() => emu.close());
  return { emu, k: (args, stdin) => kubectl(emu.kubeconfigPath, args, stdin) };
}

/** What Argo CD's first sync waves leave behind: the CRDs and the namespace, really applied. */
async function bootstrap(t: ExecutionContext, k: (args: string[], stdin?: string) => ReturnType<typeof kubectl>, objs: K8sObject[]) {
  const first = objs.filter((o) => o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace');
  const r = await k(['apply', '--server-side', `--field-manager=${ARGO}`, '-f', '-'], toYAML(first));
  t.is(r.code, 0, r.stderr);
  for (const crd of first.filter((o) => o.kind === 'CustomResourceDefinition')) {
    const w = await k(['wait', '--for=condition=Established', '--timeout=10s', `crd/${crd.metadata.name}`]);
    t.is(w.code, 0, w.stderr);
  }
}

for (const dir of [...OVERLAYS, 'deploy/base', 'deploy/examples/nodeippools']) {
  test(`${dir}: kubectl apply --server-side --dry-run=server accepts every object`, async (t) => {
    const { k } = await emulator(t);
    const objs = dir === 'deploy/examples/nodeippools' ? [...build('deploy/base'), ...build(dir)] : build(dir);
    await bootstrap(t, k, objs);
    const r = await k(['apply', '--server-side', '--dry-run=server', `--field-manager=${ARGO}`, '-f', '-'], toYAML(objs));
    t.is(r.code, 0, r.stderr);
    const applied = r.stdout.split('\n').filter((l) => l.endsWith('(server dry run)'));
    t.is(applied.length, objs.length, r.stdout);
  });
}

test('the argocd-cm health-check ConfigMap passes a server-side dry run in the argocd namespace', async (t) => {
  const { k } = await emulator(t);
  let r = await k(['create', 'namespace', 'argocd']);
  t.is(r.code, 0, r.stderr);
  r = await k(['apply', '--server-side', '--dry-run=server', '--field-manager=podvnet', '-f', '-'], toYAML(build('deploy/argocd/argocd-cm')));
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /configmap\/argocd-cm serverside-applied \(server dry run\)/);
});

test('the CRDs load and are served under podvnet.io', async (t) => {
  const { k } = await emulator(t);
  await bootstrap(t, k, build('deploy/base'));
  const r = await k(['api-resources', '--api-group=podvnet.io', '-o', 'name']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').sort(), ['nodeipallocations.podvnet.io', 'nodeippools.podvnet.io']);
});

test('the server rejects a pool the CRD rules forbid (so the dry run above really validates)', async (t) => {
  const { k } = await emulator(t);
  const objs = build('deploy/overlays/dev');
  await bootstrap(t, k, objs);
  const pool = structuredClone(objs.find((o) => o.kind === 'NodeIPPool')!);
  pool.spec.scaling.batchSize = pool.spec.ipsPerNode.max + 1;
  const r = await k(['apply', '--server-side', '--dry-run=server', `--field-manager=${ARGO}`, '-f', '-'], toYAML([pool]));
  t.not(r.code, 0);
  t.regex(r.stderr, /batchSize must not exceed ipsPerNode.max/);
});

test('what the controller and the agent write is not drift: Git re-applies cleanly and kubectl diff is empty', async (t) => {
  const { k } = await emulator(t);
  const objs = build('deploy/overlays/dev');
  await bootstrap(t, k, objs);
  const gitYAML = toYAML(objs);
  let r = await k(['apply', '--server-side', `--field-manager=${ARGO}`, '-f', '-'], gitYAML);
  t.is(r.code, 0, r.stderr);

  const pool = JSON.parse((await k(['get', 'nodeippool', 'general', '-o', 'json'])).stdout);
  // The controller: its finalizer on the pool, the pool's status, and the per-node record with its status.
  r = await k(['apply', '--server-side', '--field-manager=podvnet-controller', '-f', '-'], stringify({
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'general', finalizers: ['podvnet.io/release-ip-configs'] },
  }));
  t.is(r.code, 0, r.stderr);
  r = await k(['patch', 'nodeippool', 'general', '--subresource=status', '--type=merge', '--field-manager=podvnet-controller', '-p', JSON.stringify({
    status: { observedGeneration: pool.metadata.generation, nodes: 1, allocatedIPs: 16, usedIPs: 3,
      conditions: [{ type: 'Ready', status: 'True', reason: 'AllNodesReady', message: '', lastTransitionTime: '2026-11-24T04:00:00Z' }] },
  })]);
  t.is(r.code, 0, r.stderr);
  r = await k(['apply', '--server-side', '--field-manager=podvnet-controller', '-f', '-'], stringify({
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation',
    metadata: { name: 'node-a', labels: { 'podvnet.io/pool': 'general' }, finalizers: ['podvnet.io/release-ip-configs'],
      ownerReferences: [{ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', name: 'general', uid: pool.metadata.uid, controller: true, blockOwnerDeletion: true }] },
    spec: { poolName: 'general' },
  }));
  t.is(r.code, 0, r.stderr);
  // The agent: demand and released IPs of its own record.
  r = await k(['apply', '--server-side', '--field-manager=podvnet-agent', '-f', '-'], stringify({
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name: 'node-a' },
    spec: { demand: { usedIPs: 3, pendingIPs: 0 }, releasedIPs: ['10.1.0.9'] },
  }));
  t.is(r.code, 0, r.stderr);

  // Argo CD's view: Git against the live cluster.
  r = await k(['diff', '--server-side', `--field-manager=${ARGO}`, '-f', '-'], gitYAML);
  t.is(r.code, 0, `drift:\n${r.stdout}${r.stderr}`);
  r = await k(['apply', '--server-side', `--field-manager=${ARGO}`, '-f', '-'], gitYAML);
  t.is(r.code, 0, `Git conflicts with a machine-written field:\n${r.stderr}`);
  const after = JSON.parse((await k(['get', 'nodeippool', 'general', '-o', 'json', '--show-managed-fields'])).stdout);
  t.deepEqual(after.metadata.finalizers, ['podvnet.io/release-ip-configs']);
  t.is(after.status.allocatedIPs, 16);
  const rec = JSON.parse((await k(['get', 'nodeipallocation', 'node-a', '-o', 'json'])).stdout);
  t.deepEqual(rec.spec.releasedIPs, ['10.1.0.9']);
  const managers = new Set((after.metadata.managedFields as Array<{ manager: string }>).map((m) => m.manager));
  t.deepEqual([...managers].sort(), [ARGO, 'podvnet-controller']);

  // Control: a machine writing a field Git owns IS drift, and the diff shows it.
  r = await k(['apply', '--server-side', '--force-conflicts', '--field-manager=podvnet-agent', '-f', '-'], stringify({
    apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'general' }, spec: { scaling: { batchSize: 8 } },
  }));
  t.is(r.code, 0, r.stderr);
  // (Argo CD syncs with force, so the diff is taken as a forced apply would leave the object.)
  r = await k(['diff', '--server-side', '--force-conflicts', `--field-manager=${ARGO}`, '-f', '-'], gitYAML);
  t.is(r.code, 1, `a changed Git-owned field must show up as a diff: ${r.stderr}`);
  t.regex(r.stdout, /batchSize/);
});
