import test from 'ava';
import { pino } from 'pino';
import { AgentAddressService } from './address-service.js';
import { CniHandler, type Datapath } from './cni-handler.js';
import { FreeIPWaiters } from './free-ip-waiters.js';
import { MemoryStore } from './ipam/store.js';
import { recordWithIPs as record } from './testing/records.js';

test('FreeIPWaiters: wake(n) wakes the n longest-waiting, in arrival order; the others time out', async (t) => {
  const w = new FreeIPWaiters();
  const woken: number[] = [];
  const started = Date.now();
  const waits = [0, 1, 2].map((i) => w.wait(2_000).then(() => woken.push(i)));
  t.is(w.size, 3);
  w.wake(2);
  await Promise.all(waits.slice(0, 2));
  t.deepEqual(woken, [0, 1]);
  t.is(w.size, 1);
  await waits[2];
  t.true(Date.now() - started >= 1_900, 'the third waited for its time-out');
  t.is(w.size, 0);
});

test('FreeIPWaiters: close() wakes everyone and later waits return at once', async (t) => {
  const w = new FreeIPWaiters();
  const waiting = w.wait(60_000);
  w.close();
  await waiting;
  t.true(w.closed);
  const started = Date.now();
  await w.wait(60_000);
  t.true(Date.now() - started < 1_000);
});


/** A CNI handler over a real address service (memory store) and a datapath that attaches nothing. */
async function handlerWith(ips: number, addWaitMs: number | undefined) {
  const store = new MemoryStore();
  const addresses = new AgentAddressService({ store, node: { nodeName: 'node-1', bridgeName: 'podvnet0', hostInterface: 'eth0', mtu: 1500 }, cooldownMs: 0 });
  addresses.restore(await store.lock());
  addresses.setRecord(record(ips), undefined);
  const datapath = {
    ensureNode: async () => undefined,
    attachPod: async (_net: unknown, p: { containerId: string; ip: string; prefixLength: number }) => ({
      hostVeth: { name: `veth-${p.containerId}`, mac: '02:00:00:00:00:01' }, container: { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' },
      ip: p.ip, prefixLength: p.prefixLength, gateway: '10.1.0.1',
    }),
    detachPod: async () => undefined,
    checkPod: async () => undefined,
    listAttachments: async () => [],
  } as unknown as Datapath;
  const handler = new CniHandler({ addresses, datapath, logger: pino({ level: 'silent' }), ...(addWaitMs !== undefined ? { addWaitMs } : {}) });
  const add = (id: string) => handler.handle(
    { CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${id}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
    JSON.stringify({ cniVersion: '1.0.0', name: 'podvnet', type: 'podvnet-cni' }),
  );
  return { addresses, handler, add };
}

const codeOf = (r: { exitCode: number; stdout: string }) => (r.exitCode === 0 ? 0 : (JSON.parse(r.stdout) as { code: number }).code);

test('CNI ADD with no free IP: answered "try again" at once by default', async (t) => {
  const { add, addresses } = await handlerWith(1, undefined);
  t.is(codeOf(await add('a')), 0);
  const started = Date.now();
  t.is(codeOf(await add('b')), 11);
  t.true(Date.now() - started < 1_000);
  t.is(addresses.demand().pendingIPs, 1, 'its demand was raised');
});

test('CNI ADD with no free IP and addWaitMs: held until the IPs its demand asked for arrive, then wired', async (t) => {
  const { add, addresses } = await handlerWith(1, 30_000);
  t.is(codeOf(await add('a')), 0);
  const held = [add('b'), add('c'), add('d')];
  // the held ADDs raised the demand: what the controller would see
  const deadline = Date.now() + 10_000;
  while (addresses.demand().pendingIPs < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(addresses.demand(), { usedIPs: 1, pendingIPs: 3 });
  const started = Date.now();
  addresses.setRecord(record(3), undefined); // two of the three arrive
  const [b, c] = await Promise.all(held.slice(0, 2));
  t.true(Date.now() - started < 900, 'woken by the new IPs, not by the one-second poll');
  t.deepEqual([codeOf(b!), codeOf(c!)], [0, 0]);
  addresses.setRecord(record(4), undefined);
  t.is(codeOf((await held[2])!), 0);
  t.deepEqual(addresses.demand(), { usedIPs: 4, pendingIPs: 0 });
});

test('CNI ADD with no free IP and addWaitMs: "try again" once the wait is over, or at once after stopHolding', async (t) => {
  const { add, handler } = await handlerWith(0, 1_500);
  const started = Date.now();
  t.is(codeOf(await add('a')), 11);
  t.true(Date.now() - started >= 1_400, 'held for its wait');
  const held = add('b');
  await new Promise((r) => setTimeout(r, 100));
  const stopping = Date.now();
  handler.stopHolding();
  t.is(codeOf(await held), 11);
  t.true(Date.now() - stopping < 500);
});
