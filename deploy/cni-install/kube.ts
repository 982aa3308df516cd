import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import type { DaemonSetLookup } from './decide.js';

/**
 * The installer's one API call (GET its DaemonSet), without @kubernetes/client-node: loading that
 * library would more than double the memory of a container that runs on every node to make one
 * request at shutdown. In a pod it uses the service-account token (re-read on each call: bound tokens
 * rotate) and CA; outside one, a kubeconfig with token authentication (tests, the sandbox).
 */

export interface ApiTarget {
  server: string;
  ca?: string;
  token(): string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function inClusterTarget(env: Record<string, string | undefined>, saDir = SA_DIR): ApiTarget | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) return undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(saDir, 'ca.crt'), 'utf8'),
    token: () => readFileSync(join(saDir, 'token'), 'utf8').trim(),
  };
}

const KubeConfigFile = z.looseObject({
  'current-context': z.string().min(1),
  contexts: z.array(z.looseObject({ name: z.string(), context: z.looseObject({ cluster: z.string(), user: z.string() }) })),
  clusters: z.array(z.looseObject({
    name: z.string(),
    cluster: z.looseObject({ server: z.string().url(), 'certificate-authority-data': z.string().optional(), 'certificate-authority': z.string().optional() }),
  })),
  users: z.array(z.looseObject({ name: z.string(), user: z.looseObject({ token: z.string().optional(), tokenFile: z.string().optional() }) })),
});

/** A kubeconfig's current context; only token authentication is supported. */
export function kubeconfigTarget(path: string): ApiTarget {
  const r = KubeConfigFile.safeParse(parse(readFileSync(path, 'utf8')));
  if (!r.success) throw new Error(`${path}: not a kubeconfig this installer can use: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const cfg = r.data;
  const ctx = cfg.contexts.find((c) => c.name === cfg['current-context']);
  if (!ctx) throw new Error(`${path}: context ${cfg['current-context']} not found`);
  const cluster = cfg.clusters.find((c) => c.name === ctx.context.cluster)?.cluster;
  const user = cfg.users.find((u) => u.name === ctx.context.user)?.user;
  if (!cluster || !user) throw new Error(`${path}: context ${ctx.name} names a missing cluster or user`);
  const rel = (p: string) => (isAbsolute(p) ? p : join(dirname(path), p));
  const ca = cluster['certificate-authority-data']
    ? Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8')
    : cluster['certificate-authority'] ? readFileSync(rel(cluster['certificate-authority']), 'utf8') : undefined;
  const { token, tokenFile } = user;
  if (token === undefined && tokenFile === undefined) throw new Error(`${path}: user ${ctx.context.user} has no token (only token authentication is supported)`);
  return { server: cluster.server, ca, token: () => token ?? readFileSync(rel(tokenFile!), 'utf8').trim() };
}

export function resolveTarget(env: Record<string, string | undefined>): ApiTarget {
  const inCluster = inClusterTarget(env);
  if (inCluster) return inCluster;
  if (env.KUBECONFIG) return kubeconfigTarget(env.KUBECONFIG.split(':')[0]!);
  throw new Error('no API server: not in a pod (KUBERNETES_SERVICE_HOST unset) and KUBECONFIG unset');
}

const DaemonSetMeta = z.looseObject({
  kind: z.literal('DaemonSet'),
  metadata: z.looseObject({ uid: z.string().min(1), deletionTimestamp: z.string().optional() }),
});

/** GET the DaemonSet; 404 is an answer (gone), anything else unexpected is an error. */
export function daemonSetLookup(target: ApiTarget, namespace: string, name: string, timeoutMs = 5000): () => Promise<DaemonSetLookup> {
  const url = new URL(`/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/daemonsets/${encodeURIComponent(name)}`, target.server);
  return () => new Promise<DaemonSetLookup>((resolve) => {
    let token: string;
    try {
      token = target.token();
    } catch (err) {
      resolve({ kind: 'error', message: `cannot read the service-account token: ${(err as Error).message}` });
      return;
    }
    const send = url.protocol === 'https:' ? request : httpRequest;
    const req = send(url, { method: 'GET', ca: target.ca, headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 404) return resolve({ kind: 'not-found' });
        if (res.statusCode !== 200) return resolve({ kind: 'error', message: `HTTP ${res.statusCode}` });
        try {
          const ds = DaemonSetMeta.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          resolve({ kind: 'found', uid: ds.metadata.uid, deleting: ds.metadata.deletionTimestamp !== undefined });
        } catch (err) {
          resolve({ kind: 'error', message: `unexpected answer: ${(err as Error).message}` });
        }
      });
      res.on('error', (err) => resolve({ kind: 'error', message: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ kind: 'error', message: err.message }));
    req.end();
  });
}
