import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { build, find, REPO_ROOT } from './testing/manifests.js';

/**
 * deploy/monitoring/ checked with the real thing: Debian's promtool checks the rules and runs the unit tests
 * (every alert firing and not firing, with its exact text); every alert names its object and has a runbook;
 * every metric the rules and the dashboard use is one the code exports; the scrape objects select what
 * deploy/base runs. e2e/monitoring.test.ts runs them against a real Prometheus and the sandbox.
 */

const execFileP = promisify(execFile);
const dir = join(REPO_ROOT, 'deploy/monitoring');
const ruleObject = parse(readFileSync(join(dir, 'prometheusrule.yaml'), 'utf8'));
type Rule = { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> };
const rules: Rule[] = ruleObject.spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);
const dashboard = JSON.parse(readFileSync(join(dir, 'dashboards/podvnet.json'), 'utf8'));
type Panel = { title: string; type: string; targets?: Array<{ expr: string }> };
const panels: Panel[] = dashboard.panels;
const readme = readFileSync(join(REPO_ROOT, 'deploy/README.md'), 'utf8');

/** promtool's input: the PrometheusRule's spec, written where the unit tests expect it. */
function promtoolDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'podvnet-promtool-'));
  writeFileSync(join(d, 'rules.yaml'), stringify(ruleObject.spec));
  copyFileSync(join(dir, 'tests/alerts.test.yaml'), join(d, 'alerts.test.yaml'));
  return d;
}

