/**
 * Docker on azure-vnet vs Docker's built-in bridge driver, measured in the same run and the same private
 * dockerd (the environment of e2e/docker-env.ts): `docker run --rm true` latency one at a time, wall time of
 * M concurrent `docker run -d`, and the driver's own time per libnetwork call (from its debug log). Then the
 * same `docker run` p50 on a standalone Docker host (e2e/standalone-env.ts: the agent process inside the
 * simulated VM, static mode from IMDS and managed mode through ARM), each against the bridge driver of
 * its own dockerd in the same run.
 *
 *   node --loader ts-node/esm --no-warnings e2e/docker-bench.ts [--runs=20] [--concurrent=20] [--modes=driver,static,managed]
 *
 * Needs root and docker.io (see node-plugin/cnm/README.md).
 */
import { readFileSync } from 'node:fs';
import { IMAGE, startDockerCnmEnv } from './docker-env.js';
import type { DockerDaemon } from './docker-daemon.js';
import { SA_IMAGE, SA_SUBNET, startStandaloneHost } from './standalone-env.js';

const arg = (name: string, def: number): number => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.split('=')[1]) : def;
};
const RUNS = arg('runs', 20);
const CONCURRENT = arg('concurrent', 20);
const MODES = (process.argv.find((a) => a.startsWith('--modes='))?.split('=')[1] ?? 'driver,static,managed').split(',');

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms`;

/** `docker run --rm true` one after another on a network, `runs` times. */
async function sequentialRuns(d: DockerDaemon['ok'], net: string, image: string, runs: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await d(['run', '--rm', `--net=${net}`, image, 'true']);
    ms.push(performance.now() - t0);
  }
  return ms;
}

async function driverBench(): Promise<void> {
  const podIPs = Array.from({ length: CONCURRENT + 2 }, (_, i) => `10.61.1.${10 + i}`);
  const env = await startDockerCnmEnv({ podIPs });
  if (typeof env === 'string') {
    console.error(`docker-bench: cannot run: ${env}`);
    return;
  }

  try {
    const d = env.docker.ok;
    await d(['network', 'create', `--driver=${env.plugin}`, `--ipam-driver=${env.plugin}`, '--subnet=10.61.1.0/24', 'azure']);
    await d(['network', 'create', '--driver=bridge', '--subnet=172.31.0.0/24', 'ref']);

    const sequential = (net: string) => sequentialRuns(d, net, IMAGE, RUNS);
    const concurrent = async (net: string): Promise<number> => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => d(['run', '-d', '--stop-timeout=1', '--name', `${net}-${i}`, `--net=${net}`, IMAGE, 'sleep', '600'])));
      const wall = performance.now() - t0;
      await d(['rm', '-f', ...Array.from({ length: CONCURRENT }, (_, i) => `${net}-${i}`)]);
      return wall;
    };

    await sequential('ref'); // warm-up: image layers, daemon caches
    const refSeq = await sequential('ref');
    const ourSeq = await sequential('azure');
    const refPar = await concurrent('ref');
    const ourPar = await concurrent('azure');

    console.log(`docker run --rm true, ${RUNS} one after another:`);
    console.log(`  bridge (reference): ${fmt(refSeq)}`);
    console.log(`  azure-vnet:         ${fmt(ourSeq)}   ratio p50 ${(pct(ourSeq, 50) / pct(refSeq, 50)).toFixed(2)}`);
    console.log(`${CONCURRENT} concurrent docker run -d:`);
    console.log(`  bridge (reference): ${refPar.toFixed(0)} ms`);
    console.log(`  azure-vnet:         ${ourPar.toFixed(0)} ms   ratio ${(ourPar / refPar).toFixed(2)}`);

    const calls = new Map<string, number[]>();
    for (const line of readFileSync(env.driverLog, 'utf8').split('\n')) {
      if (!line.includes('"plugin call"')) continue;
      const rec = JSON.parse(line) as { method: string; ms: number };
      calls.set(rec.method, [...(calls.get(rec.method) ?? []), rec.ms]);
    }
    console.log('azure-vnet driver time per call (in the driver, over the whole run):');
    for (const m of ['IpamDriver.RequestAddress', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress']) {
      const xs = calls.get(m) ?? [];
      console.log(`  ${m.padEnd(30)} n=${String(xs.length).padStart(3)}  ${xs.length ? fmt(xs) : '-'}`);
    }
    if (env.pool.held.size !== 0) throw new Error(`addresses still held after the benchmark: ${[...env.pool.held.values()].join(', ')}`);
  } finally {
    await env.close();
  }
}

/** `docker run` p50 on a standalone host (the agent process in the VM), against the bridge driver of the same dockerd. */
async function standaloneBench(mode: 'static' | 'managed'): Promise<void> {
  const h = await startStandaloneHost(mode === 'static'
    ? { mode, secondaryIPs: 4 }
    : { mode, secondaryIPs: 0, agentArgs: ['--ips-min=4', '--batch-size=4'] });
  if (typeof h === 'string') {
    console.error(`docker-bench (${mode}): cannot run: ${h}`);
    return;
  }
  try {
    const d = h.docker.ok;
    await d(['network', 'create', `--driver=${h.plugin}`, `--ipam-driver=${h.plugin}`, `--subnet=${SA_SUBNET}`, 'azure']);
    await d(['network', 'create', '--driver=bridge', '--subnet=172.31.0.0/24', 'ref']);
    await sequentialRuns(d, 'ref', SA_IMAGE, 3); // warm-up
    await sequentialRuns(d, 'azure', SA_IMAGE, 3);
    const ref = await sequentialRuns(d, 'ref', SA_IMAGE, RUNS);
    const ours = await sequentialRuns(d, 'azure', SA_IMAGE, RUNS);
    console.log(`standalone ${mode} mode (agent process in the VM), docker run --rm true, ${RUNS} one after another:`);
    console.log(`  bridge (reference): ${fmt(ref)}`);
    console.log(`  azure-vnet:         ${fmt(ours)}   ratio p50 ${(pct(ours, 50) / pct(ref, 50)).toFixed(2)}`);
  } finally {
    await h.close();
  }
}

if (MODES.includes('driver')) await driverBench();
for (const mode of ['static', 'managed'] as const) if (MODES.includes(mode)) await standaloneBench(mode);
