import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startKubeEmulator } from '../../hack/kube-emulator/index.js';
import { kubectl } from '../testing/kubectl.js';
import { build, find } from '../testing/manifests.js';
import { daemonSetLookup, inClusterTarget, kubeconfigTarget, resolveTarget } from './kube.js';

test('the DaemonSet lookup against the Kubernetes API emulator: found, being deleted, gone, unauthorized', async (t) => {
  const emu = await startKubeEmulator();
  t.teardown(() => emu.close());
  const base = build('deploy/base');
  const ds = structuredClone(find(base, 'DaemonSet', 'podvnet-node'));
  ds.metadata.finalizers = ['example.com/hold'];
  let r = await kubectl(emu.kubeconfigPath, ['apply', '--server-side', '-f', '-'], [find(base, 'Namespace', 'podvnet-system'), ds].map((o) => stringify(o)).join('---\n'));
  t.is(r.code, 0, r.stderr);
  const target = kubeconfigTarget(emu.kubeconfigPath);
  const lookup = daemonSetLookup(target, 'podvnet-system', 'podvnet-node');
  const found = await lookup();
  t.like(found, { kind: 'found', deleting: false });
  const uid = JSON.parse((await kubectl(emu.kubeconfigPath, ['get', 'ds', '-n', 'podvnet-system', 'podvnet-node', '-o', 'json'])).stdout).metadata.uid;
  t.deepEqual(found, { kind: 'found', uid, deleting: false });

  r = await kubectl(emu.kubeconfigPath, ['delete', 'ds', '-n', 'podvnet-system', 'podvnet-node', '--wait=false']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await lookup(), { kind: 'found', uid, deleting: true });
  r = await kubectl(emu.kubeconfigPath, ['patch', 'ds', '-n', 'podvnet-system', 'podvnet-node', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await lookup(), { kind: 'not-found' });

  const badToken = daemonSetLookup({ ...target, token: () => 'wrong' }, 'podvnet-system', 'podvnet-node');
  t.deepEqual(await badToken(), { kind: 'error', message: 'HTTP 401' });
  const noCA = daemonSetLookup({ ...target, ca: undefined }, 'podvnet-system', 'podvnet-node');
  t.is((await noCA()).kind, 'error', 'the emulator\'s certificate is not trusted without its CA');
  const unreadable = daemonSetLookup({ ...target, token: () => { throw new Error('ENOENT'); } }, 'podvnet-system', 'podvnet-node');
  t.like(await unreadable(), { kind: 'error' });
});

test('in a pod: the service-account token and CA, re-reading the token each time', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'podvnet-sa-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.crt'), 'CA');
  writeFileSync(join(dir, 'token'), 'one\n');
  const target = inClusterTarget({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir)!;
  t.is(target.server, 'https://10.0.0.1:443');
  t.is(target.ca, 'CA');
  t.is(target.token(), 'one');
  writeFileSync(join(dir, 'token'), 'two');
  t.is(target.token(), 'two');
  t.is(inClusterTarget({ KUBERNETES_SERVICE_HOST: 'fd00::1' }, dir)!.server, 'https://[fd00::1]:443');
  t.is(inClusterTarget({}, dir), undefined);
  t.throws(() => resolveTarget({}), { message: /KUBERNETES_SERVICE_HOST unset\) and KUBECONFIG unset/ });
});

test('kubeconfig: token users only, with a clear message otherwise', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'podvnet-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const kc = (user: object) => {
    const p = join(dir, `kc-${Math.random()}`);
    writeFileSync(p, stringify({ 'current-context': 'c', contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:6443' } }], users: [{ name: 'u', user }] }));
    return p;
  };
  writeFileSync(join(dir, 'tok'), 'from-file\n');
  t.is(kubeconfigTarget(kc({ token: 'abc' })).token(), 'abc');
  t.is(kubeconfigTarget(kc({ tokenFile: 'tok' })).token(), 'from-file');
  t.throws(() => kubeconfigTarget(kc({ 'client-certificate-data': 'x' })), { message: /only token authentication/ });
});
