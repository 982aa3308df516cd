/**
 * The netlink helper against the real `ip` (iproute2 6.1) and the real kernel (root): the same batches
 * run through `ip -batch -` in one pair of throwaway namespaces and through the helper in an identical
 * pair must give the same exit code, the same stderr and the same resulting links, routes, neighbours
 * and addresses. The batches are the lines the datapath generates (plan.ts, kernel-errors.ts,
 * link-removals.ts) and each failure callers tell apart. Then the adapter: lines outside the subset run
 * nothing, requests run concurrently, a dead helper fails its batches and is started again, and exec.ts
 * sends `ip -batch` to it (falling back to `ip` for unsupported lines).
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { neighDelStep } from './kernel-errors.js';
import { encodeRequest, FrameReader, NetlinkHelper, parseResponse } from './netlink-helper.js';
import { attachHostLines, attachHostOnlyLines, attachPodLines, detachLines, neighLine, neighbourPlan } from './plan.js';
import { observeCommands, runRaw } from './exec.js';
import { RUN, scratchNetns } from './testing/scratch-netns.js';
import type { NodeNetwork, PodInterface } from './types.js';

const BIN = fileURLToPath(new URL('./netlink/bin/podvnet-netlink', import.meta.url));
execFileSync('make', ['-s', '-C', fileURLToPath(new URL('./netlink', import.meta.url))]);

const scratch = scratchNetns('nlh');
/** A namespace of this run (its path), removed when the test ends. */
const netns = (t: ExecutionContext): string => `/run/netns/${scratch(t)}`;

const sh = (ns: string, argv: string[]) => execFileSync('nsenter', [`--net=${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** The reference: real `ip [-force] -batch -` in `ns`, as exec.ts runs it. */
function ipBatch(ns: string, force: boolean, input: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=${ns}`, '--', 'ip', ...(force ? ['-force'] : []), '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    c.on('error', reject);
    c.stdin.on('error', () => { /* it may exit before reading all: its exit code tells */ });
    c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    c.stdin.end(input);
  });
}

const helper = new NetlinkHelper(BIN);
test.after.always(() => helper.close());

/** The state a batch leaves, without what differs between two namespaces (indices, namespace ids). */
function state(ns: string): unknown {
  const j = (args: string[]) => JSON.parse(sh(ns, ['ip', '-j', ...args]) || '[]') as Array<Record<string, any>>;
  return {
    links: j(['-d', 'link', 'show']).map((l) => ({
      // (a bridge without ports has a random MAC)
      ifname: l.ifname, mtu: l.mtu, address: l.linkinfo?.info_kind === 'bridge' ? undefined : l.address, up: (l.flags as string[]).includes('UP'), master: l.master,
      // (not the port's STP state or the carrier: they follow the peer's carrier, which comes up at its own time)
      alias: l.ifalias, group: l.group, kind: l.linkinfo?.info_kind, hairpin: l.linkinfo?.info_slave_data?.hairpin,
    })),
    routes: j(['route', 'show', 'table', 'all']).filter((r) => r.table !== 'local')
      .map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, metric: r.metric, flags: (r.flags as string[]).filter((f) => f !== 'linkdown'), scope: r.scope, protocol: r.protocol })),
    neighbours: j(['neigh', 'show', 'nud', 'permanent']).map((n) => ({ dst: n.dst, dev: n.dev, lladdr: n.lladdr, state: n.state })),
    addresses: j(['-4', 'addr', 'show']).map((a) => ({ ifname: a.ifname, addr: (a.addr_info as Array<Record<string, unknown>>).map((i) => [i.local, i.prefixlen, i.scope]) })),
  };
}

interface Case {
  /** Runs in each side's fresh namespaces (`host`, `pod`) before the batch, with plain `ip`. */
  setup?: (host: string, pod: string) => void;
  /** The batch, given the side's pod namespace path (a veth's peer goes there). */
  lines: (pod: string) => string[];
  force: boolean;
  /** Where the batch runs: the side's host namespace (default) or its pod namespace. */
  inPod?: boolean;
}

