import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { startKubeEmulator, type KubeEmulator } from '../../hack/kube-emulator/index.js';
import { REPO_ROOT } from './testing.js';

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
