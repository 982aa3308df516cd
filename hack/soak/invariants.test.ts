import test from 'ava';
import fc from 'fast-check';
import { checkLive, checkSettled, cniOutcome, percentile, ruleGuards, type KernelView, type LivePod } from './invariants.js';
import { Prng } from './prng.js';

const pod = (name: string, node: string, ip: string): LivePod => ({ name, containerId: `${name}-s0`, node, ip, veth: `pvn${name.padStart(11, '0')}`, mac: '02:00:00:00:00:01' });
const healthyKernel = (node: string, pods: LivePod[]): KernelView => ({
  node, veths: pods.map((p) => p.veth), podRoutes: pods.map((p) => p.ip),
  neighbours: pods.map((p) => ({ ip: p.ip, mac: p.mac, permanent: true })),
  antispoofRules: pods.map((p) => `-A PODVNET-SRC -m physdev --physdev-in ${p.veth} ! -s ${p.ip}/32 -j DROP`),
  ebtablesRules: [],
});
const world = (pods: LivePod[]) => ({
  pods,
  agents: ['a', 'b'].map((node) => ({ node, allocations: pods.filter((p) => p.node === node).map((p) => ({ containerId: p.containerId, ip: p.ip })) })),
  ipOwner: (ip: string) => pods.find((p) => p.ip === ip)?.node,
  kernel: ['a', 'b'].map((node) => healthyKernel(node, pods.filter((p) => p.node === node))),
});

test('a healthy world has no live violation', (t) => {
  t.deepEqual(checkLive(world([pod('p1', 'a', '10.0.0.5'), pod('p2', 'b', '10.0.0.6')])), []);
});

test('each broken invariant is named', (t) => {
  const p1 = pod('p1', 'a', '10.0.0.5');
  const p2 = pod('p2', 'b', '10.0.0.6');
  const kinds = (w: ReturnType<typeof world>) => checkLive(w).map((v) => v.kind);
  t.deepEqual(kinds(world([p1, { ...p2, ip: p1.ip, node: 'a' }])).filter((k) => k === 'duplicate-ip').length, 2, 'two live pods and the agent state both hold it');
  const w = world([p1, p2]);
  w.agents[0]!.allocations!.push({ containerId: 'other', ip: p1.ip });
  t.deepEqual(checkLive(w).map((v) => v.detail), ['a: the agent\'s state allocates 10.0.0.5 to both p1-s0 and other']);
  t.deepEqual(kinds({ ...world([p1, p2]), ipOwner: (ip) => (ip === p2.ip ? 'a' : 'a') }), ['ip-not-on-nic']);
  const noAlloc = world([p1, p2]);
  noAlloc.agents[1]!.allocations = [];
  t.deepEqual(kinds(noAlloc), ['agent-state-missing-pod']);
  const noRule = world([p1, p2]);
  noRule.kernel[0]!.antispoofRules = [];
  t.deepEqual(kinds(noRule), ['antispoof-rule-missing']);
  const lost = world([p1, p2]);
  lost.kernel[1]!.neighbours = [{ ip: p2.ip, mac: p2.mac, permanent: false }];
  t.deepEqual(kinds(lost), ['antispoof-neighbour-missing']);
  const wrongMac = world([p1, p2]);
  wrongMac.kernel[1]!.neighbours = [{ ip: p2.ip, mac: '02:aa:aa:aa:aa:aa', permanent: true }];
  t.deepEqual(kinds(wrongMac), ['antispoof-neighbour-missing']);
});

test('the anti-spoofing rule must name the veth and the pod IP, negated, and drop', (t) => {
  t.true(ruleGuards('-A PODVNET-SRC -m physdev --physdev-in pvn0123 ! -s 10.0.0.5/32 -j DROP', 'pvn0123', '10.0.0.5'));
  t.false(ruleGuards('-A PODVNET-SRC -m physdev --physdev-in pvn0123 -s 10.0.0.5/32 -j DROP', 'pvn0123', '10.0.0.5'));
  t.false(ruleGuards('-A PODVNET-SRC -m physdev --physdev-in pvn0124 ! -s 10.0.0.5/32 -j DROP', 'pvn0123', '10.0.0.5'));
  t.false(ruleGuards('-A PODVNET-SRC -m physdev --physdev-in pvn0123 ! -s 10.0.0.55/32 -j DROP', 'pvn0123', '10.0.0.5'));
});

