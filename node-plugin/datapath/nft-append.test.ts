/**
 * The netlink helper's anti-spoofing rules against iptables-nft 1.8.9 and the real kernel (root). The
 * rule the helper appends must be iptables-nft's own: for the same (veth, IP) pairs, the chain the
 * helper appended to and the chain `iptables-nft-restore --noflush` appended to list byte for byte the
 * same (-S and iptables-nft-save), iptables-nft finds the helper's rules (-C) and deletes them (-D, as
 * PodVNet removes rules later). Then the errors callers fall back on, the datapath's use of it (only for
 * a trusted batch of adds on nft, PODVNET_NFT_APPEND=off turns it off, anything else takes
 * iptables-nft-restore), and packets: a pod whose rule the helper added cannot send with a neighbour's IP.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AntispoofRules, type RuleChange } from './antispoof.js';
import { observeCommands, runRaw } from './exec.js';
import * as dp from './index.js';
import { type AntispoofRule, encodeNftAppend, FrameReader, NetlinkHelper, NFT_APPEND_MAX, NFT_MISSING } from './netlink-helper.js';
import { createFabric } from './testing/fabric-sim.js';
import { RUN, scratchNetns } from './testing/scratch-netns.js';
import { spoofArrives, udpSink } from './testing/spoofing.js';
import type { NodeNetwork } from './types.js';

const BIN = fileURLToPath(new URL('./netlink/bin/podvnet-netlink', import.meta.url));
execFileSync('make', ['-s', '-C', fileURLToPath(new URL('./netlink', import.meta.url))]);

/** A namespace of this run (its name), removed when the test ends. */
const netns = scratchNetns('nfa');

/** A command in `ns`: its exit code and output. */
function inNs(ns: string, argv: string[], input?: string): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync('ip', ['netns', 'exec', ns, ...argv], { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const x = e as { status: number; stdout: Buffer; stderr: Buffer };
    return { code: x.status, stdout: x.stdout.toString(), stderr: x.stderr.toString() };
  }
}
const restore = (ns: string, lines: string[]) => inNs(ns, ['iptables-nft-restore', '--noflush'], ['*raw', ...lines, 'COMMIT'].join('\n') + '\n');
const ruleText = (r: AntispoofRule) => ['-m', 'physdev', '--physdev-in', r.veth, '!', '-s', `${r.ip}/32`, '-j', 'DROP'];
/** iptables-nft-save (with -c: the counters too) without its comment lines (they carry the time). */
const saved = (ns: string, ...opts: string[]) => inNs(ns, ['iptables-nft-save', ...opts]).stdout.split('\n').filter((l) => !l.startsWith('#'));

const helper = new NetlinkHelper(BIN);
test.after.always(() => helper.close());

/** Pairs a pod could have and edge cases of the encoding: short, long (15) and punctuated names, edge addresses. */
const PAIRS: AntispoofRule[] = [
  { veth: 'pvn0123456789a', ip: '10.40.8.10' },
  { veth: 'pvnffffffffffff', ip: '10.40.8.11' },
  { veth: 'a', ip: '255.255.255.255' },
  { veth: 'abcdefghijklmno', ip: '192.168.1.1' },
  { veth: 'v-e.t_h@1', ip: '0.0.0.1' },
  { veth: 'eth0', ip: '172.16.0.200' },
];

