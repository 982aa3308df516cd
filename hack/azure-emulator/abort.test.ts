// Clients that go away mid-request under fault injection: the process hosting the emulator survives
// replies written after the socket closed (latency, slow operations, injected 429/5xx) and event streams
// cut while addresses change.
import test from 'ava';
import { request } from 'node:https';
import { AzureEmulator } from './server.js';
import { createNetworkClient } from './sdk.js';

const SUB = '11111111-2222-3333-4444-555555555555';
const RG = 'rg1';

test('requests and event streams aborted mid-way, with latency, slow operations and faults: nothing escapes, the emulator keeps serving', async (t) => {
  t.timeout(60_000);
  const emu = await AzureEmulator.start({
    config: { latencyMs: 40, mode: 'async', asyncDurationMs: 100 },
    scenario: { subscriptionId: SUB, resourceGroup: RG, vnets: [{ name: 'vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.1.0.0/24' }] }], vms: [{ namePrefix: 'vm-', count: 1, subnet: 'nodes' }] },
  });
  t.teardown(() => emu.close());
  const problems: unknown[] = [];
  const onProblem = (e: unknown) => { problems.push(e); };
  process.on('uncaughtException', onProblem);
  process.on('unhandledRejection', onProblem);
  t.teardown(() => { process.off('uncaughtException', onProblem); process.off('unhandledRejection', onProblem); });
  const net = createNetworkClient(emu, SUB);
  const nicPath = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/vm-0-nic?api-version=2024-05-01`;
  const subnetId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes`;

  const cut = (method: string, path: string, afterMs: number, body?: string, partial = false) => {
    const req = request(`${emu.url}${path}`, { method, ca: emu.ca, headers: { Authorization: 'Bearer x', 'content-type': 'application/json', ...(body ? { 'content-length': String(Buffer.byteLength(body) + (partial ? 100 : 0)) } : {}) } }, (res) => {
      res.on('data', () => undefined);
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    if (body) req.write(body);
    if (!partial) req.end();
    setTimeout(() => req.destroy(), afterMs);
  };

  for (let round = 0; round < 8; round++) {
    emu.injectFault({ kind: 'nic.get', count: 2, status: 429, code: 'SubscriptionRequestsThrottled', retryAfterSeconds: 1 });
    emu.injectFault({ kind: 'nic.put', count: 1, status: 500, code: 'InternalServerError' });
    const nic = await net.networkInterfaces.get(RG, 'vm-0-nic');
    const body = JSON.stringify({ location: 'eastus', properties: { ipConfigurations: [...nic.ipConfigurations!.map((c) => ({ name: c.name, properties: { subnet: { id: subnetId }, primary: c.primary, privateIPAllocationMethod: c.privateIPAllocationMethod, privateIPAddress: c.privateIPAddress } })), { name: `x${round}`, properties: { subnet: { id: subnetId }, privateIPAllocationMethod: 'Dynamic' } }] } });
    for (let i = 0; i < 6; i++) {
      cut('GET', nicPath, i * 10);                      // the reply comes after the client left (latency 40 ms)
      cut('PUT', nicPath, i * 15, body);                // accepted or faulted, answered to nobody
      cut('PUT', nicPath, 5, body, true);               // a body cut short
      cut('GET', '/_emulator/events', 5 + i * 20);      // a fabric stream cut while addresses change
    }
    // a write that changes addresses while the streams above are open or being cut
    await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, 'vm-0-nic', { location: 'eastus', ipConfigurations: [...nic.ipConfigurations!, { name: `y${round}`, subnet: { id: subnetId }, privateIPAllocationMethod: 'Dynamic' }] }, { updateIntervalInMs: 20 }).catch(() => undefined);
  }
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(problems.map(String), []);
  const after = await net.networkInterfaces.get(RG, 'vm-0-nic');
  t.truthy(after.ipConfigurations?.length, 'still answering');
});
