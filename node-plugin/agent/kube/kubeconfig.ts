import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { describeIssues } from '../../../crds/api/validation.js';
import { tokenFile, type KubeTarget } from './config.js';

/**
 * A kubeconfig file's current context as a KubeTarget: the cluster's server, CA (file or data) and
 * insecure-skip-tls-verify; the user's token, token file (re-read when it changes) or client certificate
 * and key (files or data). What the agent does not do (exec plugins, auth providers, basic auth,
 * impersonation) is an error naming it, not something silently ignored.
 */

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

