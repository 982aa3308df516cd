/** diagnose: the report's judgement on a reading, without a kernel (the root tests read real nodes). */
import test from 'ava';
import { diagnose, type NodeReading } from './diagnostics.js';
import { podMACs } from './names.js';
import type { NodeNetwork } from './types.js';

const net: NodeNetwork = {
  bridgeName: 'podvnet0', hostInterface: 'eth0', nicMAC: '00:0d:3a:00:00:01', primaryIP: '10.1.0.4', podSubnet: '10.1.0.0/24',
  gatewayIP: '10.1.0.1', vnetPrefixes: ['10.0.0.0/8'], snat: { enabled: true, excludeCIDRs: [] }, mtu: 1500,
};
const pod = (n: number, ip = `10.1.0.${10 + n}`) =>
  ({ hostVeth: `pvn${n}`, containerId: `c${n}`, ifName: 'eth0', ip, mac: podMACs(`c${n}`, 'eth0').container });
const rule = (p: ReturnType<typeof pod>) => `-A PODVNET-SRC -m physdev --physdev-in ${p.hostVeth} ! -s ${p.ip}/32 -j DROP`;
const pinned = (p: ReturnType<typeof pod>) => ({ dst: p.ip, lladdr: p.mac, state: ['PERMANENT'] });

function healthy(pods = [pod(1), pod(2)]): NodeReading {
  return {
    backend: 'nft', moduleLoading: true, bridgeKind: 'bridge', sysctls: { brNfCallIptables: '1', ipForward: '1', proxyArp: '1' },
    snatRules: 3, forwardRules: 2, antispoofListing: ['-N PODVNET-SRC', ...pods.map(rule)].join('\n'),
    neighbours: pods.map(pinned), pods, missingJumps: [],
  };
}

test('a healthy reading has no problem and every flag set', (t) => {
  const d = diagnose(net, healthy());
  t.deepEqual(d.problems, []);
  t.true(d.bridge && d.brNetfilter && d.bridgeNfCallIptables && d.ipForward && d.proxyArp && d.snatChain && d.forwardChain && d.antispoofChain && d.jumps);
  t.deepEqual([d.podsWithoutAntispoof, d.podsWithoutPinnedNeighbour], [[], []]);
});

test('sysctls that cannot be read are one problem, not three', (t) => {
  const d = diagnose(net, { ...healthy(), sysctls: { problem: 'EROFS: mount the host /proc/sys/net' } });
  t.deepEqual(d.problems, ['EROFS: mount the host /proc/sys/net']);
});

test('a pod without its rule or its pinned entry is named; two pods on one IP (a late DEL) are not judged on the entry', (t) => {
  const [a, b, c, d2] = [pod(1), pod(2), pod(3, '10.1.0.50'), pod(4, '10.1.0.50')];
  const r = healthy([a, b, c, d2]);
  r.antispoofListing = ['-N PODVNET-SRC', rule(a), rule(c), rule(d2)].join('\n');
  r.neighbours = [pinned(b), { dst: a.ip, lladdr: '02:00:00:00:00:99', state: ['REACHABLE'] }];
  const d = diagnose(net, r);
  t.deepEqual(d.podsWithoutAntispoof, ['pvn2']);
  t.deepEqual(d.podsWithoutPinnedNeighbour, ['pvn1']);
  t.is(d.problems.length, 2);
  t.regex(d.problems[0]!, /no anti-spoofing rule in raw\/PODVNET-SRC for pod c2\/eth0 \(10\.1\.0\.12, pvn2\)/);
  t.regex(d.problems[1]!, /pod c1\/eth0 .* not permanent with .* \(02:00:00:00:00:99 REACHABLE\)/);
});

test('missing and empty chains, a missing bridge and a lost jump are each reported', (t) => {
  const d = diagnose(net, { ...healthy([]), bridgeKind: undefined, snatRules: 0, forwardRules: undefined, antispoofListing: undefined, missingJumps: ['nat/POSTROUTING -j PODVNET-SNAT'] });
  t.false(d.bridge);
  t.false(d.jumps);
  t.deepEqual(d.problems, [
    'bridge podvnet0 is missing',
    'iptables chain filter/PODVNET-FWD is missing',
    "iptables chain raw/PODVNET-SRC is missing: pods may send with other pods' IPs",
    'iptables chain nat/PODVNET-SNAT is empty (flushed by other software?)',
    'iptables rule nat/POSTROUTING -j PODVNET-SNAT is missing',
  ]);
});

test('br_netfilter missing: what to do depends on whether the kernel loads modules', (t) => {
  const r = { ...healthy(), sysctls: { ipForward: '1', proxyArp: '1' } };
  t.regex(diagnose(net, r).problems.join('\n'), /br_netfilter is not loaded \(modprobe br_netfilter\)/);
  t.regex(diagnose(net, { ...r, moduleLoading: false }).problems.join('\n'), /cannot load modules: it must be built in/);
});
