// The command: prints one JSON line with its URL, writes a kubeconfig kubectl can use, stops on SIGTERM
// (saving its snapshot), and rejects bad flags.
import test from 'ava';
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

function start(args: string[]) {
  const p = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', main, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d; const i = out.indexOf('\n'); if (i >= 0) resolve(out.slice(0, i)); });
    p.stderr.on('data', (d: Buffer) => { err += d; });
    p.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  return { p, firstLine, exited };
}

test('main.ts: JSON line, kubeconfig for kubectl, snapshot on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kube-emu-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  const dataFile = join(dir, 'state.json');
  const { p, firstLine, exited } = start(['--port', '0', '--kubeconfig-out', kubeconfig, '--data-file', dataFile, '--token', 'cli-token']);
  t.teardown(() => { if (p.exitCode === null) p.kill('SIGKILL'); });
  const line = JSON.parse(await firstLine);
  t.regex(line.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.is(line.kubeconfig, kubeconfig);
  t.true(readFileSync(kubeconfig, 'utf8').includes('token: cli-token'));
  if (existsSync('/usr/bin/kubectl')) {
    const out = await new Promise<string>((resolve, reject) => execFile('/usr/bin/kubectl', ['get', 'namespaces', '-o', 'name'], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir } }, (e, so, se) => (e ? reject(new Error(se)) : resolve(so))));
    t.true(out.includes('namespace/default'));
  }
  p.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(existsSync(dataFile));
  t.true(JSON.parse(readFileSync(dataFile, 'utf8')).rv > 0);
});

test('main.ts: bad flags exit 2 with the reason', async (t) => {
  const { firstLine, exited } = start(['--port', 'seventy']);
  await t.throwsAsync(firstLine, { message: /--port: Invalid input: expected number/ });
  t.is(await exited, 2);
});

test('main.ts: --authorization-mode AlwaysAllow lets any authenticated user do anything; a bad mode exits 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kube-emu-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { p, firstLine } = start(['--port', '0', '--no-tls', '--token', 'admin', '--kubeconfig-out', join(dir, 'kc'), '--authorization-mode', 'AlwaysAllow']);
  t.teardown(() => { if (p.exitCode === null) p.kill('SIGKILL'); });
  const { url } = JSON.parse(await firstLine);
  const as = (token: string, method: string, path: string, body?: unknown) => fetch(`${url}${path}`, {
    method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  t.is((await as('admin', 'POST', '/api/v1/namespaces/default/serviceaccounts', { metadata: { name: 'bot' } })).status, 201);
  const tr = await (await as('admin', 'POST', '/api/v1/namespaces/default/serviceaccounts/bot/token', { spec: {} })).json() as { status: { token: string } };
  t.is((await as(tr.status.token, 'GET', '/api/v1/namespaces/kube-system/secrets')).status, 200);
  const review = await (await as(tr.status.token, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { spec: { resourceAttributes: { verb: 'delete', resource: 'nodes' } } })).json() as { status: { allowed: boolean } };
  t.true(review.status.allowed);
  const bad = start(['--authorization-mode', 'Webhook']);
  await t.throwsAsync(bad.firstLine, { message: /--authorization-mode/ });
  t.is(await bad.exited, 2);
});
