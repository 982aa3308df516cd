import test from 'ava';
import { setCondition, summarizePool } from './status.js';

test('lastTransitionTime changes only with the status', (t) => {
  const a = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Pending', message: 'x' }, 'T1', 1);
  const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'Other', message: 'y' }, 'T2', 2);
  t.is(b[0]!.lastTransitionTime, 'T1');
  t.is(b[0]!.reason, 'Other');
  t.is(b[0]!.observedGeneration, 2);
  const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'Synced', message: 'z' }, 'T3');
  t.is(c[0]!.lastTransitionTime, 'T3');
  t.is(c.length, 1);
});

test('pool summary adds up nodes and IPs and names what is wrong', (t) => {
  const s = summarizePool({
    records: [
      { name: 'n1', allocated: 10, used: 4, released: 0, ready: true },
      { name: 'n2', allocated: 20, used: 12, released: 3, ready: false, reason: 'SubnetFull' },
      { name: 'n3', allocated: 0, used: 0, released: 0, ready: false, reason: 'NICNotFound' },
    ],
    lostNodes: [{ node: 'n9', winner: 'older' }],
    subnetExhausted: { message: 'full' },
  });
  t.like(s, { nodes: 3, allocatedIPs: 30, usedIPs: 16, releasedIPs: 3 });
  const byType = Object.fromEntries(s.conditions.map((c) => [c.type, c]));
  t.like(byType.Ready, { status: 'False', reason: 'NodesNotReady' });
  t.regex(byType.Ready!.message, /2 of 3 node\(s\) not ready \(NICNotFound, SubnetFull\)/);
  t.like(byType.SubnetExhausted, { status: 'True', reason: 'SubnetIsFull' });
  t.like(byType.Degraded, { status: 'True', reason: 'OverlappingPools' });
  t.regex(byType.Degraded!.message, /n9 \(older\).*n3/);
});

test('a healthy pool: Ready, not exhausted, not degraded', (t) => {
  const s = summarizePool({ records: [], lostNodes: [] });
  t.deepEqual(s.conditions.map((c) => [c.type, c.status, c.reason]), [
    ['Ready', 'True', 'NoNodes'], ['SubnetExhausted', 'False', 'SubnetHasRoom'], ['Degraded', 'False', 'AsExpected'],
  ]);
});

test('nodes whose NIC refuses the pool subnet make the pool Degraded and say what to do', (t) => {
  const s = summarizePool({
    records: [
      { name: 'n1', allocated: 0, used: 0, released: 0, ready: false, reason: 'SubnetNotAllowedOnNIC' },
      { name: 'n2', allocated: 0, used: 0, released: 0, ready: false, reason: 'SubnetNotAllowedOnNIC' },
    ],
    lostNodes: [],
  });
  const degraded = s.conditions.find((c) => c.type === 'Degraded')!;
  t.like(degraded, { status: 'True', reason: 'SubnetNotAllowedOnNIC' });
  t.regex(degraded.message, /2 node\(s\).*use the nodes' subnet.*n1, n2/);
  t.regex(s.conditions.find((c) => c.type === 'Ready')!.message, /\(SubnetNotAllowedOnNIC\)/);
});
