// The command: one JSON line on stdout, the real SDK against it, the plain-HTTP admin endpoint.
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createComputeClient, createNetworkClient } from './sdk.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

test('main.ts prints url, CA path and nodes; serves the SDK; admin over HTTP; exits on SIGTERM', async (t) => {
  const scenario = JSON.stringify({ resourceGroup: 'cli', vms: [{ count: 2 }], scaleSets: [{ name: 'np', count: 1 }] });
  const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', main, '--port', '0', '--admin-port', '0', '--mode', 'async', '--async-ms', '20', '--scenario', scenario, '--print-nodes'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const info = JSON.parse(first) as { url: string; caPath: string; adminUrl: string; subscriptionId: string; nodes: Array<{ nodeName: string; providerID: string }> };
  t.regex(info.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.deepEqual(info.nodes.map((n) => n.nodeName), ['vm-0', 'vm-1', 'np000000']);
  const endpoint = { url: info.url, ca: readFileSync(info.caPath, 'utf8') };
  const net = createNetworkClient(endpoint, info.subscriptionId);
  const nic = await net.networkInterfaces.get('cli', 'vm-1-nic');
  t.is(nic.ipConfigurations?.[0]?.privateIPAddress, '10.240.0.5');
  const done = await net.networkInterfaces.beginCreateOrUpdateAndWait('cli', 'vm-1-nic', nic, { updateIntervalInMs: 10 });
  t.is(done.provisioningState, 'Succeeded');
  const compute = createComputeClient(endpoint, info.subscriptionId);
  t.is((await compute.virtualMachineScaleSetVMs.get('cli', 'np', '0')).osProfile?.computerName, 'np000000');

  const calls = await (await fetch(`${info.adminUrl}/_emulator/calls`)).json() as { byKind: Record<string, number> };
  t.is(calls.byKind['nic.put'], 1);
  const fault = await fetch(`${info.adminUrl}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ kind: 'nic.get', status: 400, code: 'Nope' }) });
  t.is(fault.status, 201);
  const e = await t.throwsAsync(net.networkInterfaces.get('cli', 'vm-1-nic'));
  t.is((e as { code?: string }).code, 'Nope');
  const owner = await (await fetch(`${info.adminUrl}/_emulator/ips/10.240.0.4`)).json() as { nodeName: string };
  t.is(owner.nodeName, 'vm-0');

  // The change stream a separate fabric process follows.
  const events = await fetch(`${info.adminUrl}/_emulator/events`);
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  const nextLine = async (): Promise<{ type: string; added?: string[]; owners?: Array<{ ip: string }> }> => {
    while (!buffered.includes('\n')) {
      const { value, done } = await reader.read();
      if (done) throw new Error('event stream ended');
      buffered += value;
    }
    const i = buffered.indexOf('\n');
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return JSON.parse(line);
  };
  const snapshot = await nextLine();
  t.is(snapshot.type, 'snapshot');
  t.deepEqual(snapshot.owners!.map((o) => o.ip).sort(), ['10.240.0.4', '10.240.0.5', '10.240.0.6']);
  const withPod = await net.networkInterfaces.get('cli', 'vm-1-nic');
  withPod.ipConfigurations!.push({ name: 'pod', subnet: withPod.ipConfigurations![0]!.subnet!, primary: false });
  await net.networkInterfaces.beginCreateOrUpdateAndWait('cli', 'vm-1-nic', withPod, { updateIntervalInMs: 10 });
  const change = await nextLine();
  t.like(change, { type: 'ipchange', added: ['10.240.0.7'], nodeName: 'vm-1' });
  await reader.cancel();

  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('main.ts rejects a bad scenario with a specific message', async (t) => {
  const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', main, '--scenario', '{vms: [{count: -1}]}'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.is(code, 1);
  t.regex(stderr, /invalid scenario/);
  t.regex(stderr, /vms/);
});
