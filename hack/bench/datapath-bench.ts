/**
 * Datapath ADD/DEL latency: PodVNet's attachPod/detachPod against the reference CNI `bridge` plugin
 * (/usr/lib/cni/bridge with host-local IPAM, hairpin on, ipMasq on: the nearest equivalent set-up),
 * measured in the same run on the same simulated node (a network namespace of the fabric sim).
 *
 *   npx ts-node --esm hack/bench/datapath-bench.ts [--pods 250] [--serial 40]
 *   (or: node --loader ts-node/esm --no-warnings hack/bench/datapath-bench.ts)
 *
 * Serial: one ADD after another (latency of one CNI ADD's kernel work). Concurrent: all pods at once,
 * as a node full of pods starting together. The reference plugin is exec'd per pod, as a runtime
 * would; PodVNet's calls run inside the long-lived agent, which is how the node plugin uses them (the
 * per-pod CNI executable is only a forwarder). Prints a table and the ratios (reference / PodVNet).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRaw } from '../../node-plugin/datapath/exec.js';
import { createFabric, type Fabric, type SimVM } from '../../node-plugin/datapath/testing/fabric-sim.js';
import * as dp from '../../node-plugin/datapath/index.js';
import { intToIp, ipToInt } from '../../crds/ipv4.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const PODS = arg('pods', 250);
const SERIAL = arg('serial', 40);
const POD_SUBNET = '10.40.0.0/16';
const podIP = (i: number): string => intToIp(ipToInt('10.40.1.0') + i);

interface Impl {
  name: string;
  add(i: number, ns: string): Promise<void>;
  del(i: number, ns: string): Promise<void>;
  cleanup(): Promise<void>;
}

function podvnet(vm: SimVM): Impl {
  const net = vm.nodeNetwork({ podSubnet: POD_SUBNET });
  return {
    name: 'podvnet',
    async add(i, ns) {
      await dp.attachPod(net, { containerId: `bench-${i}`, netnsPath: `/run/netns/${ns}`, ifName: 'eth0', ip: podIP(i), prefixLength: 16 });
    },
    async del(i) {
      await dp.detachPod(net, { containerId: `bench-${i}`, ifName: 'eth0', ip: podIP(i) });
    },
    async cleanup() { await dp.teardownNode(net); },
  };
}

function reference(vm: SimVM, variant: 'ipMasq' | 'noMasq'): Impl {
  const dataDir = mkdtempSync(join(tmpdir(), 'podvnet-bench-hostlocal-'));
  const [bridge, octet] = variant === 'ipMasq' ? ['cnibr0', 50] : ['cnibr1', 51];
  const conf = JSON.stringify({
    cniVersion: '1.0.0', name: `bench-${variant}`, type: 'bridge', bridge, isGateway: true,
    ipMasq: variant === 'ipMasq', hairpinMode: true, mtu: vm.mtu,
    ipam: { type: 'host-local', ranges: [[{ subnet: `10.${octet}.0.0/16`, gateway: `10.${octet}.0.1` }]], dataDir },
  });
  const exec = async (cmd: 'ADD' | 'DEL', i: number, ns: string): Promise<void> => {
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: cmd, CNI_CONTAINERID: `ref-${i}`,
      CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
    };
    const r = await runRaw(vm.netnsPath, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), '/usr/lib/cni/bridge'], conf);
    if (r.code !== 0) throw new Error(`reference bridge ${cmd} ${i}: ${r.stdout}${r.stderr}`);
  };
  return {
    name: `cni bridge (${variant})`,
    add: (i, ns) => exec('ADD', i, ns),
    del: (i, ns) => exec('DEL', i, ns),
    async cleanup() {
      await runRaw(vm.netnsPath, ['ip', 'link', 'del', bridge]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

interface Row { impl: string; serialAddP50: number; serialAddP95: number; serialDelP50: number; concAddTotal: number; concDelTotal: number }

const time = async (fn: () => Promise<void>): Promise<number> => {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

/**
 * The machine's load changes while the bench runs, so the implementations are interleaved: serial ADDs
 * and DELs alternate between them pod by pod, and the concurrent rounds run in the order A B C, then
 * C B A, each reporting the mean of its two rounds.
 */
