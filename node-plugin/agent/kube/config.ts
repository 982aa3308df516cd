import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the agent's API server is and how it proves who it is: in a pod, the service account the
 * kubelet mounts; elsewhere (tests, the sandbox), a kubeconfig file's current context (kubeconfig.ts,
 * loaded only then: its YAML parser is about 2 MiB the agent in a pod does without).
 */

export interface KubeTarget {
  /** The API server's base URL (https, or http for a local emulator). */
  server: URL;
  /** PEM CA bundle to trust; undefined: the system's. */
  ca?: string;
  /** Client certificate and key (PEM), for certificate authentication. */
  cert?: string;
  key?: string;
  /** Skip verifying the server's certificate (kubeconfig insecure-skip-tls-verify). */
  insecureSkipTLSVerify: boolean;
  /** The bearer token to send now (a token file is re-read after it changes), if any. */
  token(): string | undefined;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * A token file read again whenever it changed (mtime or size): projected service-account tokens expire
 * and the kubelet rewrites the file well before, so a token read once would stop working after an hour.
 */
export function tokenFile(path: string): () => string {
  let seen: { mtimeMs: number; size: number; token: string } | undefined;
  return () => {
    const st = statSync(path);
    if (seen?.mtimeMs !== st.mtimeMs || seen.size !== st.size) seen = { mtimeMs: st.mtimeMs, size: st.size, token: readFileSync(path, 'utf8').trim() };
    return seen.token;
  };
}

/** The in-cluster target (KUBERNETES_SERVICE_HOST/PORT and the mounted service account), or undefined outside a pod. */
export function inClusterTarget(env: Record<string, string | undefined>, saDir = SERVICE_ACCOUNT_DIR): KubeTarget | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT || '443';
  const token = tokenFile(join(saDir, 'token'));
  token(); // a pod without its token fails here, at start, not at the first request
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: readFileSync(join(saDir, 'ca.crt'), 'utf8'),
    insecureSkipTLSVerify: false,
    token,
  };
}

/** The agent's target: its --kubeconfig if given, else the pod's service account. */
export async function loadKubeTarget(kubeconfig: string | undefined, env: Record<string, string | undefined> = process.env): Promise<KubeTarget> {
  if (kubeconfig) return (await import('./kubeconfig.js')).kubeconfigFileTarget(kubeconfig);
  return inClusterTarget(env) ?? (() => {
    throw new Error('no API server: no --kubeconfig given and not in a pod (KUBERNETES_SERVICE_HOST is unset)');
  })();
}
