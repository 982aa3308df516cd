import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { describeIssues } from '../../../crds/api/validation.js';

/**
 * Where the agent's API server is and how it proves who it is: in a pod, the service account the
 * kubelet mounts; elsewhere (tests, the sandbox), a kubeconfig file's current context. Only what the
 * agent needs is supported; an exec plugin or an auth provider is refused by name rather than ignored.
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

const KubeconfigUser = z.looseObject({
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-certificate-data': z.string().optional(),
  'client-key': z.string().optional(),
  'client-key-data': z.string().optional(),
});

const KubeconfigFile = z.looseObject({
  'current-context': z.string({ error: 'no current-context' }).min(1, 'no current-context'),
  contexts: z.array(z.looseObject({ name: z.string().min(1), context: z.looseObject({ cluster: z.string().min(1), user: z.string().optional() }) })).nullish(),
  clusters: z.array(z.looseObject({
    name: z.string().min(1),
    cluster: z.looseObject({
      server: z.url(),
      'certificate-authority': z.string().optional(),
      'certificate-authority-data': z.string().optional(),
      'insecure-skip-tls-verify': z.boolean().optional(),
    }),
  })).nullish(),
  users: z.array(z.looseObject({
    name: z.string().min(1),
    user: KubeconfigUser.nullish(),
  })).nullish(),
});

/** What a kubeconfig user may carry that this client does not do: refused by name. */
const UNSUPPORTED_AUTH = ['exec', 'auth-provider', 'username', 'password', 'as', 'as-groups', 'as-uid'];

/** The current context of a kubeconfig (YAML text); relative file names are resolved against `baseDir`. */
export function kubeconfigTarget(text: string, where: string, baseDir: string): KubeTarget {
  const fail = (why: string): never => {
    throw new Error(`kubeconfig ${where}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return fail(`not YAML: ${(err as Error).message}`);
  }
  const r = KubeconfigFile.safeParse(doc);
  if (!r.success) return fail(describeIssues(r.error));
  const cfg = r.data;
  const ctx = (cfg.contexts ?? []).find((c) => c.name === cfg['current-context']) ?? fail(`context "${cfg['current-context']}" (current-context) is not defined`);
  const cluster = (cfg.clusters ?? []).find((c) => c.name === ctx.context.cluster)?.cluster ?? fail(`cluster "${ctx.context.cluster}" of context "${ctx.name}" is not defined`);
  const named = ctx.context.user === undefined ? { user: {} } : (cfg.users ?? []).find((u) => u.name === ctx.context.user) ?? fail(`user "${ctx.context.user}" of context "${ctx.name}" is not defined`);
  const user: z.infer<typeof KubeconfigUser> = named.user ?? {};
  const unsupported = UNSUPPORTED_AUTH.filter((k) => k in user);
  if (unsupported.length) fail(`user "${ctx.context.user}" uses ${unsupported.join(', ')}, which the node agent does not support (use a token, a token file or a client certificate)`);
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(baseDir, p), 'utf8');
  const pem = (data: string | undefined, path: string | undefined) => (data !== undefined ? Buffer.from(data, 'base64').toString('utf8') : path !== undefined ? file(path) : undefined);
  const cert = pem(user['client-certificate-data'], user['client-certificate']);
  const key = pem(user['client-key-data'], user['client-key']);
  if ((cert === undefined) !== (key === undefined)) fail(`user "${ctx.context.user}" has a client certificate without its key, or a key without its certificate`);
  const server = new URL(cluster.server);
  if (server.protocol !== 'https:' && server.protocol !== 'http:') fail(`server ${cluster.server} is neither https nor http`);
  const fixed = user.token;
  const fromFile = user.tokenFile !== undefined ? tokenFile(isAbsolute(user.tokenFile) ? user.tokenFile : join(baseDir, user.tokenFile)) : undefined;
  return {
    server,
    ca: pem(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert,
    key,
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] ?? false,
    token: () => fixed ?? fromFile?.(),
  };
}

/** A kubeconfig file's current context. */
export function kubeconfigFileTarget(path: string): KubeTarget {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`kubeconfig ${path}: cannot read it: ${(err as Error).message}`);
  }
  return kubeconfigTarget(text, path, dirname(path));
}

/** The agent's target: its --kubeconfig if given, else the pod's service account. */
export function loadKubeTarget(kubeconfig: string | undefined, env: Record<string, string | undefined> = process.env): KubeTarget {
  if (kubeconfig) return kubeconfigFileTarget(kubeconfig);
  return inClusterTarget(env) ?? (() => {
    throw new Error('no API server: no --kubeconfig given and not in a pod (KUBERNETES_SERVICE_HOST is unset)');
  })();
}
