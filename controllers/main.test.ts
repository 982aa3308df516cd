import test from 'ava';
import { pino } from 'pino';
import { AzureEmulator } from '../hack/azure-emulator/index.js';
import { startKubeEmulator } from '../hack/kube-emulator/index.js';
import { applyCRDs, waitFor } from './testing/harness.js';
import { KubeClient, PATHS } from './kube.js';
import { run } from './main.js';

test('the process: flags, emulator credential, leader lease, /metrics /healthz /readyz, serves a pool, stops gracefully', async (t) => {
  const azure = await AzureEmulator.start({ scenario: { vms: [{ count: 2 }] }, config: { asyncDurationMs: 5 } });
  const kube = await startKubeEmulator();
  t.teardown(async () => { await kube.close(); await azure.close(); });
  const client = new KubeClient(kube.kubeConfig());
  await applyCRDs(client);
  const sc = (azure.dump() as { virtualMachines: Array<{ id: string; properties: { osProfile: { computerName: string } } }> }).virtualMachines;
  for (const vm of sc) {
    await client.create(PATHS.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name: vm.properties.osProfile.computerName }, spec: { providerID: `azure://${vm.id}` } });
  }
  const subnet = (azure.dump() as { subnets: Array<{ id: string }> }).subnets[0]!.id;

  const r = await run([
    '--kubeconfig', kube.kubeconfigPath, '--azure-endpoint', azure.url, '--azure-ca-file', azure.caPath, '--credential', 'emulator',
    '--http-port', '0', '--http-host', '127.0.0.1', '--lease-namespace', 'default', '--identity', 'ctl-test', '--poll-interval-ms', '10',
  ], {}, pino({ level: 'silent' }));
  let stopped = false;
  t.teardown(async () => { if (!stopped) await r.stop(); });

  t.is((await fetch(`${r.url}/healthz`)).status, 200);
  await waitFor('leadership', () => r.isLeader());
  await waitFor('ready', async () => (await fetch(`${r.url}/readyz`)).status === 200);
  const lease = await client.get<{ spec: { holderIdentity: string } }>(`${PATHS.leases('default')}/podvnet-controller`);
  t.is(lease.spec.holderIdentity, 'ctl-test');

  await client.create(PATHS.pools, { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'all' }, spec: { nodeSelector: {}, subnetID: subnet, scaling: { batchSize: 4 } } });
  await waitFor('pool served', async () => (await client.get<{ status?: { allocatedIPs?: number } }>(`${PATHS.pools}/all`)).status?.allocatedIPs === 8);

  const metrics = await (await fetch(`${r.url}/metrics`)).text();
  t.regex(metrics, /podvnet_azure_calls_total\{operation="nic.put",kind="write",result="ok"\} 2/);
  t.regex(metrics, /podvnet_pool_ips\{pool="all",state="allocated"\} 8/);
  t.regex(metrics, /podvnet_ip_allocation_duration_seconds_count 2/);
  t.regex(metrics, /podvnet_leader 1/);
  t.regex(metrics, /podvnet_controller_process_cpu_seconds_total/);

  await r.stop();
  stopped = true;
  t.is(await r.done, 0);
  const after = await client.get<{ spec: { holderIdentity: string } }>(`${PATHS.leases('default')}/podvnet-controller`);
  t.is(after.spec.holderIdentity, '', 'the lease is handed back on shutdown');
});

test('two replicas: one leads and reconciles, the standby is ready but idle, and takes over when the leader stops', async (t) => {
  const azure = await AzureEmulator.start({ scenario: { vms: [{ count: 1 }] }, config: { asyncDurationMs: 5 } });
  const kube = await startKubeEmulator();
  t.teardown(async () => { await kube.close(); await azure.close(); });
  const client = new KubeClient(kube.kubeConfig());
  await applyCRDs(client);
  const args = (id: string) => [
    '--kubeconfig', kube.kubeconfigPath, '--azure-endpoint', azure.url, '--azure-ca-file', azure.caPath, '--credential', 'emulator',
    '--http-port', '0', '--http-host', '127.0.0.1', '--lease-namespace', 'default', '--identity', id, '--poll-interval-ms', '10',
  ];
  const a = await run(args('a'), {}, pino({ level: 'silent' }));
  await waitFor('a leads', () => a.isLeader());
  const b = await run(args('b'), {}, pino({ level: 'silent' }));
  t.teardown(async () => { await a.stop(); await b.stop(); });
  await waitFor('b ready as standby', async () => (await fetch(`${b.url}/readyz`)).status === 200);
  t.false(b.isLeader());
  t.is(b.controller(), undefined, 'the standby runs no reconciler');

  await a.stop();
  await waitFor('b takes over', () => b.isLeader());
  const vm = (azure.dump() as { virtualMachines: Array<{ id: string; properties: { osProfile: { computerName: string } } }> }).virtualMachines[0]!;
  await client.create(PATHS.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name: vm.properties.osProfile.computerName }, spec: { providerID: `azure://${vm.id}` } });
  const subnet = (azure.dump() as { subnets: Array<{ id: string }> }).subnets[0]!.id;
  await client.create(PATHS.pools, { apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name: 'all' }, spec: { nodeSelector: {}, subnetID: subnet } });
  await waitFor('b serves the pool', async () => (await client.get<{ status?: { allocatedIPs?: number } }>(`${PATHS.pools}/all`)).status?.allocatedIPs === 16);
  const lease = await client.get<{ spec: { holderIdentity: string; leaseTransitions: number } }>(`${PATHS.leases('default')}/podvnet-controller`);
  t.like(lease.spec, { holderIdentity: 'b', leaseTransitions: 1 });
});

test('a leader that loses its lease to another holder stops reconciling and exits with 1', async (t) => {
  const azure = await AzureEmulator.start({ scenario: { vms: [{ count: 1 }] }, config: { asyncDurationMs: 5 } });
  const kube = await startKubeEmulator();
  t.teardown(async () => { await kube.close(); await azure.close(); });
  const client = new KubeClient(kube.kubeConfig());
  await applyCRDs(client);
  const a = await run([
    '--kubeconfig', kube.kubeconfigPath, '--azure-endpoint', azure.url, '--azure-ca-file', azure.caPath, '--credential', 'emulator',
    '--http-port', '0', '--http-host', '127.0.0.1', '--lease-namespace', 'default', '--identity', 'a', '--poll-interval-ms', '10',
  ], {}, pino({ level: 'silent' }));
  t.teardown(() => a.stop());
  await waitFor('a leads', () => a.isLeader());
  // another replica (a split brain, an operator) holds the lease now, freshly renewed
  const path = `${PATHS.leases('default')}/podvnet-controller`;
  const lease = await client.get<{ spec: Record<string, unknown> }>(path);
  const micro = new Date().toISOString().replace(/(\.\d{3})Z$/, '$1000Z');
  await client.update(path, { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: micro, leaseDurationSeconds: 60 } });
  // the next renewal (every 2 s) sees the other holder; generous for a loaded machine
  const code = await Promise.race([a.done, new Promise((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
  t.is(code, 1);
  t.false(a.isLeader());
});
