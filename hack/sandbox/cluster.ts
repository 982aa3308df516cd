import { spawn } from 'node:child_process';
import path from 'node:path';
import { stringify } from 'yaml';
import type { ScenarioNode } from '../azure-emulator/index.js';
import { API_GROUP_VERSION } from '../../crds/api/index.js';

/** The Kubernetes side of the sandbox as kubectl writes it: CRDs, Nodes, the NodeIPPool, deploy/base's access objects. */

/** What deploy/base declares about identities and their rights: applied so every component runs least-privileged. */
export const ACCESS_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
const NODE_SELECTOR_LABEL = 'podvnet.io/sandbox';

export type Kubectl = (args: string[], input?: string) => Promise<string>;

/**
 * Applies everything the components need before they start, with `say` telling a person each step.
 * `deployBase` is deploy/base's objects; only their ACCESS_KINDS are applied.
 */
export async function applyCluster(kubectl: Kubectl, o: {
  repo: string; machines: ScenarioNode[]; subnetID: string; pool?: Record<string, unknown>; deployBase: Array<{ kind: string }>; say: (line: string) => void;
}): Promise<void> {
  o.say('applying the CRDs, the Nodes (providerIDs from Azure) and a NodeIPPool with kubectl');
  await kubectl(['apply', '-f', path.join(o.repo, 'crds/podvnet.io_nodeippools.yaml'), '-f', path.join(o.repo, 'crds/podvnet.io_nodeipallocations.yaml')]);
  await kubectl(['apply', '-f', '-'], o.machines.map((m) => stringify(nodeManifest(m))).join('---\n'));
  await kubectl(['apply', '-f', '-'], stringify(poolManifest(o.subnetID, o.pool)));
  o.say('applying deploy/base\'s service accounts, RBAC and admission policy (the API emulator enforces RBAC)');
  await kubectl(['apply', '--server-side', '-f', '-'], o.deployBase.filter((x) => ACCESS_KINDS.has(x.kind)).map((x) => stringify(x)).join('---\n'));
}

export async function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`kubectl ${args.join(' ')}: ${err.trim() || out.trim()}`))));
    child.stdin.end(input ?? '');
  });
}

/** A machine of the scenario as the Azure cloud provider registers it: a Node with its providerID. */
function nodeManifest(m: ScenarioNode) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: m.nodeName,
      labels: { [NODE_SELECTOR_LABEL]: 'true', 'kubernetes.io/hostname': m.nodeName, ...(m.scaleSet ? { 'kubernetes.azure.com/agentpool': m.scaleSet } : {}) },
    },
    spec: { providerID: m.providerID },
  };
}

function poolManifest(subnetID: string, overrides: Record<string, unknown> = {}) {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'NodeIPPool',
    metadata: { name: 'sandbox' },
    spec: {
      nodeSelector: { matchLabels: { [NODE_SELECTOR_LABEL]: 'true' } },
      subnetID,
      ipsPerNode: { min: 4, max: 64 },
      scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
      ...overrides,
    },
  };
}
