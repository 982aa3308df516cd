import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { AzureEmulator } from './index.js';

/**
 * The Instance Metadata Service inside one simulated VM's network namespace: refused without
 * `Metadata: true` (Azure's 400 and body), the NIC's addresses in IMDS's format as they change, tokens
 * for the VM's identity that ARM accepts, and nothing at 169.254.169.254 outside that namespace.
 */

const run = promisify(execFile);
const root = process.getuid?.() === 0;

const curlIn = async (netns: string, args: string[]) => {
  const r = await run('ip', ['netns', 'exec', netns, 'curl', '-s', '-m', '5', '-w', '\n%{http_code}', ...args]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const lines = r.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') ? JSON.parse(lines.join('\n')) : undefined };
};

(root ? test.serial : test.skip)('IMDS answers inside the VM only, with Metadata: true, the NIC as it is now', async (t) => {
  const emu = await AzureEmulator.start();
  const netns = `pvimds${randomBytes(3).toString('hex')}`;
  await run('ip', ['netns', 'add', netns]);
  t.teardown(async () => {
    await emu.close();
    await run('ip', ['netns', 'del', netns]).catch(() => undefined);
  });
  const scenario = emu.loadScenario({ vnets: [{ name: 'v', addressPrefixes: ['10.70.0.0/16'], subnets: [{ name: 'nodes', addressPrefix: '10.70.0.0/24' }] }], vms: [{ namePrefix: 'vm-', count: 1, secondaryIpConfigs: 2 }] });
  const vm = scenario.nodes[0]!;
  const stop = await emu.serveVm({ netnsPath: `/run/netns/${netns}`, resourceId: vm.resourceId });
  const url = 'http://169.254.169.254/metadata/instance/network?api-version=2021-02-01';

  const refused = await curlIn(netns, [url]);
  t.is(refused.status, 400);
  t.deepEqual(refused.body, { error: 'Bad request. Required metadata header not specified' });
  const tokenRefused = await curlIn(netns, ['http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/']);
  t.is(tokenRefused.status, 400);
  t.is(tokenRefused.body.error, 'invalid_request');
  const noVersion = await curlIn(netns, ['-H', 'Metadata: true', 'http://169.254.169.254/metadata/instance']);
  t.is(noVersion.status, 400);
  t.regex(noVersion.body.error, /api-version was not specified/);

  const network = await curlIn(netns, ['-H', 'Metadata: true', url]);
  t.is(network.status, 200);
  const nic = network.body.interface[0];
  t.is(nic.macAddress, vm.macAddress.replaceAll('-', ''));
  t.is(nic.ipv4.ipAddress[0].privateIpAddress, vm.primaryIP, 'the primary address comes first');
  t.is(nic.ipv4.ipAddress.length, 3);
  t.deepEqual(nic.ipv4.subnet, [{ address: '10.70.0.0', prefix: '24' }]);
  const compute = await curlIn(netns, ['-H', 'Metadata: true', 'http://169.254.169.254/metadata/instance/compute/resourceId?api-version=2021-02-01']);
  t.is(compute.body, vm.resourceId);

  // An ip-config added through ARM shows up at the next read.
  const { createNetworkClient } = await import('./index.js');
  const net = createNetworkClient(emu, scenario.subscriptionId);
  const nicName = vm.nicId.split('/').at(-1)!;
  const current = await net.networkInterfaces.get(scenario.resourceGroup, nicName);
  await net.networkInterfaces.beginCreateOrUpdateAndWait(scenario.resourceGroup, nicName, {
    ...current,
    ipConfigurations: [...current.ipConfigurations!, { name: 'extra', privateIPAllocationMethod: 'Dynamic', subnet: { id: vm.subnetId } }],
  }, { updateIntervalInMs: 10 });
  const after = await curlIn(netns, ['-H', 'Metadata: true', url]);
  t.is(after.body.interface[0].ipv4.ipAddress.length, 4);

  const token = await curlIn(netns, ['-H', 'Metadata: true', 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/']);
  t.is(token.status, 200);
  t.is(token.body.token_type, 'Bearer');
  t.true(emu.entra.isIssued(token.body.access_token), 'an issued token (what requireIssuedToken lets through)');
  // The emulator's ARM endpoint answers inside the VM at the same URL.
  const arm = await run('ip', ['netns', 'exec', netns, 'curl', '-s', '--cacert', emu.caPath, '-H', `Authorization: Bearer ${token.body.access_token}`,
    `${emu.url}${vm.nicId}?api-version=2024-05-01`]);
  t.is(JSON.parse(arm.stdout).id.toLowerCase(), vm.nicId.toLowerCase());

  // Outside the namespace, nothing answers at 169.254.169.254.
  // (This machine's own network may answer there, e.g. a proxy's 403: but never with this VM's NIC.)
  const outside = await run('curl', ['-s', '-m', '2', '-H', 'Metadata: true', url]).then((r) => r.stdout, () => '');
  t.false(outside.includes(vm.primaryIP), `the VM's metadata is not served outside its namespace: ${outside.slice(0, 80)}`);
  stop();
  const stopped = await curlIn(netns, ['-H', 'Metadata: true', url]);
  t.is(stopped.status, 0, 'nothing listens after stop');
});
