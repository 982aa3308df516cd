import test from 'ava';
import fc from 'fast-check';
import { bridgeMAC, chainNames, decodeAlias, encodeAlias, hostVethName, podMACs, routeMetric, stableMAC } from './names.js';
import {
  antispoofRule, attachHostLines, attachPodLines, bridgeFixLines, detachLines, chainRemoveRestore, chainRestore, jumpRules, type NeighEntry, neighbourPlan,
  nodeSysctls, noSnatPrefixes,
} from './plan.js';
import type { NodeNetwork } from './types.js';
import { parseBackend } from './iptables.js';
import { parseNodeNetwork, parsePodInterface } from './validate.js';

const net: NodeNetwork = {
  bridgeName: 'podvnet0', hostInterface: 'eth0', nicMAC: '00:0D:3A:00:00:01', primaryIP: '10.0.0.4',
  podSubnet: '10.0.1.0/24', gatewayIP: '10.0.1.1', vnetPrefixes: ['10.0.0.0/16', '172.16.0.0/12'],
  snat: { enabled: true, excludeCIDRs: ['192.168.0.0/16', '10.0.0.0/16'] }, mtu: 1500,
};

test('host veth names are deterministic, at most 15 characters and valid interface names', (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 80 }), fc.string({ minLength: 1, maxLength: 15 }), (cid, ifn) => {
    const n = hostVethName(cid, ifn);
    return n === hostVethName(cid, ifn) && n.length <= 15 && /^pvn[0-9a-f]{11}$/.test(n);
  }));
  t.not(hostVethName('abc', 'eth0'), hostVethName('abc', 'eth1'));
  t.not(hostVethName('abc', 'eth0'), hostVethName('abd', 'eth0'));
  // (containerId, ifName) is not ambiguous: 'a'+'bc' and 'ab'+'c' differ.
  t.not(hostVethName('a', 'bc'), hostVethName('ab', 'c'));
});

test('host veth names of 250 pods do not collide', (t) => {
  const names = new Set(Array.from({ length: 250 }, (_, i) => hostVethName(`container-${i}`, 'eth0')));
  t.is(names.size, 250);
});

test('generated MACs are unicast, locally administered and stable', (t) => {
  fc.assert(fc.property(fc.string(), (seed) => {
    const m = stableMAC(seed);
    const first = parseInt(m.slice(0, 2), 16);
    return /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m) && (first & 1) === 0 && (first & 2) === 2 && m === stableMAC(seed);
  }));
  const m = podMACs('c1', 'eth0');
  t.not(m.host, m.container);
  t.is(bridgeMAC('podvnet0'), bridgeMAC('podvnet0'));
});

test('veth aliases round-trip any container id and interface name', (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1, maxLength: 15 }), fc.ipV4(), (containerId, ifName, ip) => {
    const f = { bridge: 'podvnet0', containerId, ifName, ip };
    const a = encodeAlias(f);
    // No characters that `ip -batch` would split on or unquote.
    return !/[\s'"\\]/.test(a) && JSON.stringify(decodeAlias(a)) === JSON.stringify(f);
  }));
  t.is(decodeAlias(undefined), undefined);
  t.is(decodeAlias('some other alias'), undefined);
  t.is(decodeAlias('podvnet/a/b'), undefined);
  t.is(decodeAlias('podvnet/br/%E0%A4%A/eth0/10.0.0.1'), undefined, 'malformed escapes are not ours');
});

test('chain names fit iptables\' 28-character limit', (t) => {
  fc.assert(fc.property(fc.stringMatching(/^[a-z0-9]{1,15}$/), (br) => {
    const c = chainNames(br);
    return c.snat.length <= 28 && c.forward.length <= 28 && c.antispoof.length <= 28;
  }));
  t.deepEqual(chainNames('podvnet0'), { snat: 'PODVNET-SNAT', forward: 'PODVNET-FWD', antispoof: 'PODVNET-SRC' });
});

