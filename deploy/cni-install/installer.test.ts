import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { startKubeEmulator } from '../../hack/kube-emulator/index.js';
import { kubectl } from '../testing/kubectl.js';
import { build, find, REPO_ROOT } from '../testing/manifests.js';
import { decideOnStop } from './decide.js';
import { installFile, removeFile } from './files.js';
import { checkConflist, parseInstallerConfig, startInstaller, type InstallerConfig } from './installer.js';
import { daemonSetLookup, kubeconfigTarget } from './kube.js';

const silent = pino({ level: 'silent' });
const SHIPPED_CONFLIST = readFileSync(join(REPO_ROOT, 'deploy/base/node/10-podvnet.conflist'), 'utf8');

function hostDirs(t: ExecutionContext): InstallerConfig {
  const root = mkdtempSync(join(tmpdir(), 'podvnet-cni-install-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const d of ['image', 'opt/cni/bin', 'etc/cni/net.d']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'image/podvnet-cni'), '\x7fELF fake plugin v1');
  writeFileSync(join(root, 'image/10-podvnet.conflist'), SHIPPED_CONFLIST);
  return {
    binarySource: join(root, 'image/podvnet-cni'),
    binDir: join(root, 'opt/cni/bin'),
    configSource: join(root, 'image/10-podvnet.conflist'),
    confDir: join(root, 'etc/cni/net.d'),
    daemonSetName: 'podvnet-node',
    namespace: 'podvnet-system',
    recheckSeconds: 1,
  };
}
const installed = (cfg: InstallerConfig) => [existsSync(join(cfg.binDir, 'podvnet-cni')), existsSync(join(cfg.confDir, '10-podvnet.conflist'))];

test('stop decision: remove only when the DaemonSet is gone or being deleted', (t) => {
  t.true(decideOnStop('u1', { kind: 'not-found' }).remove);
  t.true(decideOnStop(undefined, { kind: 'not-found' }).remove);
  t.true(decideOnStop('u1', { kind: 'found', uid: 'u1', deleting: true }).remove);
  t.false(decideOnStop('u1', { kind: 'found', uid: 'u1', deleting: false }).remove);
  t.false(decideOnStop('u1', { kind: 'found', uid: 'u2', deleting: false }).remove);
  t.false(decideOnStop(undefined, { kind: 'found', uid: 'u2', deleting: false }).remove);
  const unsure = decideOnStop('u1', { kind: 'error', message: 'HTTP 503' });
  t.false(unsure.remove);
  t.regex(unsure.reason, /HTTP 503/);
});

test('installFile writes atomically with the mode, leaves no temporary file, and is idempotent', async (t) => {
  const cfg = hostDirs(t);
  t.is(await installFile(Buffer.from('v1'), cfg.binDir, 'p', 0o755), 'installed');
  t.is(statSync(join(cfg.binDir, 'p')).mode & 0o7777, 0o755);
  t.is(await installFile(Buffer.from('v1'), cfg.binDir, 'p', 0o755), 'unchanged');
  chmodSync(join(cfg.binDir, 'p'), 0o600);
  t.is(await installFile(Buffer.from('v1'), cfg.binDir, 'p', 0o755), 'installed', 'a wrong mode is fixed');
  t.is(statSync(join(cfg.binDir, 'p')).mode & 0o7777, 0o755);
  t.is(await installFile(Buffer.from('v2'), cfg.binDir, 'p', 0o755), 'installed');
  t.is(readFileSync(join(cfg.binDir, 'p'), 'utf8'), 'v2');
  t.deepEqual(readdirSync(cfg.binDir), ['p']);
  t.true(await removeFile(cfg.binDir, 'p'));
  t.false(await removeFile(cfg.binDir, 'p'));
});

test('conflist check: the shipped one passes; a broken or mismatched one fails with the reason', (t) => {
  t.notThrows(() => checkConflist(SHIPPED_CONFLIST, 'podvnet-cni'));
  t.throws(() => checkConflist('{', 'podvnet-cni'), { message: /not JSON/ });
  t.throws(() => checkConflist('{"cniVersion":"1.1.0","name":"podvnet","plugins":[]}', 'podvnet-cni'), { message: /plugins/ });
  t.throws(() => checkConflist('{"cniVersion":"1.1","name":"podvnet","plugins":[{"type":"podvnet-cni"}]}', 'podvnet-cni'), { message: /cniVersion/ });
  t.throws(() => checkConflist(SHIPPED_CONFLIST, 'other-cni'), { message: /type "podvnet-cni" but the binary installed is "other-cni"/ });
});

test('configuration comes from the environment the DaemonSet sets, and says what is missing', (t) => {
  const ds = find(build('deploy/base'), 'DaemonSet', 'podvnet-node');
  const c = ds.spec.template.spec.containers.find((x: { name: string }) => x.name === 'cni-installer');
  const env: Record<string, string> = Object.fromEntries(c.env.map((e: { name: string; value?: string }) => [e.name, e.value ?? 'podvnet-system']));
  const cfg = parseInstallerConfig(env);
  t.is(cfg.binDir, '/host/opt/cni/bin');
  t.is(cfg.recheckSeconds, 30);
  t.throws(() => parseInstallerConfig({ ...env, PODVNET_CNI_BIN_DIR: undefined }), { message: /PODVNET_CNI_BIN_DIR is required/ });
  t.throws(() => parseInstallerConfig({ ...env, PODVNET_CNI_CONF_DIR: 'etc/cni' }), { message: /PODVNET_CNI_CONF_DIR must be an absolute path/ });
});

test('installs, reinstalls what goes missing, keeps files on update, removes them on uninstall (kube emulator)', async (t) => {
  const cfg = hostDirs(t);
  const emu = await startKubeEmulator();
  t.teardown(() => emu.close());
  const k = (args: string[], stdin?: string) => kubectl(emu.kubeconfigPath, args, stdin);
  const base = build('deploy/base');
  const objs = [find(base, 'Namespace', 'podvnet-system'), find(base, 'DaemonSet', 'podvnet-node')];
  let r = await k(['apply', '--server-side', '-f', '-'], objs.map((o) => stringify(o)).join('---\n'));
  t.is(r.code, 0, r.stderr);
  const lookup = daemonSetLookup(kubeconfigTarget(emu.kubeconfigPath), cfg.namespace, cfg.daemonSetName);

  let inst = await startInstaller(cfg, { lookup, logger: silent });
  t.deepEqual(installed(cfg), [true, true]);
  t.is(statSync(join(cfg.binDir, 'podvnet-cni')).mode & 0o777, 0o755);
  t.is(readFileSync(join(cfg.confDir, '10-podvnet.conflist'), 'utf8'), SHIPPED_CONFLIST);
  unlinkSync(join(cfg.confDir, '10-podvnet.conflist'));
  await new Promise((res) => setTimeout(res, 1500));
  t.deepEqual(installed(cfg), [true, true], 'the periodic check put the conflist back');

  let d = await inst.stop();
  t.false(d.remove, d.reason);
  t.deepEqual(installed(cfg), [true, true], 'a restart or update keeps the files');

  inst = await startInstaller(cfg, { lookup, logger: silent });
  r = await k(['delete', 'daemonset', '-n', cfg.namespace, cfg.daemonSetName]);
  t.is(r.code, 0, r.stderr);
  d = await inst.stop();
  t.true(d.remove, d.reason);
  t.deepEqual(installed(cfg), [false, false]);
});

test('main.ts: the container entry point installs, and on SIGTERM after uninstall removes and exits 0', async (t) => {
  const cfg = hostDirs(t);
  const emu = await startKubeEmulator();
  t.teardown(() => emu.close());
  const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', join(REPO_ROOT, 'deploy/cni-install/main.ts')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env, KUBECONFIG: emu.kubeconfigPath, POD_NAMESPACE: cfg.namespace, PODVNET_DAEMONSET_NAME: cfg.daemonSetName,
      PODVNET_CNI_BINARY_SOURCE: cfg.binarySource, PODVNET_CNI_BIN_DIR: cfg.binDir,
      PODVNET_CNI_CONFIG_SOURCE: cfg.configSource, PODVNET_CNI_CONF_DIR: cfg.confDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  t.teardown(() => { child.kill('SIGKILL'); });
  const deadline = Date.now() + 20_000;
  while (!out.includes('CNI plugin and configuration installed') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  t.deepEqual(installed(cfg), [true, true], out);
  // No DaemonSet in this API server: as after `kubectl delete -k deploy/...`.
  child.kill('SIGTERM');
  t.is(await exited, 0, out);
  t.deepEqual(installed(cfg), [false, false]);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; removed?: boolean });
  t.true(lines.some((l) => l.msg === 'cni-installer stopping' && l.removed === true), out);
});
