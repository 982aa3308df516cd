// Test kit (deploy/*.test.ts, e2e, the sandbox; never shipped): builds a kustomization with kubectl and finds its objects.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** Helpers for the deploy/ tests: build a kustomization with the real kubectl and look objects up. */

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

/** Every kustomization a user builds directly (the tests build each one). */
export const KUSTOMIZATIONS = [
  'deploy/base',
  'deploy/overlays/production',
  'deploy/overlays/managed-identity',
  'deploy/overlays/dev',
  'deploy/examples/nodeippools',
  'deploy/argocd',
  'deploy/argocd/argocd-cm',
  'deploy/monitoring',
] as const;
export const OVERLAYS = ['deploy/overlays/production', 'deploy/overlays/managed-identity', 'deploy/overlays/dev'] as const;

const cache = new Map<string, K8sObject[]>();

/** `kubectl kustomize <dir>` (dir relative to the repository root), parsed. Throws with kubectl's error. */
export function build(dir: string): K8sObject[] {
  let objs = cache.get(dir);
  if (!objs) {
    const out = execFileSync(KUBECTL, ['kustomize', join(REPO_ROOT, dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    objs = parseYAMLStream(out);
    cache.set(dir, objs);
  }
  return objs;
}

export function parseYAMLStream(text: string): K8sObject[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('; '));
    return doc.toJSON() as K8sObject;
  }).filter((o) => o !== null);
}

export function find(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}