for (const chain of ['PODVNET-SRC', 'PODVNET-SRC-br-a1b2c3', 'C'.repeat(28)]) {
  test(`raw/${chain.length > 20 ? `a ${chain.length}-character chain` : chain}: the helper's rules are iptables-nft's own (-S, save, -C, -D)`, async (t) => {
    const [viaHelper, viaRestore] = [netns(t), netns(t)];
    // the same chain with the same rule already in it on both sides: appended rules go after it
    for (const ns of [viaHelper, viaRestore]) {
      t.is(restore(ns, [`:${chain} - [0:0]`, `-A ${chain} -s 10.9.9.9/32 -j ACCEPT`]).code, 0);
    }
    // one transaction for the first pairs, then one rule alone: both append
    const answers = [
      await helper.appendAntispoof(`/run/netns/${viaHelper}`, chain, PAIRS.slice(0, -1)),
      await helper.appendAntispoof(`/run/netns/${viaHelper}`, chain, PAIRS.slice(-1)),
    ];
    t.deepEqual(answers, [{ kind: 'done', code: 0, stderr: '' }, { kind: 'done', code: 0, stderr: '' }]);
    t.is(restore(viaRestore, PAIRS.slice(0, -1).map((r) => `-A ${chain} ${ruleText(r).join(' ')}`)).code, 0);
    t.is(restore(viaRestore, PAIRS.slice(-1).map((r) => `-A ${chain} ${ruleText(r).join(' ')}`)).code, 0);

    const listing = (ns: string, ...opts: string[]) => inNs(ns, ['iptables-nft', '-t', 'raw', ...opts, '-S', chain]).stdout;
    t.is(listing(viaHelper), listing(viaRestore), 'iptables-nft -S');
    t.is(listing(viaHelper, '-v'), listing(viaRestore, '-v'), 'iptables-nft -v -S (counters)');
    t.is(listing(viaHelper).split('\n').filter((l) => l.includes('--physdev-in')).length, PAIRS.length);
    t.deepEqual(saved(viaHelper), saved(viaRestore), 'iptables-nft-save');
    t.deepEqual(saved(viaHelper, '-c'), saved(viaRestore, '-c'), 'iptables-nft-save -c');
    t.true(saved(viaHelper).some((l) => l.startsWith(`-A ${chain} ! -s `)));

    for (const r of PAIRS) t.is(inNs(viaHelper, ['iptables-nft', '-t', 'raw', '-C', chain, ...ruleText(r)]).code, 0, `-C finds ${r.veth} ${r.ip}`);
    // -C tells rules apart: another address, another veth
    t.not(inNs(viaHelper, ['iptables-nft', '-t', 'raw', '-C', chain, ...ruleText({ veth: PAIRS[0]!.veth, ip: '10.40.8.99' })]).code, 0);
    t.not(inNs(viaHelper, ['iptables-nft', '-t', 'raw', '-C', chain, ...ruleText({ veth: 'pvn0123456789b', ip: PAIRS[0]!.ip })]).code, 0);

    // PodVNet removes rules later with iptables-nft-restore -D
    const del = restore(viaHelper, PAIRS.map((r) => `-D ${chain} ${ruleText(r).join(' ')}`));
    t.is(del.code, 0, del.stderr);
    t.deepEqual(listing(viaHelper).trim().split('\n'), [`-N ${chain}`, `-A ${chain} -s 10.9.9.9/32 -j ACCEPT`]);
  });
}

