// Library entry point: start an emulated kube-apiserver on loopback.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { z } from 'zod';
import { Api } from './api.js';
import { Controllers } from './controllers.js';
import { Handler, type Denial, type Fault } from './server.js';
import { Store } from './store.js';
import { loopbackTls } from './tls.js';
import type { UserInfo } from './admission.js';

export const UserSchema = z.object({
  token: z.string().min(1),
  username: z.string().min(1),
  uid: z.string().optional(),
  groups: z.array(z.string()).optional(),
  extra: z.record(z.string(), z.array(z.string())).optional(),
});
export type EmulatorUser = z.input<typeof UserSchema>;

/** The identity of the emulator's main token: a cluster admin. */
export const ADMIN_USER = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };

export const EmulatorOptionsSchema = z.object({
  /** 0 (default) picks a free port. */
  port: z.number().int().min(0).max(65535).default(0),
  host: z.string().default('127.0.0.1'),
  /** Bearer token clients must send; random if not given. */
  token: z.string().min(1).optional(),
  /** Snapshot file: objects survive restarts, and resourceVersions are never reused. */
  dataFile: z.string().optional(),
  /** HTTPS with a generated CA (default) or plain HTTP. */
  tls: z.boolean().default(true),
  /** Where to write a kubeconfig; a temp file if not given. */
  kubeconfigPath: z.string().optional(),
  /** Events kept per resource for watch resumption; older resourceVersions get 410 Gone. */
  historyLimit: z.number().int().positive().default(20_000),
  bookmarkIntervalMs: z.number().int().positive().default(30_000),
  /** More identities (e.g. a node agent's service account) for ValidatingAdmissionPolicy tests. */
  users: z.array(UserSchema).default([]),
  /**
   * 'RBAC' (default, as on a real cluster): requests and access reviews are decided by the stored Roles,
   * ClusterRoles and bindings (the admin token is in system:masters). 'AlwaysAllow': every authenticated
   * user may do everything.
   */
  authorization: z.enum(['RBAC', 'AlwaysAllow']).default('RBAC'),
});
export type EmulatorOptions = z.input<typeof EmulatorOptionsSchema>;

export interface KubeEmulator {
  url: string;
  token: string;
  caPem?: string;
  kubeconfigPath: string;
  /** A client-node KubeConfig pointing at the emulator (as the admin, or as the user of `token`). */
  kubeConfig(token?: string): KubeConfig;
  /** Adds an identity at runtime (returns its token). */
  addUser(user: EmulatorUser): string;
  /**
   * A token for a service account (the ServiceAccount object need not exist), as TokenRequest mints:
   * `system:serviceaccount:<ns>:<name>` in the service-account groups; `nodeName` adds the node claim
   * (`authentication.kubernetes.io/node-name`) a token bound to a pod on that node carries.
   */
  serviceAccountToken(namespace: string, name: string, opts?: { nodeName?: string }): string;
  /** Direct access for tests (e.g. compaction to provoke 410 Gone). */
  api: Api;
  /** Ends every open watch stream from the server side (as an API server restart would). */
  dropWatches(): void;
  /** Simulates a restart: drops every watch, compacts the history (old resourceVersions are 410 Gone), answers 503 for downMs. */
  restart(downMs: number): void;
  /** Scripts failures: the next `times` (default 1) matching requests get the error, e.g. 429 with Retry-After; with forMs, every matching request for that long. */
  injectFault(fault: Fault): void;
  /** Removes all scripted failures not yet used. */
  clearFaults(): void;
  /** Requests authorization refused so far (user, verb, resource, namespace, name, path, the 403 message), oldest first. */
  readonly denials: readonly Denial[];
  store: Store;
  close(): Promise<void>;
}

export function kubeconfigYaml(url: string, token: string, caPem?: string): string {
  const cluster: Record<string, string> = { server: url };
  if (caPem) cluster['certificate-authority-data'] = Buffer.from(caPem).toString('base64');
  // client-node refuses plain http unless TLS verification is (vacuously) switched off
  else (cluster as Record<string, unknown>)['insecure-skip-tls-verify'] = true;
  return YAML.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'emulator',
    clusters: [{ name: 'emulator', cluster }],
    users: [{ name: 'emulator', user: { token } }],
    contexts: [{ name: 'emulator', context: { cluster: 'emulator', user: 'emulator', namespace: 'default' } }],
  });
}

export type { Denial, Fault };

export async function startKubeEmulator(options: EmulatorOptions = {}): Promise<KubeEmulator> {
  const o = EmulatorOptionsSchema.parse(options);
  const token = o.token ?? randomBytes(24).toString('hex');
  const store = new Store({ dataFile: o.dataFile, historyLimit: o.historyLimit });
  const api = new Api(store);
  api.authorization = o.authorization;
  const controllers = new Controllers(api);
  const users = new Map<string, UserInfo>([[token, ADMIN_USER]]);
  const addUser = (u: EmulatorUser): string => {
    const p = UserSchema.parse(u);
    users.set(p.token, { username: p.username, uid: p.uid, groups: [...(p.groups ?? []), 'system:authenticated'], extra: p.extra });
    return p.token;
  };
  for (const u of o.users) addUser(u);
  const handler = new Handler(api, { users, bookmarkIntervalMs: o.bookmarkIntervalMs, log: () => {} });
  let server: Server;
  let caPem: string | undefined;
  if (o.tls) {
    const m = loopbackTls();
    caPem = m.caPem;
    server = createHttpsServer({ cert: m.certPem, key: m.keyPem }, handler.handle);
  } else server = createHttpServer(handler.handle);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `${o.tls ? 'https' : 'http'}://${host}:${port}`;
  let tmpDir: string | undefined;
  let kubeconfigPath = o.kubeconfigPath;
  if (!kubeconfigPath) {
    tmpDir = mkdtempSync(join(tmpdir(), 'kube-emulator-'));
    kubeconfigPath = join(tmpDir, 'kubeconfig');
  }
  writeFileSync(kubeconfigPath, kubeconfigYaml(url, token, caPem), { mode: 0o600 });
  let closed = false;
  return {
    url, token, caPem, kubeconfigPath, api, store,
    dropWatches: () => handler.closeWatches(),
    injectFault: (f: Fault) => { handler.faults.push({ ...f, ...(f.forMs !== undefined ? { until: Date.now() + f.forMs } : {}) }); },
    restart(downMs: number) {
      // what clients of a restarting API server see: every watch ends, the history is gone (a watch from
      // an old resourceVersion is 410 Gone), and every request is 503 until it is back
      handler.faults.push({ code: 503, message: 'the API server is restarting', until: Date.now() + downMs });
      handler.closeWatches();
      store.compact(store.currentRV());
    },
    clearFaults: () => { handler.faults.length = 0; },
    denials: handler.denials,
    kubeConfig(as?: string) {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml(url, as ?? token, caPem));
      return kc;
    },
    addUser,
    serviceAccountToken(namespace, name, so = {}) {
      return addUser({
        token: randomBytes(24).toString('hex'), username: `system:serviceaccount:${namespace}:${name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`],
        extra: so.nodeName ? { 'authentication.kubernetes.io/node-name': [so.nodeName] } : undefined,
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      controllers.stop();
      handler.closeWatches();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.save();
      if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}
