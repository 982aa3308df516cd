import test from 'ava';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { startAgent } from './agent.js';
import { until } from './testing/poll.js';
import { startTestNode } from './testing/test-node.js';
import { createPool, kubeForAgent, nodeRecord } from './testing/kube.js';
import { CoalescingWriter, specPatch } from './sync.js';

/**
 * The agent against the Kubernetes API emulator with the real client: it watches only its own
 * NodeIPAllocation, reads its pool's settings, and writes back only spec.demand and spec.releasedIPs,
 * coalesced. Pods are real netns pods through the C forwarder on a simulated VM.
 */


test('specPatch writes only when the values change; the writer coalesces many pokes', async (t) => {
  const w = { demand: { usedIPs: 2, pendingIPs: 0 }, releasedIPs: ['10.0.0.9', '10.0.0.8'] };
  t.deepEqual(specPatch(w, undefined), { spec: { demand: { usedIPs: 2, pendingIPs: 0 }, releasedIPs: ['10.0.0.8', '10.0.0.9'] } });
  t.is(specPatch(w, { demand: { usedIPs: 2, pendingIPs: 0 }, releasedIPs: ['10.0.0.8', '10.0.0.9'] }), undefined);
  t.truthy(specPatch(w, { demand: { usedIPs: 3, pendingIPs: 0 }, releasedIPs: w.releasedIPs }));
  let used = 0;
  const written: number[] = [];
  const writer = new CoalescingWriter({
    minIntervalMs: 100,
    desired: async () => ({ demand: { usedIPs: used, pendingIPs: 0 }, releasedIPs: [] }),
    write: async (p) => {
      written.push(p.spec.demand.usedIPs);
    },
  });
  const started = Date.now();
  for (let i = 1; i <= 50; i++) {
    used = i;
    writer.poke();
    await new Promise((r) => setTimeout(r, 4));
  }
  const elapsed = Date.now() - started;
  // the last change is written at most one interval later (nominally; a loaded machine takes longer)
  t.true(await until(() => written.at(-1) === 50), `the last value is written: ${written.join(',')}`);
  const before = written.length;
  writer.poke(); // nothing changed: no write
  await new Promise((r) => setTimeout(r, 150));
  writer.stop();
  t.is(written.length, before);
  // at most one write per interval (plus the first and the last), far fewer than the 50 changes
  t.true(written.length >= 2 && written.length <= Math.ceil(elapsed / 100) + 2, `writes: ${written.join(',')} in ${elapsed} ms`);
  t.is(written.at(-1), 50);
});

test('the writer sends a demand increase (a pod waiting) at once, not after the rest of the interval; other changes wait', async (t) => {
  let pending = 0;
  let used = 0;
  const written: Array<{ at: number; pending: number; used: number }> = [];
  const writer = new CoalescingWriter({
    minIntervalMs: 3000,
    urgentIntervalMs: 50,
    desired: async () => ({ demand: { usedIPs: used, pendingIPs: pending }, releasedIPs: [] }),
    write: async (p) => {
      written.push({ at: Date.now(), pending: p.spec.demand.pendingIPs, used: p.spec.demand.usedIPs });
    },
  });
  t.teardown(() => writer.stop());
  writer.poke();
  t.true(await until(() => written.length === 1));
  used = 1; // an ordinary change: waits for the interval
  writer.poke();
  await new Promise((r) => setTimeout(r, 100));
  pending = 1; // a pod found no IP
  const raised = Date.now();
  writer.poke({ demandRaised: true });
  t.true(await until(() => written.length === 2));
  t.like(written[1], { pending: 1, used: 1 }, 'the urgent write carries everything changed so far');
  t.true(written[1]!.at - raised < 1500, `written ${written[1]!.at - raised} ms after the demand rose (interval 3000 ms)`);
  used = 2;
  writer.poke();
  await new Promise((r) => setTimeout(r, 300));
  t.is(written.length, 2, 'an ordinary change after it still waits for the interval');
});

