import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { startKubeEmulator, type KubeEmulator } from '../../../hack/kube-emulator/index.js';
import { REPO_ROOT } from './test-node.js';

/** A Kubernetes API emulator serving PodVNet's CRDs, for the agent's tests against a real API protocol. */
export async function kubeWithCrds(t: { teardown(fn: () => Promise<void>): void }): Promise<{ emu: KubeEmulator; kc: k8s.KubeConfig; co: k8s.CustomObjectsApi }> {
  const emu = await startKubeEmulator({ tls: true });
  t.teardown(() => emu.close());
  const kc = emu.kubeConfig();
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  for (const f of ['podvnet.io_nodeippools.yaml', 'podvnet.io_nodeipallocations.yaml']) {
    await ext.createCustomResourceDefinition({ body: YAML.parse(await readFile(path.join(REPO_ROOT, 'crds', f), 'utf8')) });
  }
  return { emu, kc, co: kc.makeApiClient(k8s.CustomObjectsApi) };
}

/**
 * A KubeConfig for the node agent on `nodeName` as it runs in a cluster: service account
 * podvnet-system/podvnet-node with a token carrying the node claim, holding exactly the agent's grants
 * from deploy/base (ClusterRole podvnet-node and its binding, applied here) under the emulator's RBAC.
 * Requests beyond them get the API server's 403; `emu.denials` lists them.
 */
export async function agentKubeConfig(emu: KubeEmulator, nodeName: string): Promise<k8s.KubeConfig> {
  const rbac = emu.kubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
  const docs = YAML.parseAllDocuments(await readFile(path.join(REPO_ROOT, 'deploy/base/cluster/node-rbac.yaml'), 'utf8')).map((d) => d.toJSON());
  for (const d of docs) {
    if (d.kind === 'ClusterRole') await rbac.createClusterRole({ body: d }).catch((e: { code?: number }) => { if (e.code !== 409) throw e; });
    if (d.kind === 'ClusterRoleBinding') await rbac.createClusterRoleBinding({ body: d }).catch((e: { code?: number }) => { if (e.code !== 409) throw e; });
  }
  return emu.kubeConfig(emu.serviceAccountToken('podvnet-system', 'podvnet-node', { nodeName }));
}