/** Runs a case through ip and through the helper; asserts both said and did the same; returns ip's answer. */
async function same(t: ExecutionContext, c: Case): Promise<{ code: number; stderr: string }> {
  const sides = [0, 1].map(() => ({ host: netns(t), pod: netns(t) }));
  for (const s of sides) c.setup?.(s.host, s.pod);
  const at = (s: { host: string; pod: string }) => (c.inPod ? s.pod : s.host);
  const input = (s: { pod: string }) => c.lines(s.pod).join('\n') + '\n';
  const ref = await ipBatch(at(sides[0]!), c.force, input(sides[0]!));
  const got = await helper.run(at(sides[1]!), c.force, input(sides[1]!));
  t.deepEqual(got, { kind: 'done', ...ref }, `ip said ${JSON.stringify(ref)}`);
  t.deepEqual(state(sides[1]!.host), state(sides[0]!.host), 'same host namespace state');
  t.deepEqual(state(sides[1]!.pod), state(sides[0]!.pod), 'same pod namespace state');
  return ref;
}

const net: NodeNetwork = {
  bridgeName: 'br0', hostInterface: 'eth0', nicMAC: '00:0d:3a:00:00:01', primaryIP: '10.40.0.4', podSubnet: '10.40.8.0/22',
  gatewayIP: '10.40.8.1', vnetPrefixes: ['10.40.0.0/16'], snat: { enabled: false, excludeCIDRs: [] }, mtu: 1400,
};
const pod = (podNs: string, n = 0): PodInterface => ({ containerId: `c${n}-${RUN}`, netnsPath: podNs, ifName: 'eth0', ip: `10.40.8.${10 + n}`, prefixLength: 22 });
const bridge = (host: string) => { sh(host, ['ip', 'link', 'add', 'br0', 'type', 'bridge']); sh(host, ['ip', 'link', 'set', 'br0', 'up']); };
const hostVeth = (podNs: string, n = 0) => /^link add (\S+)/.exec(attachHostLines(net, pod(podNs, n))[0]!)![1]!;
/** A pod attached with real ip (setup): its host lines in `host`, its pod lines in `pod`. */
const attached = (host: string, podNs: string, n = 0) => {
  execFileSync('ip', ['-n', host.slice('/run/netns/'.length), '-batch', '-'], { input: attachHostLines(net, pod(podNs, n)).join('\n') + '\n' });
  execFileSync('ip', ['-n', podNs.slice('/run/netns/'.length), '-batch', '-'], { input: attachPodLines(net, pod(podNs, n)).join('\n') + '\n' });
};

test('an ADD: the host batch and the pod batch of plan.ts do what ip does', async (t) => {
  const r = await same(t, { setup: bridge, lines: (p) => attachHostLines(net, pod(p)), force: false });
  t.is(r.code, 0);
  await same(t, {
    setup: (h, p) => { bridge(h); execFileSync('ip', ['-n', h.slice(11), '-batch', '-'], { input: attachHostLines(net, pod(p)).join('\n') + '\n' }); },
    lines: (p) => attachPodLines(net, pod(p)), force: false, inPod: true,
  });
  // Docker's runtime: the container end stays in the host namespace under its own name
  await same(t, { setup: bridge, lines: (p) => attachHostOnlyLines(net, pod(p), 'pvtmp0'), force: false });
});

test('a repeated ADD: the existing veth and the existing address fail as ip fails, and the batch stops', async (t) => {
  const host = await same(t, { setup: (h, p) => { bridge(h); attached(h, p); }, lines: (p) => attachHostLines(net, pod(p)), force: false });
  t.regex(host.stderr, /^RTNETLINK answers: File exists\nCommand failed -:1\n$/);
  const inPod = await same(t, { setup: (h, p) => { bridge(h); attached(h, p); }, lines: (p) => attachPodLines(net, pod(p)), force: false, inPod: true });
  t.is(inPod.code, 1);
  t.regex(inPod.stderr, /Command failed -:2/);
});

