import test from 'ava';
import { pino } from 'pino';
import { ArmAdapter, armClientFactory } from '../../controllers/azure.js';
import { ArmLimiter } from '../../controllers/limiter.js';
import { parseProviderID } from '../../controllers/providerid.js';
import { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import { AzureEmulator, EmulatorCredential } from '../../hack/azure-emulator/index.js';
import { ImdsInstance } from './imds.js';
import { ManagedNicSource } from './managed-source.js';
import { recordFromImds } from './standalone-record.js';
import type { PoolSettings } from './address-service.js';

/**
 * Standalone mode's parts without namespaces: the record made from an IMDS answer, and the managed
 * source (the controller's planner and ARM adapter) against the Azure emulator: grows to its minimum and
 * with demand, removes exactly the released IPs (and adds nothing in that round), one NIC write per round,
 * and reads the NIC again after losing an If-Match race.
 */

const imdsAnswer = {
  compute: { name: 'docker-host', resourceId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/docker-host', subscriptionId: 's', resourceGroupName: 'rg', vmId: 'v' },
  network: { interface: [{ ipv4: { ipAddress: [{ privateIpAddress: '10.1.0.4' }, { privateIpAddress: '10.1.0.9' }, { privateIpAddress: '10.1.0.5' }], subnet: [{ address: '10.1.0.0', prefix: '24' }] }, macAddress: '000D3A0102AB' }] },
};

test('static mode: the record is the NIC\'s secondary addresses (the first one is the VM\'s own), in its subnet, with Azure\'s gateway', (t) => {
  const record = recordFromImds(ImdsInstance.parse(imdsAnswer), { nodeName: 'docker-host', vnetPrefixes: ['10.0.0.0/8'] });
  t.true(NodeIPAllocation.safeParse(record).success, 'a valid NodeIPAllocation');
  t.deepEqual(record.status!.ips.map((i) => i.ip), ['10.1.0.5', '10.1.0.9']);
  t.deepEqual(record.status!.nic, { id: 'imds:000d3a0102ab', macAddress: '00:0d:3a:01:02:ab', primaryIP: '10.1.0.4', vmID: imdsAnswer.compute.resourceId });
  t.deepEqual(record.status!.subnet, { id: 'imds:10.1.0.0/24', addressPrefix: '10.1.0.0/24', gatewayIP: '10.1.0.1' });
  t.deepEqual(record.status!.vnetAddressPrefixes, ['10.0.0.0/8']);
});

test('static mode: an IMDS answer without addresses or with a bad MAC is refused, saying which field', (t) => {
  const noAddr = ImdsInstance.safeParse({ ...imdsAnswer, network: { interface: [{ ...imdsAnswer.network.interface[0], ipv4: { ipAddress: [], subnet: [{ address: '10.1.0.0', prefix: '24' }] } }] } });
  t.false(noAddr.success);
  t.regex(JSON.stringify(noAddr.error?.issues), /lists no IPv4 address/);
  const badMac = ImdsInstance.safeParse({ ...imdsAnswer, network: { interface: [{ ...imdsAnswer.network.interface[0], macAddress: '00-0D-3A-01-02-AB' }] } });
  t.regex(JSON.stringify(badMac.error?.issues), /12 hex digits/);
});

test('managed mode: the controller\'s planner and ARM adapter on the VM\'s own NIC, release handshake in one process', async (t) => {
  const emu = await AzureEmulator.start();
  t.teardown(() => emu.close());
  const scenario = emu.loadScenario({ vnets: [{ name: 'v', addressPrefixes: ['10.80.0.0/16'], subnets: [{ name: 'hosts', addressPrefix: '10.80.0.0/24' }] }], vms: [{ namePrefix: 'h-', count: 1 }] });
  const node = scenario.nodes[0]!;
  const azure = new ArmAdapter(armClientFactory(new EmulatorCredential(), { endpoint: emu.url, extra: { tlsOptions: { ca: emu.ca } } }),
    new ArmLimiter({ concurrency: 4, writes: { capacity: 100, refillPerSecond: 100 }, reads: { capacity: 100, refillPerSecond: 100 } }), () => {}, 10);
  const source = new ManagedNicSource({
    azure, machine: parseProviderID(node.providerID), nodeName: 'h-0',
    ipsPerNode: { min: 2, max: 8 }, scaling: { batchSize: 2, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: [] }, resyncMs: 60_000, logger: pino({ level: 'silent' }),
  });
  t.teardown(() => source.stop());
  const seen: Array<{ record: NodeIPAllocation | undefined; pool: PoolSettings | undefined }> = [];
  const ips = () => seen.at(-1)?.record?.status?.ips.map((i) => i.ip) ?? [];
  const until = async (what: string, cond: () => boolean) => {
    for (const deadline = Date.now() + 20_000; !cond();) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last ips ${ips().join(',')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const puts = () => emu.calls().byKind['nic.put'] ?? 0;

  await source.start((record, pool) => seen.push({ record, pool }));
  await until('the minimum', () => ips().length === 2);
  t.is(puts(), 1, 'one write carried both adds');
  t.true(NodeIPAllocation.safeParse(seen.at(-1)!.record).success);
  t.is(seen.at(-1)!.record!.status!.nic!.primaryIP, node.primaryIP);
  t.deepEqual(seen.at(-1)!.pool!.ipsPerNode, { min: 2, max: 8 });

  // Demand: 2 used, 1 waiting -> grow by a batch, in one write.
  await source.writeSpec({ demand: { usedIPs: 2, pendingIPs: 1 }, releasedIPs: [] });
  await until('growth to 4', () => ips().length === 4);
  t.is(puts(), 2);

  // Someone else changes the NIC between our read and our write: If-Match fails once, the round reads again.
  emu.injectFault({ kind: 'nic.put', count: 1, status: 412, code: 'PreconditionFailed', message: 'The condition specified using HTTP conditional header(s) is not met.' });
  const before = ips();
  const released = before.slice(-2);
  await source.writeSpec({ demand: { usedIPs: 0, pendingIPs: 0 }, releasedIPs: released });
  await until('the released IPs to leave the NIC', () => ips().length === 2);
  t.deepEqual(ips(), before.slice(0, 2), 'exactly the released IPs were removed');
  t.is(source.lastPlan!.add.length, 0, 'a round that removes adds nothing');
  t.is(emu.calls().faulted, 1, 'the If-Match failure happened');
  t.is(puts(), 4, 'the failed write and its retry, nothing more');

  // The agent has seen the removal (its releasedIPs are empty again): back to steady, no write.
  await source.writeSpec({ demand: { usedIPs: 0, pendingIPs: 0 }, releasedIPs: [] });
  await new Promise((r) => setTimeout(r, 300));
  t.is(puts(), 4);
  t.is(ips().length, 2);
});
