// The test kit of the Kubernetes API emulator: start one (optionally with the test CRD `widgets`), talk to it
// over HTTP(S) directly (`call`, `openWatch`), grant RBAC, and poll for a condition. Tests only: nothing in
// production imports it (tsconfig.build.json leaves `**/testing/**` out).
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startKubeEmulator, type EmulatorOptions, type KubeEmulator } from '../index.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export async function call(emu: KubeEmulator, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, token = emu.token): Promise<Reply> {
  const u = new URL(path, emu.url);
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const h: Record<string, string> = { Accept: 'application/json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (data !== undefined && !h['Content-Type']) h['Content-Type'] = 'application/json';
  if (data !== undefined) h['Content-Length'] = String(Buffer.byteLength(data));
  const mk = u.protocol === 'https:' ? request : httpRequest;
  return new Promise((resolve, reject) => {
    const req = mk(u, { method, headers: h, ca: emu.caPem }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Opens a watch and collects events; `next(n)` waits for n events in total. */
export function openWatch(emu: KubeEmulator, path: string) {
  const events: any[] = [];
  let waiters: (() => void)[] = [];
  let ended = false;
  const u = new URL(path, emu.url);
  const mk = u.protocol === 'https:' ? request : httpRequest;
  let statusCode = 0;
  const req = mk(u, { method: 'GET', headers: { Authorization: `Bearer ${emu.token}` }, ca: emu.caPem }, (res) => {
    statusCode = res.statusCode ?? 0;
    let buf = '';
    res.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) events.push(JSON.parse(line));
      }
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    });
    res.on('end', () => { ended = true; waiters.forEach((f) => f()); });
    res.on('error', () => { ended = true; });
  });
  req.on('error', () => { ended = true; });
  req.end();
  return {
    events,
    get ended() { return ended; },
    get status() { return statusCode; },
    async next(n: number, timeoutMs = 3000): Promise<any[]> {
      const deadline = Date.now() + timeoutMs;
      while (events.length < n && !ended) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} watch events, have ${JSON.stringify(events.map((e) => e.type))}`);
        await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 50); });
      }
      return events;
    },
    close() { req.destroy(); },
  };
}

export const widgetsCrd = (): any => YAML.parse(readFileSync(fileURLToPath(new URL('../testdata/widgets-crd.yaml', import.meta.url)), 'utf8'));

export async function withEmulator(t: { teardown(fn: () => Promise<void> | void): void }, opts: EmulatorOptions = {}): Promise<KubeEmulator> {
  const emu = await startKubeEmulator(opts);
  t.teardown(() => emu.close());
  return emu;
}

export async function withWidgets(t: { teardown(fn: () => Promise<void> | void): void }, opts: EmulatorOptions = {}): Promise<KubeEmulator> {
  const emu = await withEmulator(t, opts);
  const r = await call(emu, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetsCrd());
  if (r.status !== 201) throw new Error(`CRD create failed: ${r.text}`);
  return emu;
}

export const W = '/apis/test.podvnet.io/v1/widgets';
export const widget = (name: string, spec: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): any => ({
  apiVersion: 'test.podvnet.io/v1', kind: 'Widget', metadata: { name, ...extra }, spec: { size: 3, owner: 'ann', ...spec },
});

/**
 * Grants `rules` to a user (or a service account, `system:serviceaccount:<ns>:<name>`) through a new
 * ClusterRole and ClusterRoleBinding, or a Role and RoleBinding when `namespace` is given; `name` names both.
 */
export async function grant(emu: KubeEmulator, name: string, username: string, rules: unknown[], namespace?: string): Promise<void> {
  const sa = username.match(/^system:serviceaccount:([^:]+):([^:]+)$/);
  const subject = sa ? { kind: 'ServiceAccount', name: sa[2], namespace: sa[1] } : { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: username };
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  const kind = namespace ? 'Role' : 'ClusterRole';
  const base = namespace ? `${rbac}/namespaces/${namespace}` : rbac;
  const role = await call(emu, 'POST', `${base}/${namespace ? 'roles' : 'clusterroles'}`, { apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name }, rules });
  if (role.status !== 201) throw new Error(`${kind} ${name}: ${role.text}`);
  const b = await call(emu, 'POST', `${base}/${namespace ? 'rolebindings' : 'clusterrolebindings'}`, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: `${kind}Binding`, metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name }, subjects: [subject],
  });
  if (b.status !== 201) throw new Error(`${kind}Binding ${name}: ${b.text}`);
}

/** Polls `cond` every 10 ms until it holds (true) or `timeoutMs` passes (false): generous by default for a loaded machine. */
export async function until(cond: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}