test('a missing bridge (master) and a missing pod namespace end ip with its argument errors', async (t) => {
  const noBridge = await same(t, { lines: (p) => [...attachHostLines(net, pod(p)), 'link set dev lo up'], force: true });
  t.is(noBridge.code, 255);
  t.is(noBridge.stderr, 'Error: argument "br0" is wrong: Device does not exist\n\n');
  const noNs = await same(t, { setup: bridge, lines: () => attachHostLines(net, pod(`/run/netns/nlh${RUN}-absent`)), force: true });
  t.is(noNs.code, 255);
});

test('every failure a removal tells apart, with -force: messages, Command failed lines and the final outcome', async (t) => {
  const lines = (p: string) => [
    ...detachLines(net, pod(p, 1), '10.40.8.11'),              // nothing of pod 1 exists: route and veth missing
    `link set dev ${hostVeth(p, 0)} group 1234567890`,
    `link set dev ${hostVeth(p, 1)} group 1234567890`,          // missing device
    'link del group 1234567890',
    'link del group 1234567891',                                 // empty group
    'route del 10.40.8.99/32 dev br0 metric 5',                  // missing route
    'route del 10.40.8.99/32 dev nobr0 metric 5',                // missing bridge
    `neigh del 10.40.8.98 dev nobr0`,                            // missing bridge: Command failed, goes on
    'link set dev nodev0 alias \'x\'',
    'link set dev nodev0 type bridge_slave hairpin on',
    'link set dev nodev0 type bridge_slave state 0',
    'link set dev lo type bridge_slave hairpin on',              // not a bridge port
    'link set dev nodev0 up',
    `neigh del 10.40.8.97 dev br0`,                              // no entry: ends ip (exit 2)
    'link set dev lo up',
  ];
  const r = await same(t, { setup: (h, p) => { bridge(h); attached(h, p, 0); }, lines, force: true });
  t.is(r.code, 2);
  t.regex(r.stderr, /^RTNETLINK answers: No such file or directory\n$/m);
});

test('routes: a missing route, an empty main table, a device that is down, a bad gateway', async (t) => {
  await same(t, { lines: () => ['route del 10.40.8.99/32 dev lo metric 5', 'route add 10.40.8.99/32 dev lo metric 5', 'route add 10.40.8.99/32 dev lo metric 5', 'route replace 10.40.8.99/32 dev lo metric 5', 'route del 10.40.8.99/32 dev lo metric 6', 'route del 10.40.8.99/32 dev lo metric 5'], force: true });
  const r = await same(t, {
    setup: (h, p) => { bridge(h); execFileSync('ip', ['-n', h.slice(11), '-batch', '-'], { input: attachHostLines(net, pod(p)).join('\n') + '\n' }); },
    lines: () => [
      'route replace default via 10.40.8.1 dev eth0 onlink',     // eth0 is down
      'addr add 10.40.8.10/22 dev eth0',
      'link set dev eth0 up',
      'route replace default via 10.40.8.10 dev eth0 onlink',    // its own address
      'route replace default via 10.40.8.1 dev eth0 onlink',
      'route replace default via 10.40.8.1 dev eth1 onlink',     // no such device
    ],
    force: true, inPod: true,
  });
  t.regex(r.stderr, /^Error: Nexthop device is not up\.$/m);
  t.regex(r.stderr, /^Error: Nexthop has invalid gateway\.$/m);
});

test('neighbours: pinned, re-pinned, removed, and a missing one ends ip', async (t) => {
  const entries = [{ dst: '10.40.8.10', lladdr: '02:00:00:00:00:01', state: ['STALE'] }];
  await same(t, {
    setup: bridge,
    lines: (p) => [neighLine(net, pod(p)), neighLine(net, pod(p)), ...neighbourPlan(net, { entries, pods: [{ ip: '10.40.8.20', mac: '02:00:00:00:00:09' }], unpin: [{ ip: '10.40.8.10', mac: '02:00:00:00:00:01' }] })],
    force: false,
  });
  const gone = await same(t, { setup: bridge, lines: () => [neighDelStep('10.40.8.10', 'br0').line, 'link set dev lo up'], force: true });
  t.deepEqual({ code: gone.code, stderr: gone.stderr }, { code: 2, stderr: 'RTNETLINK answers: No such file or directory\n' });
});