test('settled: the pool minimum, zero demand, empty state, nothing left in the kernel', (t) => {
  const clean = { nodes: ['a'], poolMinimum: 8, nicIPs: () => 8, demand: () => ({ usedIPs: 0, pendingIPs: 0 }), agents: [{ node: 'a', allocations: [] }], kernel: [healthyKernel('a', [])] };
  t.deepEqual(checkSettled(clean), []);
  const leftover = healthyKernel('a', [pod('p1', 'a', '10.0.0.5')]);
  leftover.ebtablesRules = ['-i pvn000000000p1 -j DROP'];
  t.deepEqual(checkSettled({ ...clean, nicIPs: () => 32, demand: () => ({ usedIPs: 0, pendingIPs: 40 }), agents: [{ node: 'a', allocations: [{ containerId: 'x', ip: '10.0.0.5' }] }], kernel: [leftover] }).map((v) => v.kind),
    ['nic-not-at-minimum', 'demand-not-zero', 'agent-state-not-empty', 'leftover-veth', 'leftover-route', 'leftover-neighbour', 'leftover-iptables-rule', 'leftover-ebtables-rule']);
  t.deepEqual(checkSettled({ ...clean, agents: [{ node: 'a', allocations: undefined }] }).map((v) => v.kind), ['agent-state-not-empty'], 'unreadable state is not taken for empty');
});

test('CNI outcomes: success with an IP, code 11 with a message, anything else a failure, 137 a hang', (t) => {
  t.deepEqual(cniOutcome({ code: 0, stdout: '', stderr: '', json: { ips: [{ address: '10.0.0.5/24' }] } }), { kind: 'ok', ip: '10.0.0.5' });
  t.deepEqual(cniOutcome({ code: 1, stdout: '', stderr: '', json: { code: 11, msg: 'no free IP', details: 'the pool is growing' } }), { kind: 'try-again', msg: 'no free IP: the pool is growing' });
  t.is(cniOutcome({ code: 1, stdout: '', stderr: '', json: { code: 11, msg: '' } }).kind, 'failed', 'code 11 needs a message');
  t.deepEqual(cniOutcome({ code: 1, stdout: '', stderr: '', json: { code: 101, msg: 'RTNETLINK answers: No such file or directory' } }), { kind: 'failed', code: 101, msg: 'RTNETLINK answers: No such file or directory' });
  t.deepEqual(cniOutcome({ code: 2, stdout: '', stderr: 'boom', json: undefined }), { kind: 'failed', msg: 'boom' });
  t.deepEqual(cniOutcome({ code: 137, stdout: '', stderr: '', json: undefined }), { kind: 'hang' });
});

test('percentile by nearest rank', (t) => {
  t.is(percentile([], 50), undefined);
  t.is(percentile([5], 99), 5);
  t.is(percentile([1, 2, 3, 4], 50), 2);
  t.is(percentile([4, 3, 2, 1, 100], 99), 100);
  fc.assert(fc.property(fc.array(fc.integer(), { minLength: 1 }), fc.integer({ min: 0, max: 100 }), (xs, p) => xs.includes(percentile(xs, p)!)));
});

test('the PRNG replays from its seed, forks independently, stays in range', (t) => {
  const draw = (seed: number) => { const r = new Prng(seed); return Array.from({ length: 20 }, () => r.int(0, 1000)); };
  t.deepEqual(draw(7), draw(7));
  t.notDeepEqual(draw(7), draw(8));
  t.notDeepEqual(new Prng(7).fork('faults').next(), new Prng(7).fork('workload').next());
  fc.assert(fc.property(fc.nat(), fc.integer({ min: -50, max: 50 }), fc.nat(50), (seed, min, span) => {
    const r = new Prng(seed);
    for (let i = 0; i < 20; i++) { const v = r.int(min, min + span); if (v < min || v > min + span || !Number.isInteger(v)) return false; }
    return true;
  }));
});