test('SNAT chain: pod sources only, VNet and excluded prefixes return before the SNAT to the primary IP', (t) => {
  const text = chainRestore(net);
  const lines = text.split('\n');
  const natStart = lines.indexOf('*nat');
  const snatAt = lines.findIndex((l) => l.includes('-j SNAT'));
  t.true(natStart >= 0 && snatAt > natStart);
  t.is(lines[natStart + 1], ':PODVNET-SNAT - [0:0]', 'the chain is declared, so --noflush empties and rebuilds it');
  t.is(lines[snatAt], '-A PODVNET-SNAT -j SNAT --to-source 10.0.0.4 --random-fully');
  t.true(lines.indexOf('-A PODVNET-SNAT ! -s 10.0.1.0/24 -j RETURN') < snatAt);
  t.true(lines.indexOf('-A PODVNET-SNAT -o podvnet0 -j RETURN') < snatAt);
  for (const p of ['10.0.0.0/16', '172.16.0.0/12', '192.168.0.0/16']) {
    const at = lines.indexOf(`-A PODVNET-SNAT -d ${p} -j RETURN`);
    t.true(at > natStart && at < snatAt, p);
  }
  t.deepEqual(noSnatPrefixes(net), ['10.0.0.0/16', '172.16.0.0/12', '192.168.0.0/16'], 'deduplicated');
  t.is(text.match(/^COMMIT$/gm)?.length, 3);
  t.true(text.includes('-A PODVNET-FWD -i podvnet0 -j ACCEPT'));
  t.true(text.includes('-A PODVNET-FWD -o podvnet0 -j ACCEPT'));
  t.regex(text, /\*raw\n:PODVNET-SRC - \[0:0\]\nCOMMIT/, 'no pods: the anti-spoofing chain is declared empty');
});

test('anti-spoofing: one DROP rule per pod naming its host veth; the node pins each pod IP to its MAC', (t) => {
  const pods = [{ containerId: 'c1', ifName: 'eth0', ip: '10.0.1.10' }, { containerId: 'c2', ifName: 'eth0', ip: '10.0.1.11' }];
  const text = chainRestore(net, pods);
  for (const p of pods) {
    t.true(text.includes(`-A PODVNET-SRC -m physdev --physdev-in ${hostVethName(p.containerId, p.ifName)} ! -s ${p.ip}/32 -j DROP`), p.ip);
  }
  t.deepEqual(antispoofRule(pods[0]!), ['-m', 'physdev', '--physdev-in', hostVethName('c1', 'eth0'), '!', '-s', '10.0.1.10/32', '-j', 'DROP']);
  const host = attachHostLines(net, { ...pods[0]!, netnsPath: '/run/netns/x', prefixLength: 24 });
  t.is(host.at(-1), `neigh replace 10.0.1.10 lladdr ${podMACs('c1', 'eth0').container} dev podvnet0 nud permanent`);
  const jump = jumpRules(net).find((j) => j.table === 'raw')!;
  t.is(jump.chain, 'PREROUTING');
  t.deepEqual(jump.spec.slice(0, 5), ['-i', 'podvnet0', '-m', 'physdev', '--physdev-is-in'], 'only packets bridged in from our ports');
});

test('SNAT disabled: the chain only returns', (t) => {
  const text = chainRestore({ ...net, snat: { enabled: false, excludeCIDRs: [] } });
  t.false(text.includes('SNAT --to-source'));
  t.true(text.includes(':PODVNET-SNAT - [0:0]'));
});

