import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { kubeconfigYaml, startKubeEmulator, type EmulatorOptions, type KubeEmulator } from '../../../hack/kube-emulator/index.js';
import type { KubeTarget } from '../kube/config.js';
import { kubeconfigTarget } from '../kube/kubeconfig.js';
import { REPO_ROOT } from './test-node.js';

/** A Kubernetes API emulator serving PodVNet's CRDs, for the agent's tests against a real API protocol. */
export async function kubeWithCrds(t: { teardown(fn: () => Promise<void>): void }, options: EmulatorOptions = {}): Promise<{ emu: KubeEmulator; kc: k8s.KubeConfig; co: k8s.CustomObjectsApi }> {
  const emu = await startKubeEmulator({ tls: true, ...options });
  t.teardown(() => emu.close());
  const kc = emu.kubeConfig();
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  for (const f of ['podvnet.io_nodeippools.yaml', 'podvnet.io_nodeipallocations.yaml']) {
    await ext.createCustomResourceDefinition({ body: YAML.parse(await readFile(path.join(REPO_ROOT, 'crds', f), 'utf8')) });
  }
  return { emu, kc, co: kc.makeApiClient(k8s.CustomObjectsApi) };
}

/** The agent's own client's target for the emulator, as the admin or as the user of `token`. */
export function emulatorTarget(emu: Pick<KubeEmulator, 'url' | 'token' | 'caPem'>, token = emu.token): KubeTarget {
  return kubeconfigTarget(kubeconfigYaml(emu.url, token, emu.caPem), 'for the emulator', '.');
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

/** An API object as the client returns it: its shape is what the test's assertions check. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ApiObject = Record<string, any>;

/** The API group and version of PodVNet's resources, as the client's custom-object calls take them. */
export const PODVNET_API = { group: 'podvnet.io', version: 'v1alpha1' };
const POD_SUBNET_ID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods';

/** The emulator with the CRDs, and a kubeconfig file for it in `dir` (the agent's --kubeconfig). */
export async function kubeForAgent(t: { teardown(fn: () => Promise<void>): void }, dir: string): Promise<{ emu: KubeEmulator; co: k8s.CustomObjectsApi; kubeconfig: string }> {
  const { emu, co } = await kubeWithCrds(t);
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeFile(kubeconfig, await readFile(emu.kubeconfigPath, 'utf8'));
  return { emu, co, kubeconfig };
}

/** Creates a NodeIPPool selecting every node, over the pods subnet, with these settings. */
export async function createPool(
  co: k8s.CustomObjectsApi,
  name: string,
  spec: { ipsPerNode: { min: number; max: number }; scaling: Record<string, number>; snat: { enabled: boolean; excludeCIDRs: string[] }; allocation?: 'Block' },
): Promise<void> {
  await co.createClusterCustomObject({
    ...PODVNET_API,
    plural: 'nodeippools',
    body: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name }, spec: { nodeSelector: {}, subnetID: POD_SUBNET_ID, ...spec } },
  });
}

/** One node's NodeIPAllocation in the emulator: create it for a pool, read it, replace its status. */
export function nodeRecord(co: k8s.CustomObjectsApi, name: string) {
  const get = async () => (await co.getClusterCustomObject({ ...PODVNET_API, plural: 'nodeipallocations', name })) as ApiObject;
  return {
    create: async (poolName: string) =>
      (await co.createClusterCustomObject({ ...PODVNET_API, plural: 'nodeipallocations', body: { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name }, spec: { poolName } } })) as ApiObject,
    get,
    /** Replaces the status (what the controller does), keeping the rest of the record as it is now. */
    setStatus: async (status: Record<string, unknown>) => {
      await co.replaceClusterCustomObjectStatus({ ...PODVNET_API, plural: 'nodeipallocations', name, body: { ...(await get()), status } });
    },
  };
}
