import test from 'ava';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createMetrics } from './metrics.js';
import { PoolGauges, nodeFigures, usableAddresses } from './pool-metrics.js';
import { subnetDisplayName } from './status.js';
import { startWorld, waitFor } from './testing/harness.js';

const execFileP = promisify(execFile);

test('subnetDisplayName: <vnet>/<subnet> of any ARM subnet id; anything else as it is', (t) => {
  const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/);
  fc.assert(fc.property(name, name, name, name, (sub, rg, vnet, subnet) => {
    t.is(subnetDisplayName(`/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network/virtualNetworks/${vnet}/subnets/${subnet}`), `${vnet}/${subnet}`);
  }));
  t.is(subnetDisplayName('/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.network/VIRTUALNETWORKS/v/SUBNETS/p'), 'v/p');
  t.is(subnetDisplayName('not-an-id'), 'not-an-id');
});

test('usableAddresses: the subnet size less the five Azure keeps', (t) => {
  t.is(usableAddresses('10.240.0.0/24'), 251);
  t.is(usableAddresses('10.0.0.0/29'), 3);
  t.is(usableAddresses('10.0.0.0/16'), 65531);
  t.is(usableAddresses('10.0.0.0/30'), undefined, 'Azure has no /30 subnets');
  t.is(usableAddresses('garbage'), undefined);
});

test('nodeFigures: released counts only IPs still on the NIC; capped is the AtLimit reason', (t) => {
  const f = nodeFigures({
    metadata: { name: 'vm-0' },
    spec: { demand: { usedIPs: 30, pendingIPs: 4 }, releasedIPs: ['10.0.0.9', '10.0.0.99'] },
    status: { allocatedIPs: 2, targetIPs: 32, ips: [{ ip: '10.0.0.9' }, { ip: '10.0.0.10' }], conditions: [{ type: 'Ready', status: 'True', reason: 'AtLimit', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  });
  t.deepEqual(f, { node: 'vm-0', allocated: 2, target: 32, used: 30, pending: 4, released: 1, capped: true });
  t.deepEqual(nodeFigures({ metadata: { name: 'new' }, spec: { releasedIPs: [] } }), { node: 'new', allocated: 0, target: 0, used: 0, pending: 0, released: 0, capped: false });
});

test('PoolGauges: series for each node and the subnet; a node that left and a deleted pool leave no series behind', async (t) => {
  const m = createMetrics();
  const g = new PoolGauges(m);
  const fig = (node: string) => ({ node, allocated: 8, target: 16, used: 5, pending: 1, released: 0, capped: false });
  g.set('a', 64, [fig('vm-0'), fig('vm-1')], { name: 'vnet/pods', addressPrefix: '10.240.0.0/24', free: 200 });
  let text = await m.registry.metrics();
  t.regex(text, /podvnet_node_ips\{pool="a",node="vm-1",state="target"\} 16/);
  t.regex(text, /podvnet_subnet_usable_ips\{pool="a",subnet="vnet\/pods"\} 251/);
  t.regex(text, /podvnet_subnet_free_ips\{pool="a",subnet="vnet\/pods"\} 200/);
  t.regex(text, /podvnet_pool_max_ips_per_node\{pool="a"\} 64/);
  g.set('a', 64, [fig('vm-0')]);
  text = await m.registry.metrics();
  t.notRegex(text, /node="vm-1"/);
  t.regex(text, /node="vm-0"/);
  g.forget('a');
  text = await m.registry.metrics();
  t.notRegex(text, /pool="a"/);
});

test('the pool prints its subnet as vnet/subnet (kubectl -o wide); -o yaml keeps the full ARM id; node gauges are exported', async (t) => {
  const w = await startWorld({ scenario: { vms: [{ count: 1 }] }, nodeLabels: () => ({ pool: 'a' }) });
  t.teardown(() => w.close());
  const subnet = Object.values(w.subnets)[0]!;
  await w.createPool('a', { nodeSelector: { matchLabels: { pool: 'a' } }, subnetID: subnet, ipsPerNode: { min: 8, max: 64 }, scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } });
  const short = subnetDisplayName(subnet);
  t.not(short, subnet);
  await waitFor('the pool status', async () => (await w.pool('a'))?.status?.subnet === short);
  const { stdout: wide } = await execFileP('kubectl', ['--kubeconfig', w.kube.kubeconfigPath, 'get', 'nipp', '-o', 'wide']);
  const [head, row] = wide.trim().split('\n');
  t.true(head!.includes('SUBNET'));
  t.true(row!.includes(` ${short} `), row);
  t.false(wide.includes('/subscriptions/'), 'no ARM id in the table');
  const { stdout: yaml } = await execFileP('kubectl', ['--kubeconfig', w.kube.kubeconfigPath, 'get', 'nipp', 'a', '-o', 'yaml']);
  t.true(yaml.includes(`subnetID: ${subnet}`));
  const node = w.nodes[0]!.nodeName;
  await waitFor('node gauges', async () => (await w.metrics.registry.metrics()).includes(`podvnet_node_ips{pool="a",node="${node}",state="allocated"} 8`));
  t.regex(await w.metrics.registry.metrics(), new RegExp(`podvnet_subnet_free_ips\\{pool="a",subnet="${short.replace('/', '\\/')}"\\} \\d+`));
});