test('promtool check rules: the PrometheusRule\'s groups are valid Prometheus rules', async (t) => {
  const d = promtoolDir();
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const r = await execFileP('promtool', ['check', 'rules', join(d, 'rules.yaml')]);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test('promtool test rules: every alert fires on its series and stays quiet on the others', async (t) => {
  const d = promtoolDir();
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const r = await execFileP('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: d }).catch((e: { stdout: string; stderr: string }) => e);
  t.regex(r.stdout, /SUCCESS/, `${r.stdout}\n${r.stderr}`);
});

test('the unit tests cover every alert, both firing and not firing', (t) => {
  const tests = parse(readFileSync(join(dir, 'tests/alerts.test.yaml'), 'utf8')).tests as Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
  const cases = tests.flatMap((x) => x.alert_rule_test);
  for (const r of rules) {
    t.true(cases.some((c) => c.alertname === r.alert && c.exp_alerts.length > 0), `${r.alert} is tested firing`);
    t.true(cases.some((c) => c.alertname === r.alert && c.exp_alerts.length === 0), `${r.alert} is tested not firing`);
  }
});

test('every alert: a severity, a summary, a description naming its object, a runbook in deploy/README.md', (t) => {
  t.is(new Set(rules.map((r) => r.alert)).size, rules.length, 'alert names are unique');
  for (const r of rules) {
    t.true(['warning', 'critical'].includes(r.labels.severity!), `${r.alert}: severity`);
    t.truthy(r.annotations.summary, `${r.alert}: summary`);
    t.truthy(r.annotations.description, `${r.alert}: description`);
    // what the expression keeps (its `by` labels) is what the alert is about: the text must say which
    const by = [...r.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((x) => x.trim())).filter((l) => l !== 'le');
    for (const label of new Set(by)) t.true(r.annotations.description!.includes(`{{ $labels.${label} }}`), `${r.alert}: the description names the ${label}`);
    if (!by.length) t.regex(r.annotations.description!, /controller/, `${r.alert}: about the controller, and says so`);
    const anchor = r.alert.toLowerCase();
    t.is(r.annotations.runbook_url, `https://github.com/podvnet/podvnet/blob/main/deploy/README.md#${anchor}`);
    t.true(readme.includes(`\n#### ${r.alert}\n`), `${r.alert}: a runbook section in deploy/README.md`);
  }
  t.deepEqual(rules.map((r) => r.alert).sort(), [
    'PodVNetAgentNotReady', 'PodVNetAzureErrors', 'PodVNetAzureThrottled', 'PodVNetControllerNoLeader', 'PodVNetNodeDemandCapped',
    'PodVNetNodeNetworkBroken', 'PodVNetPodsWaitingForIPs', 'PodVNetSubnetFull', 'PodVNetSubnetNearlyFull',
  ]);
});

test('every metric the rules and the dashboard read is one the controller or the agent exports', (t) => {
  const sources = readFileSync(join(REPO_ROOT, 'controllers/metrics.ts'), 'utf8') + readFileSync(join(REPO_ROOT, 'node-plugin/agent/metrics.ts'), 'utf8');
  const exprs = [...rules.map((r) => r.expr), ...panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr)), ...dashboard.templating.list.map((v: { query?: string }) => v.query ?? '')];
  const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\bpodvnet_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
  t.true(names.size >= 15, [...names].join(' '));
  for (const n of names) {
    // prom-client's default process metrics get the component prefix; the rest are named in the source
    t.true(sources.includes(`'${n}'`), `${n} is exported`);
  }
});

test('the dashboard: per pool and per node IPs, ADD latency, Azure calls and 429s, subnet headroom; every panel has a query', (t) => {
  t.is(dashboard.uid, 'podvnet');
  t.deepEqual(dashboard.templating.list.map((v: { name: string }) => v.name), ['datasource', 'pool', 'node']);
  const all = panels.filter((p) => p.type !== 'row');
  for (const p of all) t.true((p.targets ?? []).length > 0 && p.targets!.every((x) => x.expr.trim() !== ''), p.title);
  const exprs = all.flatMap((p) => p.targets!.map((x) => x.expr)).join('\n');
  for (const want of ['state=~"allocated|target|used|pending"', 'podvnet_agent_cni_request_duration_seconds_bucket{command="ADD"', 'podvnet_azure_calls_total', 'podvnet_azure_throttled_total', 'podvnet_subnet_free_ips']) {
    t.true(exprs.includes(want), want);
  }
  const ids = panels.map((p) => (p as unknown as { id: number }).id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
});

test('deploy/monitoring builds; the ServiceMonitor and PodMonitor select what deploy/base runs, on its metrics port', (t) => {
  const objs = build('deploy/monitoring');
  t.deepEqual(objs.map((o) => o.kind).sort(), ['ConfigMap', 'PodMonitor', 'PrometheusRule', 'ServiceMonitor']);
  for (const o of objs) t.is(o.metadata.namespace, 'podvnet-system', `${o.kind}/${o.metadata.name}`);
  const cm = find(objs, 'ConfigMap', 'podvnet-grafana-dashboard');
  t.is(cm.metadata.labels?.grafana_dashboard, '1');
  t.deepEqual(JSON.parse(cm.data['podvnet.json']), dashboard);
  const base = build('deploy/base');
  const sm = find(objs, 'ServiceMonitor', 'podvnet-controller');
  const svc = find(base, 'Service', 'podvnet-controller-metrics');
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) t.is(svc.metadata.labels?.[k], v, `the Service carries ${k}`);
  t.true((svc.spec.ports as Array<{ name: string }>).some((p) => p.name === sm.spec.endpoints[0].port));
  t.is(svc.metadata.labels?.[sm.spec.jobLabel], 'podvnet-controller', 'job="podvnet-controller", as the rules expect');
  const pm = find(objs, 'PodMonitor', 'podvnet-node');
  const ds = find(base, 'DaemonSet', 'podvnet-node');
  const podLabels = ds.spec.template.metadata.labels as Record<string, string>;
  for (const [k, v] of Object.entries(pm.spec.selector.matchLabels as Record<string, string>)) t.is(podLabels[k], v, `the agent pods carry ${k}`);
  t.is(podLabels[pm.spec.jobLabel], 'podvnet-node', 'job="podvnet-node", as the rules expect');
  const ports = (ds.spec.template.spec.containers as Array<{ ports?: Array<{ name: string }> }>).flatMap((c) => c.ports ?? []);
  t.true(ports.some((p) => p.name === pm.spec.podMetricsEndpoints[0].port));
  t.deepEqual(pm.spec.podMetricsEndpoints[0].relabelings, [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }]);
});
