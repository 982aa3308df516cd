/**
 * The datapath as the DaemonSet runs it, against the real kernel (root only, like datapath.test.ts).
 *
 * Each test starts unprivileged.fixture.ts as a container runtime would start the agent container:
 * inside a simulated VM's network namespace (the agent is on the host network, so hostNetns is unset and
 * the production code paths run), in its own mount namespace where /proc/sys is read-only (what runtimes
 * do to every unprivileged container) and the DaemonSet's hostPath /proc/sys/net is bind-mounted at the
 * DaemonSet's mountPath under a temporary root, with no_new_privs and the capability bounding set (hence
 * the permitted and effective sets of uid 0) cut to exactly what the built DaemonSet grants.
 *
 * What it shows: the DaemonSet's set is enough for ensureNode, attachPod (traffic flows), detachPod and
 * teardownNode, with either iptables backend; with the default procSysRoot the agent fails with the
 * clear read-only error; and without any one of the capabilities it fails, so each one is needed.
 * Every test removes its namespaces (fabric), its mount namespace (the fixture exits) and its directory.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build, find } from '../../deploy/testing/manifests.js';
import { run } from './exec.js';
import { createFabric, type SimVM } from './testing/fabric-sim.js';
import type { NodeDiagnostics, NodeNetwork, PodInterface } from './index.js';
import { pingEventually } from './testing/testkit.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const FIXTURE = join(HERE, 'testing', 'unprivileged.fixture.ts');

const VNET = ['10.30.0.0/16'];
const NODE_SUBNET = '10.30.0.0/24';
const POD_SUBNET = '10.30.8.0/22';

/** capabilities(7) numbers, for the expected CapEff mask. */
const CAP_BITS: Record<string, number> = {
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8,
  NET_BIND_SERVICE: 10, NET_BROADCAST: 11, NET_ADMIN: 12, NET_RAW: 13, IPC_LOCK: 14, SYS_MODULE: 16, SYS_RAWIO: 17,
  SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_ADMIN: 21, SYS_BOOT: 22, SYS_NICE: 23, SYS_RESOURCE: 24, SYS_TIME: 25, MKNOD: 27,
  AUDIT_WRITE: 29, SETFCAP: 31, BPF: 39, PERFMON: 38,
};

interface AgentContainer { add: string[]; drop: string[]; procSysRoot: string; hostPath: string; mountPath: string; securityContext: Record<string, unknown> }

/** The agent container of the built base DaemonSet: capabilities, --proc-sys-root and the mount under it. */
function daemonSetAgent(): AgentContainer {
  const spec = find(build('deploy/base'), 'DaemonSet', 'podvnet-node').spec.template.spec;
  const agent = (spec.containers as Array<Record<string, any>>).find((c) => c.name === 'agent')!;
  const arg = (agent.args as string[]).find((a) => a.startsWith('--proc-sys-root='));
  if (!arg) throw new Error('the agent has no --proc-sys-root');
  const procSysRoot = arg.slice('--proc-sys-root='.length);
  const mount = (agent.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.mountPath === `${procSysRoot}/net`);
  if (!mount) throw new Error(`nothing is mounted at ${procSysRoot}/net`);
  const volume = (spec.volumes as Array<Record<string, any>>).find((v) => v.name === mount.name);
  return {
    add: agent.securityContext.capabilities?.add ?? [],
    drop: agent.securityContext.capabilities?.drop ?? [],
    procSysRoot,
    hostPath: volume?.hostPath?.path,
    mountPath: mount.mountPath,
    securityContext: agent.securityContext,
  };
}

type Reply = { ok: true; result: any } | { ok: false; name: string; message: string };

interface Container {
  call(req: Record<string, unknown>): Promise<Reply>;
  /** Like call, but throws the fixture's error. */
  must<T = any>(req: Record<string, unknown>): Promise<T>;
  /** The DaemonSet's procSysRoot as this container sees it (under its temporary root). */
  procSysRoot: string;
}

/**
 * Starts the fixture the way a runtime starts the agent container on the VM: in the VM's netns, a private
 * mount namespace with /proc/sys read-only and the hostPath mounted, capabilities bounded to `caps`.
 */
