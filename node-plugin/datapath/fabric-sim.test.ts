/** The simulated Azure fabric itself behaves like Azure where the datapath depends on it. Needs root. */
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { runRaw } from './exec.js';
import { AZURE_FABRIC_MAC, createFabric } from './testing/fabric-sim.js';
import { peerAddressSeen, ping, pingEventually, startPeerServer } from './testing/testkit.js';

const opts = { vnetPrefixes: ['10.60.0.0/16'], subnets: ['10.60.0.0/24', '10.60.4.0/24'] };

test('VMs talk across subnets; ARP is answered with Azure\'s MAC; the fabric delivers by ip-config', async (t) => {
  const f = await createFabric(opts);
  t.teardown(() => f.destroy());
  const a = await f.addVM({ name: 'a', mac: '00:0d:3a:00:00:0a', primaryIP: '10.60.0.4' });
  const b = await f.addVM({ name: 'b', mac: '00:0d:3a:00:00:0b', primaryIP: '10.60.4.4' });
  t.is(a.gatewayIP, '10.60.0.1');
  t.is(b.subnet, '10.60.4.0/24');
  t.true(await pingEventually(a.netns, '10.60.4.4'));
  const neigh = JSON.parse((await runRaw(a.netns, ['ip', '-j', 'neigh', 'show', '10.60.0.1'])).stdout) as Array<{ lladdr: string }>;
  t.is(neigh[0]?.lladdr, AZURE_FABRIC_MAC);
  // A secondary IP is delivered to b only once b's NIC holds it.
  await f.exec(b.netns, ['ip', 'addr', 'add', '10.60.4.50/32', 'dev', 'lo']);
  t.false(await ping(a.netns, '10.60.4.50'));
  await f.setNicIPs('b', ['10.60.4.50']);
  t.deepEqual(f.nicIPs('b'), ['10.60.4.50']);
  t.true(await pingEventually(a.netns, '10.60.4.50'));
  await t.throwsAsync(f.setNicIPs('a', ['10.60.4.50']), { message: /already on b's NIC/ });
  await t.throwsAsync(f.setNicIPs('a', ['192.0.2.1']), { message: /outside the VNet/ });
  await f.setNicIPs('b', []);
  t.false(await ping(a.netns, '10.60.4.50'));
});

test('frames from a MAC other than the NIC\'s are dropped', async (t) => {
  const f = await createFabric(opts);
  t.teardown(() => f.destroy());
  const a = await f.addVM({ name: 'a', mac: '00:0d:3a:00:00:0a', primaryIP: '10.60.0.4' });
  await f.addVM({ name: 'b', mac: '00:0d:3a:00:00:0b', primaryIP: '10.60.0.5' });
  t.true(await pingEventually(a.netns, '10.60.0.5'));
  await f.exec(a.netns, ['ip', 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:00:99']);
  t.false(await ping(a.netns, '10.60.0.5'));
});

test('outside hosts: reachable only from primary IPs, and cannot connect in', async (t) => {
  const f = await createFabric(opts);
  t.teardown(() => f.destroy());
  const a = await f.addVM({ name: 'a', mac: '00:0d:3a:00:00:0a', primaryIP: '10.60.0.4' });
  await f.setNicIPs('a', ['10.60.0.40']);
  await f.exec(a.netns, ['ip', 'addr', 'add', '10.60.0.40/32', 'dev', 'eth0']);
  const www = await f.addOutsideHost({ name: 'www', ip: '203.0.113.9' });
  const srv = startPeerServer(www.netns, 8080);
  t.teardown(() => srv.stop());
  t.is(await peerAddressSeen(a.netns, '203.0.113.9', 8080), '10.60.0.4');
  const fromSecondary = await runRaw(a.netns, ['busybox', 'ping', '-c', '1', '-W', '1', '-I', '10.60.0.40', '203.0.113.9']);
  t.not(fromSecondary.code, 0, 'a secondary IP does not get out');
  t.true(await pingEventually(a.netns, '203.0.113.9'), 'the primary IP does');
  t.false(await ping(www.netns, '10.60.0.4'), 'no way in');
  await t.throwsAsync(f.addOutsideHost({ name: 'bad', ip: '10.60.9.9' }), { message: /inside the VNet/ });
});

test('removeVM and destroy leave no namespaces behind', async (t) => {
  const f = await createFabric(opts);
  const a = await f.addVM({ name: 'a', mac: '00:0d:3a:00:00:0a', primaryIP: '10.60.0.4' });
  const b = await f.addVM({ name: 'b', mac: '00:0d:3a:00:00:0b', primaryIP: '10.60.0.5' });
  await f.setNicIPs('b', ['10.60.0.50']);
  await f.addNetns('pod1');
  startPeerServer(a.netns, 8080); // a process inside: destroy must still succeed
  await f.removeVM('b');
  t.false(existsSync(b.netnsPath));
  t.deepEqual(f.vms().map((v) => v.name), ['a']);
  await t.notThrowsAsync(f.setNicIPs('a', ['10.60.0.50']), 'the removed VM\'s IP is free again');
  await f.destroy();
  t.deepEqual(readdirSync('/run/netns').filter((n) => n.startsWith(`${f.prefix}-`)), []);
});

test('a block ip-config: the fabric delivers every address of the /28 to the NIC holding it, and none once it is gone', async (t) => {
  const f = await createFabric(opts);
  t.teardown(() => f.destroy());
  const a = await f.addVM({ name: 'a', mac: '00:0d:3a:00:00:0a', primaryIP: '10.60.0.4' });
  const b = await f.addVM({ name: 'b', mac: '00:0d:3a:00:00:0b', primaryIP: '10.60.4.4' });
  for (const ip of ['10.60.4.16', '10.60.4.23', '10.60.4.31']) await f.exec(b.netns, ['ip', 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
  await f.exec(b.netns, ['ip', 'addr', 'add', '10.60.4.32/32', 'dev', 'lo']);
  await f.setNicIPs('b', ['10.60.4.16/28']);
  t.is(f.nicIPs('b').length, 16);
  for (const ip of ['10.60.4.16', '10.60.4.23', '10.60.4.31']) t.true(await pingEventually(a.netns, ip), ip);
  t.false(await ping(a.netns, '10.60.4.32'), 'the next block is not b\'s');
  await t.throwsAsync(f.setNicIPs('a', ['10.60.4.20']), { message: /already on b's NIC/ });
  await f.setNicIPs('b', []);
  t.false(await ping(a.netns, '10.60.4.23'));
});