async function measureAll(f: Fabric, impls: Impl[]): Promise<Row[]> {
  const count = Math.max(PODS, SERIAL);
  const nss = await Promise.all(impls.map((_, k) => Promise.all(Array.from({ length: count }, (_, i) => f.addNetns(`b${k}-${i}`)))));
  for (const [k, impl] of impls.entries()) { await impl.add(0, nss[k]![0]!); await impl.del(0, nss[k]![0]!); } // warm-up
  const adds = impls.map((): number[] => []);
  const dels = impls.map((): number[] => []);
  for (let i = 0; i < SERIAL; i++) for (const [k, impl] of impls.entries()) adds[k]!.push(await time(() => impl.add(i, nss[k]![i]!)));
  for (let i = 0; i < SERIAL; i++) for (const [k, impl] of impls.entries()) dels[k]!.push(await time(() => impl.del(i, nss[k]![i]!)));
  const concAdd = impls.map(() => 0);
  const concDel = impls.map(() => 0);
  const order = [...impls.keys()];
  for (const round of [order, [...order].reverse()]) {
    for (const k of round) {
      const impl = impls[k]!;
      concAdd[k]! += await time(async () => { await Promise.all(Array.from({ length: PODS }, (_, i) => impl.add(i, nss[k]![i]!))); }) / 2;
      concDel[k]! += await time(async () => { await Promise.all(Array.from({ length: PODS }, (_, i) => impl.del(i, nss[k]![i]!))); }) / 2;
    }
  }
  for (const impl of impls) await impl.cleanup();
  return impls.map((impl, k) => ({
    impl: impl.name, serialAddP50: pct(adds[k]!, 50), serialAddP95: pct(adds[k]!, 95), serialDelP50: pct(dels[k]!, 50),
    concAddTotal: concAdd[k]!, concDelTotal: concDel[k]!,
  }));
}

async function main(): Promise<void> {
  const f = await createFabric({ vnetPrefixes: ['10.0.0.0/8'], subnets: ['10.30.0.0/24', POD_SUBNET] });
  try {
    const vm = await f.addVM({ name: 'node', mac: '00:0d:3a:00:00:01', primaryIP: '10.30.0.4' });
    await dp.ensureNode(vm.nodeNetwork({ podSubnet: POD_SUBNET }));
    const rows = await measureAll(f, [podvnet(vm), reference(vm, 'ipMasq'), reference(vm, 'noMasq')]);
    const fmt = (n: number): string => n.toFixed(1).padStart(9);
    console.log(`pods=${PODS} (concurrent), serial sample=${SERIAL}, cores=${(await import('node:os')).cpus().length}`);
    console.log('impl                        add p50  add p95  del p50   |  conc ADD total  conc DEL total (ms)');
    for (const r of rows) {
      console.log(`${r.impl.padEnd(24)}${fmt(r.serialAddP50)}${fmt(r.serialAddP95)}${fmt(r.serialDelP50)}   |${fmt(r.concAddTotal).padStart(16)}${fmt(r.concDelTotal).padStart(16)}`);
    }
    const ours = rows[0]!;
    for (const ref of rows.slice(1)) {
      console.log(`ratio ${ref.impl} / podvnet: serial ADD p50 ${(ref.serialAddP50 / ours.serialAddP50).toFixed(2)}x, ` +
        `serial DEL p50 ${(ref.serialDelP50 / ours.serialDelP50).toFixed(2)}x, ` +
        `${PODS} concurrent ADDs ${(ref.concAddTotal / ours.concAddTotal).toFixed(2)}x, DELs ${(ref.concDelTotal / ours.concDelTotal).toFixed(2)}x`);
    }
    console.log(JSON.stringify({ bench: 'datapath', pods: PODS, serial: SERIAL, rows }));
  } finally {
    await f.destroy();
  }
}

await main();
