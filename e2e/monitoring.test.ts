import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { Sandbox, type Pod } from '../hack/sandbox/sandbox.js';
import { Prometheus, type Alert } from '../hack/sandbox/prometheus.js';

/**
 * The shipped alert rules and dashboard against a real Prometheus (Debian's package) scraping the sandbox's
 * real controller and agents: every dashboard query returns series, the healthy sandbox raises no alert,
 * and the demand-capped alert fires once a node's pods want more IPs than the pool's max. The rules are
 * the shipped expressions; only `for:` is shortened (minutes would make a slow test). Root only.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shipped = parse(readFileSync(path.join(repo, 'deploy/monitoring/prometheusrule.yaml'), 'utf8')).spec as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for: string }> }> };
const dashboard = JSON.parse(readFileSync(path.join(repo, 'deploy/monitoring/dashboards/podvnet.json'), 'utf8')) as {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; query: string }> };
};

/** The shipped rules with every `for:` at 3 s: expressions, labels and annotations untouched. */
const testRules = { groups: shipped.groups.map((g) => ({ ...g, rules: g.rules.map((r) => ({ ...r, for: '3s' })) })) };

/** A dashboard query as Grafana sends it with every pool and node selected. */
const concrete = (expr: string) => expr.replaceAll('$__rate_interval', '30s').replaceAll('$pool', '.*').replaceAll('$node', '.*');

async function poll<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try { const v = await probe(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test.serial('a real Prometheus on the sandbox: dashboard queries return series; the demand-capped alert fires at the pool max', async (t) => {
  t.timeout(600_000);
  const max = 16;
  const sandbox = await Sandbox.start({ vms: 1, scaleSetInstances: 1, pool: { ipsPerNode: { min: 4, max }, scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } } });
  t.teardown(() => sandbox.close());
  const targets = await sandbox.metricsTargets();
  t.is(targets.length, 3, 'the controller and two agents');
  for (const g of testRules.groups) for (const r of g.rules) t.is(r.expr, shipped.groups.find((x) => x.name === g.name)!.rules.find((x) => x.alert === r.alert)!.expr);
  const prom = await Prometheus.start({
    targets: targets.map((x) => ({ job: x.job, address: x.address, labels: x.node ? { node: x.node } : undefined })),
    rules: testRules, scrapeIntervalSeconds: 1, evaluationIntervalSeconds: 1, logFile: path.join(sandbox.logDir, 'prometheus.log'),
  });
  t.teardown(() => prom.stop());

  await poll('every target scraped', async () => (await prom.targets()).filter((x) => x.health === 'up').length === 3, 60_000);
  const [vm] = sandbox.nodes;
  await poll('the nodes served and the agents ready', async () =>
    (await prom.query('sum(podvnet_agent_ready)'))[0]?.value[1] === String(sandbox.nodes.length)
    && (await prom.query(`podvnet_node_ips{node="${vm!.name}",state="allocated"}`))[0]?.value[1] === '8', 120_000);

  // healthy: nothing fires (each rule has been evaluated for longer than its shortened `for:`)
  await new Promise((r) => setTimeout(r, 8000));
  const firing = (alerts: Alert[]) => alerts.filter((a) => a.state === 'firing').map((a) => `${a.labels.alertname}${a.labels.node ? `/${a.labels.node}` : ''}`);
  t.deepEqual(firing(await prom.alerts()), [], 'a healthy sandbox raises no alert');

  // fill vm-0 up to the pool's max, then keep asking for one more, as a runtime retries a pod it cannot start
  const pods: Pod[] = [];
  for (let i = 0; pods.length < max; i++) {
    const deadline = Date.now() + 90_000;
    for (;;) {
      try { pods.push(await sandbox.addPod(vm!.name, `fill-${i}`)); break; } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
  let asking = true;
  const oneMore = (async () => {
    while (asking) {
      await sandbox.addPod(vm!.name, 'one-too-many').then(() => { asking = false; }, () => undefined);
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  try {
    const capped = await poll('PodVNetNodeDemandCapped to fire', async () =>
      (await prom.alerts()).find((a) => a.state === 'firing' && a.labels.alertname === 'PodVNetNodeDemandCapped'), 120_000);
    t.like(capped.labels, { node: vm!.name, pool: 'sandbox', severity: 'warning' });
    t.is(capped.annotations.summary, `Pods on node ${vm!.name} want more IPs than pool sandbox allows`);
    t.is((await prom.query(`podvnet_node_ips{node="${vm!.name}",state="allocated"}`))[0]?.value[1], String(max), 'the node is at the pool max');
    const waiting = await poll('PodVNetPodsWaitingForIPs to fire', async () =>
      (await prom.alerts()).find((a) => a.state === 'firing' && a.labels.alertname === 'PodVNetPodsWaitingForIPs'), 60_000);
    t.is(waiting.labels.node, vm!.name);
    t.deepEqual(firing(await prom.alerts()).filter((a) => !a.endsWith(`/${vm!.name}`)), [], 'nothing fires about the other node or the components');

    // every dashboard query returns series, while the burst is fresh (latencies are rates over 30 s)
    const empty: string[] = [];
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      for (const q of p.targets ?? []) if ((await prom.query(concrete(q.expr))).length === 0) empty.push(`${p.title}: ${q.expr}`);
    }
    t.deepEqual(empty, [], 'every dashboard query returns series');
    for (const v of dashboard.templating.list.filter((x) => x.name === 'pool' || x.name === 'node')) {
      const m = /^label_values\((.*), (\w+)\)$/.exec(v.query);
      t.truthy(m, v.query);
      const values = (await prom.query(`count by (${m![2]}) (${concrete(m![1]!)})`)).map((s) => s.metric[m![2]!]);
      t.true(values.length > 0, `variable ${v.name}: ${values.join(',')}`);
    }
  } finally {
    asking = false;
    await oneMore;
  }

  // the pods go: the node is no longer capped and the alert resolves
  for (const p of pods) await sandbox.deletePod(p.name);
  await sandbox.deletePod('one-too-many').catch(() => undefined);
  await poll('PodVNetNodeDemandCapped to resolve', async () =>
    !(await prom.alerts()).some((a) => a.labels.alertname === 'PodVNetNodeDemandCapped'), 120_000);
  t.pass();
});