test(`the most one request carries, ${NFT_APPEND_MAX} rules, is one transaction listing as iptables-nft-restore's`, async (t) => {
  const [viaHelper, viaRestore] = [netns(t), netns(t)];
  for (const ns of [viaHelper, viaRestore]) t.is(restore(ns, [':PODVNET-SRC - [0:0]']).code, 0);
  const many = Array.from({ length: NFT_APPEND_MAX }, (_, i) => ({ veth: `pvn${i.toString(16).padStart(11, '0')}`, ip: `10.50.${i >> 8}.${i & 255}` }));
  t.deepEqual(await helper.appendAntispoof(`/run/netns/${viaHelper}`, 'PODVNET-SRC', many), { kind: 'done', code: 0, stderr: '' });
  t.is(restore(viaRestore, many.map((r) => `-A PODVNET-SRC ${ruleText(r).join(' ')}`)).code, 0);
  const listing = (ns: string) => inNs(ns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC']).stdout;
  t.is(listing(viaHelper).split('\n').filter((l) => l.startsWith('-A ')).length, NFT_APPEND_MAX);
  t.is(listing(viaHelper), listing(viaRestore));
});

test('a missing table or chain comes back as NFT_MISSING, with nothing appended', async (t) => {
  const empty = netns(t);
  t.like(await helper.appendAntispoof(`/run/netns/${empty}`, 'PODVNET-SRC', PAIRS.slice(0, 1)), { kind: 'done', code: NFT_MISSING });
  const other = netns(t);
  t.is(restore(other, [':OTHER - [0:0]']).code, 0);
  const a = await helper.appendAntispoof(`/run/netns/${other}`, 'PODVNET-SRC', PAIRS);
  t.like(a, { kind: 'done', code: NFT_MISSING });
  t.regex(a.kind === 'done' ? a.stderr : '', /No such file or directory/);
  t.deepEqual(inNs(other, ['iptables-nft', '-t', 'raw', '-S']).stdout.trim().split('\n'), ['-P PREROUTING ACCEPT', '-P OUTPUT ACCEPT', '-N OTHER']);
  // a namespace that cannot be entered: the helper's nsenter-like message, code 1
  t.like(await helper.appendAntispoof('/run/netns/nfa-none-' + RUN, 'PODVNET-SRC', PAIRS), { kind: 'done', code: 1 });
});

test('what the encoding does not cover is not sent: a wildcard veth, if<N>, a non-IPv4 source, too many rules, a bad chain', async (t) => {
  const ok = { veth: 'pvn0', ip: '10.0.0.1' };
  t.truthy(encodeNftAppend(1, undefined, 'PODVNET-SRC', [ok]));
  for (const rules of [[{ veth: 'pvn+', ip: '10.0.0.1' }], [{ veth: 'if12', ip: '10.0.0.1' }], [{ veth: 'a/b', ip: '10.0.0.1' }],
    [{ veth: 'abcdefghijklmnop', ip: '10.0.0.1' }], [{ veth: 'pvn0', ip: 'fd00::1' }], [{ veth: 'pvn0', ip: '10.0.0.256' }],
    [{ veth: 'pvn0', ip: '10.0.0.1/32' }], [], Array.from({ length: NFT_APPEND_MAX + 1 }, () => ok)]) {
    t.is(encodeNftAppend(1, undefined, 'PODVNET-SRC', rules), undefined, JSON.stringify(rules.slice(0, 1)));
  }
  for (const chain of ['', 'C'.repeat(29), 'A B', 'A\nB']) t.is(encodeNftAppend(1, undefined, chain, [ok]), undefined, chain);
  t.like(await helper.appendAntispoof(undefined, 'PODVNET-SRC', [{ veth: 'pvn+', ip: '10.0.0.1' }]), { kind: 'unsupported' });

  // the helper checks for itself too: a frame written by hand is refused without touching the kernel
  const ns = netns(t);
  t.is(restore(ns, [':PODVNET-SRC - [0:0]']).code, 0);
  const child = spawn(BIN, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const answers: string[] = [];
  const done = new Promise<void>((resolve) => child.stdout.on('end', resolve));
  const frames = new FrameReader();
  child.stdout.on('data', (b: Buffer) => answers.push(...frames.push(b)));
  const bodies = ['PODVNET-SRC\npvn+ 10.0.0.1\n', 'PODVNET-SRC\nif7 10.0.0.1\n', 'PODVNET-SRC\npvn0 10.0.0.1/32\n', 'PODVNET-SRC\n', 'PODVNET SRC\npvn0 10.0.0.1\n'];
  for (const [i, body] of bodies.entries()) {
    const b = Buffer.from(`${i + 1} nft /run/netns/${ns}\n${body}`);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    child.stdin.write(Buffer.concat([len, b]));
  }
  child.stdin.end();
  await done;
  t.deepEqual(answers.map((a) => a.split('\n')[0]!.replace(/^\d+ /, '')).sort(), bodies.map(() => 'unsupported 0'));
  t.deepEqual(inNs(ns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC']).stdout, '-N PODVNET-SRC\n');
});

/** A node network whose host namespace is `ns` (only the names matter to AntispoofRules). */
const nodeNet = (ns: string): NodeNetwork => ({
  bridgeName: 'podvnet0', hostInterface: 'eth0', nicMAC: '00:0d:3a:00:00:01', primaryIP: '10.41.0.4', podSubnet: '10.41.8.0/22',
  gatewayIP: '10.41.8.1', vnetPrefixes: ['10.41.0.0/16'], snat: { enabled: false, excludeCIDRs: [] }, mtu: 1400, hostNetns: ns,
});
const change = (add: boolean, n: number): RuleChange => ({ add, pod: { containerId: `c${n}-${RUN}`, ifName: 'eth0', ip: `10.41.8.${10 + n}` } });

/** Records the commands (and helper steps) run while `fn` runs; nothing else runs in this test file meanwhile. */
async function steps(t: ExecutionContext, fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  observeCommands((argv) => seen.push(argv.join(' ')));
  t.teardown(() => observeCommands(undefined));
  try { await fn(); } finally { observeCommands(undefined); }
  return seen;
}
const kinds = (seen: string[]) => seen.map((s) => (s.startsWith('nft-append ') ? 'nft-append' : s.startsWith('iptables-nft-restore') ? 'restore' : s.startsWith('iptables-nft ') && s.includes(' -S ') ? 'read' : 'other'));

test.serial('AntispoofRules: only a trusted batch of adds on nft goes to the helper; the rest, and every refusal, to iptables-nft-restore', async (t) => {
  const ns = netns(t);
  const net = nodeNet(ns);
  const rules = new AntispoofRules();
  const chainLines = () => inNs(ns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC']).stdout.split('\n').filter((l) => l.startsWith('-A '));
  await rules.rebuild(net, 'nft', []);
  t.deepEqual(kinds(await steps(t, () => rules.apply(net, 'nft', [change(true, 0), change(true, 1)]))), ['nft-append'], 'trusted adds: the helper, no read');
  t.is(chainLines().length, 2);
  t.deepEqual(kinds(await steps(t, () => rules.apply(net, 'nft', [change(true, 2), change(false, 0)]))), ['restore'], 'a removal in the batch: iptables-nft-restore');
  process.env.PODVNET_NFT_APPEND = 'off';
  try {
    t.deepEqual(kinds(await steps(t, () => rules.apply(net, 'nft', [change(true, 3)]))), ['restore'], 'PODVNET_NFT_APPEND=off');
  } finally {
    delete process.env.PODVNET_NFT_APPEND;
  }
  rules.forget();
  t.deepEqual(kinds(await steps(t, () => rules.apply(net, 'nft', [change(true, 4)]))), ['read', 'restore'], 'an untrusted model reads the chain and restores');
  t.deepEqual(kinds(await steps(t, () => rules.apply(net, 'nft', [change(true, 5)]))), ['nft-append'], 'trusted again');
  t.deepEqual(chainLines().map((l) => /! -s (\S+)/.exec(l)?.[1]), [1, 2, 3, 4, 5].map((n) => `10.41.8.${10 + n}/32`));

  // The chain went away under a trusted model: the helper says so, iptables-nft-restore fails the same
  // way, the chain is read and the error is the one callers have always had.
  t.is(inNs(ns, ['sh', '-c', 'iptables-nft -t raw -F PODVNET-SRC && iptables-nft -t raw -X PODVNET-SRC']).code, 0);
  let error: Error | undefined;
  const seen = await steps(t, async () => { error = await t.throwsAsync(rules.apply(net, 'nft', [change(true, 6)])); });
  t.regex(error?.message ?? '', /raw\/PODVNET-SRC is missing: run ensureNode/);
  t.deepEqual(kinds(seen), ['nft-append', 'restore', 'read']);
});

test.serial('pods attached through the datapath get their rule from the helper; a spoofed source is dropped, the own IP passes, DEL removes the rule', async (t) => {
  const f = await createFabric({ vnetPrefixes: ['10.42.0.0/16'], subnets: ['10.42.0.0/24', '10.42.8.0/22'] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:42:00:04', primaryIP: '10.42.0.4' });
  const podIPs = ['10.42.8.10', '10.42.8.11', '10.42.8.12'];
  await f.setNicIPs('n1', podIPs);
  const net = vm.nodeNetwork({ podSubnet: '10.42.8.0/22' });
  await dp.ensureNode(net);
  const pods = await Promise.all(podIPs.map(async (ip, i) => {
    const ns = await f.addNetns(`nfa${i}`);
    return { ns, spec: { containerId: `nfa-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 } as dp.PodInterface };
  }));
  const seen = await steps(t, async () => { for (const p of pods) await dp.attachPod(net, p.spec); });
  t.is(kinds(seen).filter((k) => k === 'nft-append').length, pods.length, seen.join('\n'));
  t.deepEqual(kinds(seen).filter((k) => k === 'restore' || k === 'read'), [], 'no iptables-nft process for the rules');
  for (const p of pods) await t.notThrowsAsync(dp.checkPod(net, p.spec));

  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  await runRaw(a.ns, ['ip', 'addr', 'add', `${b.spec.ip}/32`, 'dev', 'eth0']);
  for (const [i, x] of [{ what: 'another pod', ns: c.ns, ip: c.spec.ip }, { what: 'the node', ns: vm.netns, ip: '10.42.0.4' }].entries()) {
    const sink = udpSink(t, x.ns, 9996);
    const r = await spoofArrives(a.ns, b.spec.ip, a.spec.ip, sink, x.ip, 9996, `nfa${i}`);
    t.true(r.own, `${x.what}: the pod's own IP gets through`);
    t.false(r.spoofed, `${x.what}: the spoofed source is dropped`);
  }

  await dp.detachPod(net, { containerId: a.spec.containerId, ifName: 'eth0', ip: a.spec.ip });
  await dp.retiredVethsDeleted(net);
  const left = (await runRaw(vm.netns, ['iptables-nft', '-t', 'raw', '-S', 'PODVNET-SRC'])).stdout;
  t.false(left.includes(dp.hostVethName(a.spec.containerId, 'eth0')), 'the helper\'s rule was deleted');
  t.is(left.split('\n').filter((l) => l.startsWith('-A ')).length, 2);
});

test('PODVNET_NETLINK=off and PODVNET_NFT_APPEND=off each turn the helper\'s rule path off (a fresh agent process)', (t) => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const probe = [
    "import { nftAppendAntispoof } from './node-plugin/datapath/exec.js';",
    "const p = nftAppendAntispoof('/run/netns/nfa-none-probe', 'PODVNET-SRC', [{ veth: 'pvn0', ip: '10.0.0.1' }]);",
    "console.log(p === undefined ? 'off' : (await p).kind);",
  ].join('\n');
  const run = (env: Record<string, string>) => execFileSync(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', '--input-type=module', '-e', probe],
    { cwd: root, env: { ...process.env, PODVNET_NETLINK: '', PODVNET_NFT_APPEND: '', ...env } }).toString().trim();
  t.is(run({}), 'done', 'on by default: the helper answers (here: the namespace cannot be entered)');
  t.is(run({ PODVNET_NETLINK: 'off' }), 'off');
  t.is(run({ PODVNET_NFT_APPEND: 'off' }), 'off');
});