test('quoting as ip splits it: quotes of the other kind inside, adjacent words, empty and blank lines', async (t) => {
  await same(t, {
    setup: (h, p) => { bridge(h); attached(h, p); },
    lines: (p) => [
      `link set dev ${hostVeth(p)} alias 'a "quoted" alias'`,
      '',
      '   ',
      `link set dev ${hostVeth(p)} alias "it's"`,
      `link set dev ${hostVeth(p)} alias 'x'up`,
      `link set dev ${hostVeth(p)} alias ''`,
      `\tlink   set dev ${hostVeth(p)}  type bridge_slave state 3 hairpin off\r`,
      `link set dev ${hostVeth(p)} down`,
      'link set dev nodev0 up',
    ],
    force: true,
  });
});

test('a DEL in the pod namespace: the interface taken down and renamed out of the way, and each way it fails', async (t) => {
  const r = await same(t, {
    setup: (h, p) => { bridge(h); attached(h, p); },
    lines: () => [
      'link set dev eth0 down',
      'link set dev eth0 name lo',       // taken
      'link set dev eth0 name pvr0',
      'link set dev pvr0 name pvr0',     // its own name
      'link set dev eth0 name pvr1',     // gone
      'link set dev eth0 down',
    ],
    force: true, inPod: true,
  });
  t.is(r.stderr, 'RTNETLINK answers: File exists\nCommand failed -:2\nCannot find device "eth0"\nCommand failed -:5\nCannot find device "eth0"\nCommand failed -:6\n');
});

test('a device deleted earlier in the same batch is looked up again', async (t) => {
  await same(t, {
    setup: (h, p) => { bridge(h); attached(h, p); },
    lines: (p) => [`link del dev ${hostVeth(p)}`, `link set dev ${hostVeth(p)} up`, `link del dev ${hostVeth(p)}`, ...detachLines(net, pod(p), '10.40.8.10')],
    force: true,
  });
});

test('a namespace that cannot be entered fails as nsenter does', async (t) => {
  const absent = `/run/netns/nlh${RUN}-absent`;
  const ref = await ipBatch(absent, false, 'link set dev lo up\n');
  t.deepEqual(await helper.run(absent, false, 'link set dev lo up\n'), { kind: 'done', ...ref });
  const notNs = await ipBatch('/etc/hostname', false, 'link set dev lo up\n');
  t.deepEqual(await helper.run('/etc/hostname', false, 'link set dev lo up\n'), { kind: 'done', ...notNs });
});

test('a batch with any line outside the subset runs none of it', async (t) => {
  const host = netns(t);
  bridge(host);
  for (const bad of ['link set dev lo mtu 1500', 'link add x type dummy', 'link set dev br0 alias \'unterminated', 'route add 10.1.0.0/16 via 10.0.0.1 table 5',
    'neigh replace fe80::1 lladdr 02:00:00:00:00:01 dev br0', 'link set dev lo up # comment', 'link set dev if7 up', 'link set lo up', 'addr add 10.1.2.3/24 dev br0 brd +',
    'link set dev br0 type bridge_slave state disabled', 'link set dev br0 name x/y']) {
    const a = await helper.run(host, false, `link set dev br0 alias 'touched'\n${bad}\n`);
    t.is(a.kind, 'unsupported', bad);
  }
  t.false(sh(host, ['ip', 'link', 'show', 'br0']).includes('touched'));
});

test('requests run concurrently: a slow batch does not hold up another', async (t) => {
  const host = netns(t);
  const pods = Array.from({ length: 20 }, () => netns(t));
  bridge(host);
  pods.forEach((p, i) => attached(host, p, i));
  const order: string[] = [];
  const slow = helper.run(host, true, pods.map((p, i) => `link del dev ${hostVeth(p, i)}`).join('\n') + '\n').then((a) => { order.push('slow'); return a; });
  const quick = helper.run(host, false, 'link set dev nope x\n').then((a) => { order.push('quick'); return a; });
  t.deepEqual((await slow), { kind: 'done', code: 0, stderr: '' });
  t.is((await quick).kind, 'unsupported');
  t.deepEqual(order, ['quick', 'slow']);
});

