import test from 'ava';
import type { FaultEpisode } from './faults.js';
import { attributeWait, describeWait, startUps, type IpWait } from './waits.js';

const wait = (startedAt: number, gotAt: number, node = 'vm-0'): IpWait => ({ pod: 'p1', node, startedAt, gotAt, tryAgains: 3, podsOnNode: [10, 10], nicIPs: [8, 16] });
const ep = (kind: FaultEpisode['kind'], startedAt: number, endedAt?: number, node?: string): FaultEpisode => ({ kind, what: kind, startedAt, ...(endedAt !== undefined ? { endedAt } : {}), ...(node ? { node } : {}) });

test('no fault: the wait after the faults cleared is the whole wait', (t) => {
  const a = attributeWait(wait(1000, 4000), [], 10_000);
  t.is(a.waitMs, 3000);
  t.is(a.afterFaultMs, 3000);
  t.deepEqual(a.faults, []);
});

test('the clock starts when the last fault on during the wait ended', (t) => {
  const a = attributeWait(wait(1000, 13_000), [ep('azure-429-storm', 0, 2000), ep('controller-kill', 3000, 9000)], 20_000);
  t.is(a.waitMs, 12_000);
  t.is(a.afterFaultMs, 4000);
  t.is(a.faults.length, 2);
});

test('a fault that began during the wait and outlasted it does not move the clock; one just before the wait is listed only', (t) => {
  const a = attributeWait(wait(1000, 13_000), [ep('kube-restart', -3000, -500), ep('azure-lro-slow', 2000, 5000), ep('controller-kill', 12_000, 15_000)], 20_000);
  t.is(a.afterFaultMs, 8000, 'from the slow LROs\' end');
  t.deepEqual(a.faults.map((f) => f.kind), ['kube-restart', 'azure-lro-slow', 'controller-kill']);
});

test('a crash of another node\'s agent is not this node\'s fault; a fault not over yet ends at now', (t) => {
  const a = attributeWait(wait(1000, 9000), [ep('agent-kill', 0, 8000, 'vm-1'), ep('agent-kill', 500, 3000, 'vm-0')], 20_000);
  t.is(a.afterFaultMs, 6000);
  t.deepEqual(a.faults.map((f) => f.node), ['vm-0']);
  const open = attributeWait(wait(1000, 9000), [ep('kube-5xx', 500)], 8500);
  t.is(open.afterFaultMs, 500);
  t.regex(describeWait(a, 0), /^8\.00 s \(6\.00 s after the faults cleared\) p1 on vm-0 from 1\.00 s, 3 code 11; pods on node 10→10, NIC IPs 8→16; faults: agent-kill \[-0\.5\.\.2\.0 s\]$/);
});

test('start-ups: restart to serving per process; a restart that never served is counted apart; the wait shows when it served', (t) => {
  const eps: FaultEpisode[] = [
    { ...ep('controller-kill', 0, 2000), servingAt: 9000 },
    { ...ep('agent-kill', 100, 1000, 'vm-0'), servingAt: 4000 },
    ep('agent-kill', 5000, 6000, 'vm-0'),
    ep('kube-5xx', 0, 500),
  ];
  t.deepEqual(startUps(eps), { controller: [7000], agent: [3000], neverServed: 1 });
  t.regex(describeWait(attributeWait(wait(1000, 10_000), eps.slice(0, 1), 20_000), 0), /SIGKILL|controller-kill \[-1\.0\.\.1\.0 s, serving at 8\.0 s\]/);
});