async function startContainer(t: ExecutionContext, vm: SimVM, ds: AgentContainer, caps: string[]): Promise<Container> {
  const dir = await mkdtemp(join(tmpdir(), 'podvnet-unpriv-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const target = join(dir, ds.mountPath);
  await mkdir(target, { recursive: true });
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const setup = [
    'set -e',
    'mount --bind "$1" "$2"',
    'mount --bind /proc/sys /proc/sys',
    'mount -o remount,bind,ro /proc/sys',
    'caps=$3; shift 3',
    'exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set="$caps" -- "$@"',
  ].join('\n');
  const child = spawn('nsenter', [`--net=${vm.netnsPath}`, '--', 'unshare', '--mount', '--propagation', 'private', '--',
    'sh', '-c', setup, 'sh', ds.hostPath, target, bounding,
    process.execPath, '--loader', 'ts-node/esm', '--no-warnings', FIXTURE], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const waiting: Array<{ resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  const exited = new Promise<void>((resolve) => child.on('exit', () => {
    for (const w of waiting.splice(0)) w.reject(new Error(`the container exited: ${stderr.trim()}`));
    resolve();
  }));
  t.teardown(async () => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.resolve(JSON.parse(line) as Reply));
  const call = (req: Record<string, unknown>) => new Promise<Reply>((resolve, reject) => {
    waiting.push({ resolve, reject });
    child.stdin.write(`${JSON.stringify(req)}\n`);
  });
  const must = async (req: Record<string, unknown>) => {
    const r = await call(req);
    if (!r.ok) throw new Error(`${req.op}: ${r.name}: ${r.message}`);
    return r.result;
  };
  return { call, must, procSysRoot: join(dir, ds.procSysRoot) };
}

let seq = 0;
async function setUp(t: ExecutionContext) {
  const f = await createFabric({ vnetPrefixes: VNET, subnets: [NODE_SUBNET, POD_SUBNET] });
  t.teardown(() => f.destroy());
  const vm = await f.addVM({ name: 'n1', mac: '00:0d:3a:00:00:04', primaryIP: '10.30.0.4' });
  await f.setNicIPs('n1', ['10.30.8.10', '10.30.8.11']);
  // The agent runs in the node's namespace: no hostNetns (the production code paths).
  const { hostNetns: _, ...net } = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  const pods: PodInterface[] = [];
  for (const ip of ['10.30.8.10', '10.30.8.11']) {
    const ns = await f.addNetns(`p${seq++}`);
    pods.push({ containerId: `ctr-${ns}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip, prefixLength: 22 });
  }
  // A fresh namespace forwards nothing; make it explicit, so the test sees the agent's write.
  await run(vm.netns, ['sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward']);
  return { f, vm, net: net as NodeNetwork, pods };
}

const sysctlIn = async (vm: SimVM, key: string): Promise<string> => (await run(vm.netns, ['cat', `/proc/sys/${key}`])).trim();
const linksIn = async (vm: SimVM): Promise<string[]> =>
  (JSON.parse(await run(vm.netns, ['ip', '-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname).sort();

/** kubelet's marker chain in the legacy tables: the node's kube-proxy uses iptables-legacy. */
const useLegacy = (vm: SimVM) => run(vm.netns, ['iptables-legacy', '-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);

/**
 * The agent's whole life on a node: set up, two pods that talk to each other and to the node, take them
 * down, tear down. Returns the first step that failed, or undefined.
 */
async function lifecycle(c: Container, vm: SimVM, net: NodeNetwork, pods: PodInterface[]): Promise<{ step: string; message: string } | undefined> {
  const step = async (name: string, req: Record<string, unknown>) => {
    const r = await c.call(req);
    return r.ok ? undefined : { step: name, message: `${r.name}: ${r.message}` };
  };
  const fail = (await step('ensureNode', { op: 'ensureNode', net }))
    ?? (await step('attachPod', { op: 'attachPod', net, pod: pods[0] }))
    ?? (await step('attachPod', { op: 'attachPod', net, pod: pods[1] }));
  if (fail) return fail;
  const [a, b] = pods.map((p) => p.netnsPath);
  if (!(await pingEventually(a!, pods[1]!.ip))) return { step: 'ping', message: 'pod a cannot reach pod b' };
  if (!(await pingEventually(b!, pods[0]!.ip))) return { step: 'ping', message: 'pod b cannot reach pod a' };
  if (!(await pingEventually(a!, vm.primaryIP))) return { step: 'ping', message: 'pod a cannot reach its node' };
  const problems = (await c.must<NodeDiagnostics>({ op: 'diagnostics', net })).problems;
  if (problems.length) return { step: 'diagnostics', message: problems.join('; ') };
  return (await step('detachPod', { op: 'detachPod', net, ref: { containerId: pods[0]!.containerId, ifName: 'eth0', ip: pods[0]!.ip } }))
    ?? (await step('detachPod', { op: 'detachPod', net, ref: { containerId: pods[1]!.containerId, ifName: 'eth0', ip: pods[1]!.ip } }))
    ?? (await step('teardownNode', { op: 'teardownNode', net }));
}

test('the DaemonSet grants the agent capabilities, not privileged, and mounts the host\'s /proc/sys/net under its procSysRoot', (t) => {
  const ds = daemonSetAgent();
  t.is(ds.securityContext.privileged, false);
  t.is(ds.securityContext.allowPrivilegeEscalation, false);
  t.deepEqual(ds.drop, ['ALL']);
  t.true(ds.add.length > 0);
  for (const c of ds.add) t.true(c in CAP_BITS, `unknown capability ${c}`);
  t.is(ds.hostPath, '/proc/sys/net');
  t.not(ds.procSysRoot, '/proc/sys', '/proc/sys is read-only in the container');
});

test('with exactly the DaemonSet\'s capabilities the agent sets up the node, serves pods and tears down, with either iptables backend', async (t) => {
  const ds = daemonSetAgent();
  const { vm, net, pods } = await setUp(t);
  const c = await startContainer(t, vm, ds, ds.add);
  const mask = ds.add.reduce((m, cap) => m | (1n << BigInt(CAP_BITS[cap]!)), 0n);
  t.is(BigInt(`0x${await c.must<string>({ op: 'capabilities' })}`), mask, 'the container holds exactly the DaemonSet\'s capabilities');
  await c.must({ op: 'configure', procSysRoot: c.procSysRoot });

  t.is(await lifecycle(c, vm, net, pods), undefined, 'nf_tables node');
  t.is(await sysctlIn(vm, 'net/ipv4/ip_forward'), '1', 'written through the /proc/sys/net mount, in the node\'s namespace');
  t.deepEqual(await linksIn(vm), ['eth0', 'lo'], 'teardown left nothing');

  await useLegacy(vm);
  await c.must({ op: 'ensureNode', net });
  t.regex(await run(vm.netns, ['iptables-legacy-save', '-t', 'nat']), /-A POSTROUTING .*-j PODVNET-SNAT/, 'chains where kube-proxy (legacy) has its own');
  t.is(await sysctlIn(vm, `net/ipv4/conf/${net.bridgeName}/proxy_arp`), '1');
  t.is(await lifecycle(c, vm, net, pods), undefined, 'iptables-legacy node');
  t.deepEqual(await linksIn(vm), ['eth0', 'lo']);
  t.notRegex(await run(vm.netns, ['iptables-legacy-save']), /PODVNET/);
});

test('with the default procSysRoot (/proc/sys, read-only in a container) ensureNode fails with what to mount and set', async (t) => {
  const ds = daemonSetAgent();
  const { vm, net } = await setUp(t);
  const c = await startContainer(t, vm, ds, ds.add);
  const r = await c.call({ op: 'ensureNode', net });
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.name, 'SysctlError');
  t.regex(r.message, /cannot set net\/ipv4\/ip_forward=1 \(\/proc\/sys\/net\/ipv4\/ip_forward\): EROFS: \/proc\/sys is read-only in this container; mount the host's \/proc\/sys\/net at \/host\/proc\/sys\/net .*set procSysRoot/);
  t.is(await sysctlIn(vm, 'net/ipv4/ip_forward'), '0', 'nothing written');
  // /readyz says so too, then the node comes back clean.
  const d = await c.must<NodeDiagnostics>({ op: 'diagnostics', net });
  t.true(d.problems.some((p) => /ip_forward is 0/.test(p)), d.problems.join('; '));
  await c.must({ op: 'teardownNode', net });
  t.deepEqual(await linksIn(vm), ['eth0', 'lo']);
});

/** Where each capability's absence shows, so a failure for some other reason does not count. */
const WITHOUT: Record<string, { step: string; message: RegExp }> = {
  NET_ADMIN: { step: 'ensureNode', message: /Operation not permitted/ },
  NET_RAW: { step: 'ensureNode', message: /reading the legacy tables was refused .*CAP_NET_RAW/ },
  SYS_ADMIN: { step: 'attachPod', message: /nsenter: .*Operation not permitted/ },
};

for (const cap of daemonSetAgent().add) {
  test(`without ${cap} (the rest of the DaemonSet's set) the agent fails: ${cap} is needed`, async (t) => {
    const ds = daemonSetAgent();
    const { vm, net, pods } = await setUp(t);
    await useLegacy(vm); // NET_RAW matters only where kube-proxy uses iptables-legacy
    const c = await startContainer(t, vm, ds, ds.add.filter((x) => x !== cap));
    await c.must({ op: 'configure', procSysRoot: c.procSysRoot });
    const failure = await lifecycle(c, vm, net, pods);
    t.log(failure);
    t.not(failure, undefined, `everything worked without ${cap}: drop it from the DaemonSet`);
    const expected = WITHOUT[cap];
    t.truthy(expected, `no expectation for ${cap} (failed at ${failure?.step}: ${failure?.message})`);
    if (failure && expected) {
      t.is(failure.step, expected.step, failure.message);
      t.regex(failure.message, expected.message);
    }
    // Whatever was made is removed by a fully capable agent (the test's own process).
    const { teardownNode } = await import('./index.js');
    await teardownNode({ ...net, hostNetns: vm.netns });
    t.deepEqual(await linksIn(vm), ['eth0', 'lo']);
  });
}