test('agent with the API emulator: demand and releases written to its own record, status and pool read', async (t) => {
  t.timeout(60_000);
  const node = await startTestNode({ podIPCount: 16, startAgent: false });
  t.teardown(() => node.close());
  const { emu, co, kubeconfig } = await kubeForAgent(t, node.dir);
  await createPool(co, 'general', {
    ipsPerNode: { min: 0, max: 250 },
    scaling: { batchSize: 4, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: ['192.168.0.0/16'] },
  });
  const fileRecord = JSON.parse(await readFile(node.recordPath, 'utf8')).record;
  // a record for another node, which this agent must neither read nor write
  for (const name of ['vm1', 'other-node']) await nodeRecord(co, name).create('general');
  const vm1 = nodeRecord(co, 'vm1');
  const setStatus = (ips: string[]) => vm1.setStatus({ ...fileRecord.status, ips: ips.map((ip, i) => ({ ip, ipConfigName: `ipconfig${i + 2}` })) });
  const record = vm1.get;

  // The agent starts before the controller has filled in status: not ready, ADD says try again.
  const agent = await startAgent({ ...node.config, recordFile: undefined, kubeconfig, syncIntervalMs: 100 }, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  const p0 = await node.pod('k');
  t.is((await node.cni('ADD', { containerId: 'early', netns: p0 })).json.code, 11);
  t.is((await node.cni('STATUS', {})).json.code, 50);

  await setStatus(node.podIPs);
  t.true(await until(() => agent.addresses.isReady()), 'status read through the watch');
  await agent.reconciled;
  t.deepEqual(agent.addresses.nodeNetwork()?.snat, { enabled: true, excludeCIDRs: ['192.168.0.0/16'] });

  // Idle, the scaling math (batch 4, request at 50%: keep need + 2 rounded up to a batch = 4) gives
  // back the 12 highest free IPs; it never hands them out again, and never retracts the release.
  t.true(await until(async () => ((await record()).spec.releasedIPs ?? []).length === 12), JSON.stringify((await record()).spec));
  const released: string[] = (await record()).spec.releasedIPs;
  t.deepEqual([...released].sort(), node.podIPs.slice(4).sort());
  t.is((await record()).spec.poolName, 'general', 'the controller-owned field is untouched');

  const pods = await Promise.all([0, 1, 2, 3].map((i) => node.pod(`k${i}`)));
  const adds = await Promise.all(pods.map((netns, i) => node.cni('ADD', { containerId: `kube-${i}`, netns })));
  t.true(adds.every((a) => a.code === 0), adds.map((a) => a.stdout).join('\n'));
  const held = adds.map((a) => a.json.ips[0].address.split('/')[0] as string);
  t.deepEqual([...held].sort(), node.podIPs.slice(0, 4).sort());
  t.true(await until(async () => (await record()).spec.demand?.usedIPs === 4), JSON.stringify((await record()).spec));

  // the pool is empty: the fifth pod waits, and the record says so (pendingIPs)
  const p5 = await node.pod('k5');
  const waiting = await node.cni('ADD', { containerId: 'kube-5', netns: p5 });
  t.is(waiting.json.code, 11);
  t.true(await until(async () => (await record()).spec.demand?.pendingIPs === 1), JSON.stringify((await record()).spec));

  // the API server drops every watch (restart, load balancer): the agent keeps following its record
  emu.dropWatches();
  await new Promise((r) => setTimeout(r, 100));

  // the controller removes the released IPs and adds a batch: releasedIPs empties, the pod gets an IP
  const fresh = ['10.40.5.100', '10.40.5.101', '10.40.5.102', '10.40.5.103'];
  await node.fabric.setNicIPs('vm1', [...node.podIPs.slice(0, 4), ...fresh]);
  await setStatus([...node.podIPs.slice(0, 4), ...fresh]);
  t.true(await until(async () => ((await record()).spec.releasedIPs ?? []).length === 0), JSON.stringify((await record()).spec));
  const retry = await node.cni('ADD', { containerId: 'kube-5', netns: p5 });
  t.is(retry.code, 0, retry.stdout);
  t.is(retry.json.ips[0].address, '10.40.5.100/22');
  t.true(await until(async () => { const d = (await record()).spec.demand; return d?.usedIPs === 5 && d?.pendingIPs === 0; }), JSON.stringify((await record()).spec));

  // the other node's record was never touched
  const other = await nodeRecord(co, 'other-node').get();
  t.is(other.spec.demand, undefined);
  t.deepEqual(other.spec.releasedIPs ?? [], []);
  // writes were coalesced: far fewer than the changes made
  const writes = (await agent.metrics.specWrites.get()).values[0]?.value ?? 0;
  t.true(writes > 0 && writes <= 8, `spec writes: ${writes}`);
  await agent.close();
  node.agent = undefined;
});

test('agent with the API emulator: pendingIPs falls back to 0 on its own after churn stops, and at once on DEL', async (t) => {
  t.timeout(90_000);
  const node = await startTestNode({ podIPCount: 1, startAgent: false });
  t.teardown(() => node.close());
  const { co, kubeconfig } = await kubeForAgent(t, node.dir);
  await createPool(co, 'general', {
    ipsPerNode: { min: 1, max: 250 },
    scaling: { batchSize: 1, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: [] },
  });
  const vm1 = nodeRecord(co, 'vm1');
  await vm1.create('general');
  const fileRecord = JSON.parse(await readFile(node.recordPath, 'utf8')).record;
  await vm1.setStatus(fileRecord.status);
  const demand = async () => (await vm1.get()).spec.demand;

  const windowMs = 6000;
  const intervalMs = 100;
  const agent = await startAgent({ ...node.config, recordFile: undefined, kubeconfig, syncIntervalMs: intervalMs, pendingWindowMs: windowMs }, { logger: pino({ level: 'silent' }) });
  node.agent = agent;
  await agent.reconciled;
  const holder = await node.cni('ADD', { containerId: 'holder', netns: await node.pod('h') });
  t.is(holder.code, 0, holder.stdout);

  // three pods find the pool empty; one of them retries (it counts once)
  const netns = await Promise.all(['a', 'b', 'c'].map((n) => node.pod(n)));
  for (const [i, id] of ['pa', 'pb', 'pc', 'pc'].entries()) {
    const r = await node.cni('ADD', { containerId: id, netns: netns[Math.min(i, 2)]! });
    t.is(r.json.code, 11, r.stdout);
  }
  t.true(await until(async () => (await demand())?.pendingIPs === 3), JSON.stringify(await demand()));

  // the runtime gives up on two of them: their DELs (no IP ever held) lower the demand now, not at expiry
  for (const id of ['pb', 'pc']) t.is((await node.cni('DEL', { containerId: id, netns: netns[1]! })).code, 0);
  const lastCall = Date.now();
  t.true(await until(async () => (await demand())?.pendingIPs === 1, windowMs - 1000), `DEL cleared the pending entries: ${JSON.stringify(await demand())}`);

  // no further CNI call: the last entry expires by itself and the record follows within window + interval
  t.true(await until(async () => (await demand())?.pendingIPs === 0, 60_000), JSON.stringify(await demand()));
  const settledMs = Date.now() - lastCall;
  t.log(`pendingIPs back to 0 ${settledMs} ms after the last CNI call (window ${windowMs} ms, interval ${intervalMs} ms)`);
  t.true(settledMs <= windowMs + intervalMs + 5000, `settled after ${settledMs} ms`);
  t.deepEqual(await demand(), { usedIPs: 1, pendingIPs: 0 });
  t.is(agent.handler.counts.get('ADD'), 5, 'no ADD was needed to get there');
  await agent.close();
  node.agent = undefined;
});