test('a helper that dies fails the batches it was running, and the next batch starts a new one', async (t) => {
  const own = new NetlinkHelper(BIN);
  t.teardown(() => own.close());
  const host = netns(t);
  t.deepEqual(await own.run(host, false, 'link set dev lo up\n'), { kind: 'done', code: 0, stderr: '' });
  const pid = own.pid!;
  process.kill(pid, 'SIGSTOP'); // it cannot answer before it dies
  const running = own.run(host, false, 'link set dev lo up\n');
  process.kill(pid, 'SIGKILL');
  const e = await t.throwsAsync(running);
  t.regex(e!.message, /netlink helper .* while running this batch; it may have run in part/);
  t.deepEqual(await own.run(host, false, 'link set dev lo down\n'), { kind: 'done', code: 0, stderr: '' });
  t.not(own.pid, pid);
});

test('a helper that cannot start sends every batch to ip', async (t) => {
  const none = new NetlinkHelper('/nonexistent/podvnet-netlink');
  const a = await none.run(undefined, false, 'link set dev lo up\n');
  t.is(a.kind, 'unavailable');
});

test('exec.ts: ip -batch goes to the helper (same argv for the observer), unsupported lines to ip', async (t) => {
  const host = netns(t);
  const seen: string[] = [];
  observeCommands((argv) => seen.push(argv.join(' ')));
  t.teardown(() => observeCommands(undefined));
  t.deepEqual(await runRaw(host, ['ip', '-batch', '-'], 'link add d0 type bridge\nlink set dev d0 up\n'), { stdout: '', stderr: '', code: 0 });
  const viaHelper = await runRaw(host, ['ip', '-force', '-batch', '-'], 'link set dev d0 group 7\nlink del dev d0\nlink del dev d0\n');
  t.deepEqual(viaHelper, { stdout: '', stderr: 'Cannot find device "d0"\nCommand failed -:3\n', code: 1 });
  t.deepEqual(seen, ['ip -batch -', 'ip -force -batch -']);
});

test('frames and responses are parsed strictly', (t) => {
  const f = encodeRequest(7, '/run/netns/x', true, 'link set dev lo up\n')!;
  t.is(f.readUInt32LE(0), f.length - 4);
  t.is(f.subarray(4).toString(), '7 1 /run/netns/x\nlink set dev lo up\n');
  t.is(encodeRequest(1, 'relative/ns', false, ''), undefined);
  t.is(encodeRequest(1, '/a\nb', false, ''), undefined);
  t.is(encodeRequest(1, undefined, false, 'a\0b'), undefined);
  const r = new FrameReader();
  const frame = (s: string) => { const b = Buffer.from(s); const h = Buffer.alloc(4); h.writeUInt32LE(b.length); return Buffer.concat([h, b]); };
  const two = Buffer.concat([frame('1 done 0\n'), frame('2 done 1\nCannot find device "x"\nCommand failed -:1\n')]);
  t.deepEqual(r.push(two.subarray(0, 5)), []);
  t.deepEqual(r.push(two.subarray(5)).map(parseResponse), [
    { id: 1, answer: { kind: 'done', code: 0, stderr: '' } },
    { id: 2, answer: { kind: 'done', code: 1, stderr: 'Cannot find device "x"\nCommand failed -:1\n' } },
  ]);
  t.deepEqual(parseResponse('3 unsupported 0\nline 1: unsupported command'), { id: 3, answer: { kind: 'unsupported', reason: 'line 1: unsupported command' } });
  for (const bad of ['', '1 done\n', 'x done 0\n', '1 maybe 0\n', '1 done 256\n', '1 done 0']) t.throws(() => parseResponse(bad), { message: /malformed/ }, bad);
  t.throws(() => new FrameReader(10).push(frame('12345678901')), { message: /too large/ });
  t.true(existsSync(BIN));
});