test('chain removal declares then deletes each chain, and jumps carry our comment', (t) => {
  const text = chainRemoveRestore(net);
  t.regex(text, /:PODVNET-SNAT - \[0:0\]\n-X PODVNET-SNAT/);
  t.regex(text, /:PODVNET-FWD - \[0:0\]\n-X PODVNET-FWD/);
  t.regex(text, /:PODVNET-SRC - \[0:0\]\n-X PODVNET-SRC/);
  const jumps = jumpRules(net);
  t.deepEqual(jumps.map((j) => `${j.table}/${j.chain}`), ['nat/POSTROUTING', 'filter/FORWARD', 'raw/PREROUTING']);
  t.true(jumps.every((j) => j.spec.includes('comment')));
});

test('attach plans: host side makes veth, alias, hairpin and /32 route; pod side address and default route', (t) => {
  const pod = { containerId: 'c1', netnsPath: '/proc/123/ns/net', ifName: 'eth0', ip: '10.0.1.10', prefixLength: 24 };
  const host = attachHostLines(net, pod);
  const hv = hostVethName('c1', 'eth0');
  t.regex(host[0]!, new RegExp(`^link add ${hv} mtu 1500 address \\S+ master podvnet0 up type veth peer name eth0 mtu 1500 address \\S+ netns /proc/123/ns/net$`));
  t.is(host[1], `link set dev ${hv} alias '${encodeAlias({ bridge: 'podvnet0', containerId: 'c1', ifName: 'eth0', ip: '10.0.1.10' })}'`);
  t.is(host[2], `link set dev ${hv} type bridge_slave hairpin on`);
  t.is(host[3], `route replace 10.0.1.10/32 dev podvnet0 metric ${routeMetric('c1', 'eth0')}`);
  t.deepEqual(detachLines(net, pod, '10.0.1.10'), [`route del 10.0.1.10/32 dev podvnet0 metric ${routeMetric('c1', 'eth0')}`, `link del dev ${hv}`]);
  t.deepEqual(detachLines(net, pod, undefined), [`link del dev ${hv}`]);
  t.deepEqual(attachPodLines(net, pod), [
    'link set dev lo up', 'addr add 10.0.1.10/24 dev eth0', 'link set dev eth0 up', 'route replace default via 10.0.1.1 dev eth0 onlink',
  ]);
});

test('inputs are validated with messages naming the field', (t) => {
  t.is(parseNodeNetwork(net).nicMAC, '00:0d:3a:00:00:01', 'MAC normalized');
  t.throws(() => parseNodeNetwork({ ...net, bridgeName: 'a-name-that-is-too-long' }), { message: /bridgeName/ });
  t.throws(() => parseNodeNetwork({ ...net, primaryIP: '10.0.0.256' }), { message: /primaryIP/ });
  t.throws(() => parseNodeNetwork({ ...net, mtu: 100 }), { message: /mtu/ });
  t.throws(() => parseNodeNetwork({ ...net, bridgeName: 'eth0' }), { message: /bridgeName must differ/ });
  const pod = { containerId: 'c1', netnsPath: '/run/netns/x', ifName: 'eth0', ip: '10.0.1.10', prefixLength: 24 };
  t.notThrows(() => parsePodInterface(net, pod));
  t.throws(() => parsePodInterface(net, { ...pod, ip: '10.0.2.10' }), { message: /not in the pod subnet 10\.0\.1\.0\/24/ });
  t.throws(() => parsePodInterface(net, { ...pod, ifName: 'eth 0' }), { message: /ifName/ });
  t.throws(() => parsePodInterface(net, { ...pod, netnsPath: '' }), { message: /netnsPath/ });
});

test('a container id too long for the veth alias is refused before any kernel work', (t) => {
  const pod = { containerId: 'x'.repeat(250), netnsPath: '/run/netns/x', ifName: 'eth0', ip: '10.0.1.10', prefixLength: 24 };
  t.throws(() => parsePodInterface(net, pod), { message: /too long to record on the host veth/ });
  t.notThrows(() => parsePodInterface(net, { ...pod, containerId: 'f'.repeat(64) }));
});

