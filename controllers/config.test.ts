import test from 'ava';
import { loadConfig } from './config.js';

test('defaults, flags over environment, Kubernetes conventions below both', (t) => {
  const c = loadConfig([], {});
  t.like(c, { credential: 'default', azureCloud: 'AzurePublicCloud', leaderElect: true, workers: 32, writeBurst: 200, writesPerSecond: 10, leaseNamespace: 'kube-system' });
  const d = loadConfig(['--workers', '8', '--leader-elect=false'], { PODVNET_WORKERS: '4', PODVNET_HTTP_PORT: '9090', POD_NAMESPACE: 'podvnet-system', POD_NAME: 'ctl-0' });
  t.like(d, { workers: 8, leaderElect: false, httpPort: 9090, leaseNamespace: 'podvnet-system', identity: 'ctl-0' });
  t.is(loadConfig([], { POD_NAMESPACE: 'x', PODVNET_LEASE_NAMESPACE: 'y' }).leaseNamespace, 'y');
});

test('bad values fail at start, naming the flag and its variable', (t) => {
  t.throws(() => loadConfig(['--workers', '0'], {}), { message: /--workers \(PODVNET_WORKERS\): .*>=1/ });
  t.throws(() => loadConfig([], { PODVNET_CREDENTIAL: 'password' }), { message: /--credential \(PODVNET_CREDENTIAL\)/ });
  t.throws(() => loadConfig(['--azure-endpoint', 'http://127.0.0.1:1'], {}), { message: /--azure-endpoint.*https/ });
  t.throws(() => loadConfig(['--credential', 'emulator'], {}), { message: /needs --azure-endpoint/ });
  t.throws(() => loadConfig(['--no-such-flag', 'x'], {}), { message: /no-such-flag/ });
});