test('node sysctls: forwarding, proxy ARP answering at once on the bridge, br_netfilter; keys survive dots in names', (t) => {
  const s = nodeSysctls({ ...net, bridgeName: 'br.pods' });
  t.deepEqual(s, {
    'net/ipv4/ip_forward': '1',
    'net/ipv4/conf/br.pods/forwarding': '1',
    'net/ipv4/conf/br.pods/proxy_arp': '1',
    'net/ipv4/neigh/br.pods/proxy_delay': '0',
    'net/bridge/bridge-nf-call-iptables': '1',
  });
});

test('route metrics are per pod, stable, and valid kernel metrics', (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1, maxLength: 15 }), (cid, ifn) => {
    const m = routeMetric(cid, ifn);
    return Number.isInteger(m) && m >= 0x1000 && m < 2 ** 32 && m === routeMetric(cid, ifn);
  }));
  const ms = new Set(Array.from({ length: 250 }, (_, i) => routeMetric(`c${i}`, 'eth0')));
  t.is(ms.size, 250);
});

test('iptables backend: kubelet\'s hint chains win, then the system default; the override beats both', (t) => {
  t.is(parseBackend('hint legacy\n'), 'legacy');
  t.is(parseBackend('hint nft\n'), 'nft');
  t.is(parseBackend('iptables v1.8.9 (legacy)\n'), 'legacy');
  t.is(parseBackend('iptables v1.8.9 (nf_tables)\n'), 'nft');
  t.is(parseBackend('iptables v1.8.9 (nf_tables)\n', 'legacy'), 'legacy');
  t.is(parseBackend(''), 'nft');
});

test('an existing bridge is changed only where it differs: never a MAC set to the MAC it has (that flushes its neighbour table)', (t) => {
  const mac = bridgeMAC('podvnet0');
  t.deepEqual(bridgeFixLines(net, { address: mac, flags: ['BROADCAST', 'UP', 'LOWER_UP'] }), []);
  t.deepEqual(bridgeFixLines(net, { address: mac.toUpperCase(), flags: ['UP'] }), [], 'case does not matter');
  t.deepEqual(bridgeFixLines(net, { address: mac, flags: ['BROADCAST'] }), ['link set dev podvnet0 up']);
  t.deepEqual(bridgeFixLines(net, { address: '02:00:00:00:00:01', flags: ['UP'] }), [`link set dev podvnet0 address ${mac}`]);
});

/** Applies neigh lines to a model of the bridge's table (what the kernel would hold afterwards). */
function applyNeigh(entries: NeighEntry[], lines: string[]): Map<string, NeighEntry> {
  const table = new Map(entries.map((e) => [e.dst, e]));
  for (const l of lines) {
    const rep = /^neigh replace (\S+) lladdr (\S+) dev podvnet0 nud permanent$/.exec(l);
    const del = /^neigh del (\S+) dev podvnet0$/.exec(l);
    if (rep) table.set(rep[1]!, { dst: rep[1]!, lladdr: rep[2]!, state: ['PERMANENT'] });
    else if (del) table.delete(del[1]!);
    else throw new Error(`unexpected line ${l}`);
  }
  return table;
}

test('neighbour plan: live pods re-pinned, a DEL removes only its own entry, GC removes unclaimed permanent entries', (t) => {
  const macA = podMACs('a', 'eth0').container;
  const macB = podMACs('b', 'eth0').container;
  const pods = [{ ip: '10.0.1.10', mac: macA }, { ip: '10.0.1.11', mac: macB }];
  // Flushed table: both re-pinned; nothing to do once they are.
  const lines = neighbourPlan(net, { entries: [], pods });
  t.deepEqual(lines, [`neigh replace 10.0.1.10 lladdr ${macA} dev podvnet0 nud permanent`, `neigh replace 10.0.1.11 lladdr ${macB} dev podvnet0 nud permanent`]);
  t.deepEqual(neighbourPlan(net, { entries: [...applyNeigh([], lines).values()], pods }), []);
  // A learned (not permanent) entry with the right MAC, and a spoofer's MAC, are both re-pinned.
  t.is(neighbourPlan(net, { entries: [{ dst: '10.0.1.10', lladdr: macA, state: ['REACHABLE'] }, { dst: '10.0.1.11', lladdr: macA, state: ['STALE'] }], pods }).length, 2);
  // DEL: only if the entry still carries the pod's MAC; a dynamic entry with it goes too.
  t.deepEqual(neighbourPlan(net, { entries: [{ dst: '10.0.1.10', lladdr: macA, state: ['STALE'] }], unpin: [{ ip: '10.0.1.10', mac: macA }] }), ['neigh del 10.0.1.10 dev podvnet0']);
  t.deepEqual(neighbourPlan(net, { entries: [{ dst: '10.0.1.10', lladdr: macB, state: ['PERMANENT'] }], unpin: [{ ip: '10.0.1.10', mac: macA }] }), [], 'a newer pod\'s entry stays');
  t.deepEqual(neighbourPlan(net, { entries: [], unpin: [{ ip: '10.0.1.10', mac: macA }] }), [], 'already gone: nothing to do');
  // An IP two live veths claim (late DEL racing a new pod) is left alone.
  t.deepEqual(neighbourPlan(net, { entries: [], pods: [{ ip: '10.0.1.10', mac: macA }, { ip: '10.0.1.10', mac: macB }], gcStale: true }), []);
  // GC: a permanent entry nobody claims goes; a dynamic one (the kernel ages it) and IPv6-looking ones stay.
  t.deepEqual(neighbourPlan(net, {
    entries: [{ dst: '10.0.1.99', lladdr: macA, state: ['PERMANENT'] }, { dst: '10.0.1.98', lladdr: macA, state: ['REACHABLE'] }],
    pods: [], gcStale: true,
  }), ['neigh del 10.0.1.99 dev podvnet0']);
});

test('property: after a neighbour plan, every unambiguous live pod is pinned, no live pod\'s entry is deleted, unpinned DEL entries are gone', (t) => {
  const ip = fc.integer({ min: 10, max: 20 }).map((n) => `10.0.1.${n}`);
  const pod = fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), ip).map(([c, i]) => ({ ip: i, mac: podMACs(c, 'eth0').container }));
  const entry = fc.tuple(ip, fc.constantFrom('a', 'b', 'c', 'x'), fc.constantFrom(['PERMANENT'], ['REACHABLE'], ['STALE'], ['FAILED'])).map(
    ([i, c, state]): NeighEntry => ({ dst: i, lladdr: podMACs(c, 'eth0').container, state: [...state] }));
  fc.assert(fc.property(fc.array(entry, { maxLength: 8 }), fc.option(fc.array(pod, { maxLength: 6 }), { nil: undefined }), fc.array(pod, { maxLength: 3 }), fc.boolean(),
    (rawEntries, pods, unpin, gcStale) => {
      const entries = [...new Map(rawEntries.map((e) => [e.dst, e])).values()];
      const after = applyNeigh(entries, neighbourPlan(net, { entries, ...(pods ? { pods } : {}), unpin, gcStale }));
      const claims = new Map<string, Set<string>>();
      for (const p of pods ?? []) claims.set(p.ip, (claims.get(p.ip) ?? new Set()).add(p.mac));
      for (const [i, macs] of claims) {
        if (macs.size === 1) t.deepEqual(after.get(i), { dst: i, lladdr: [...macs][0], state: ['PERMANENT'] });
        else t.deepEqual(after.get(i), entries.find((e) => e.dst === i), 'ambiguous: untouched');
      }
      for (const u of unpin) if (!claims.has(u.ip)) t.not(after.get(u.ip)?.lladdr, u.mac);
      if (gcStale && pods) for (const [i, e] of after) if (e.state?.includes('PERMANENT')) t.true(claims.has(i));
    }));
});
