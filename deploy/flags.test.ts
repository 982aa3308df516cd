import test from 'ava';
import { loadConfig } from '../controllers/config.js';
import { parseAgentConfig } from '../node-plugin/agent/config.js';
import { parseInstallerConfig } from './cni-install/installer.js';
import { build, find, OVERLAYS, type K8sObject } from './testing/manifests.js';

/**
 * The flags and environment each container gets, as the kubelet would hand them over (downward-API
 * values filled in, $(VAR) references expanded), go through the programs' own parsers: a renamed or
 * removed flag fails here rather than in a crash-looping pod.
 */

const FIELD_VALUES = {
  'spec.nodeName': 'aks-general-12345678-vmss000001',
  'status.hostIP': '10.240.0.4',
  'metadata.namespace': 'podvnet-system',
  'metadata.name': 'podvnet-controller-7d9c-x1',
} as const;

function containerEnv(objs: K8sObject[], c: Record<string, any>): Record<string, string> {
  const env: Record<string, string> = {};
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (e.valueFrom?.fieldRef) env[e.name] = (FIELD_VALUES as Record<string, string>)[e.valueFrom.fieldRef.fieldPath]!;
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = find(objs, 'ConfigMap', e.valueFrom.configMapKeyRef.name).data[e.valueFrom.configMapKeyRef.key];
    else throw new Error(`unhandled env source for ${e.name}`);
  }
  return env;
}

const args = (c: Record<string, any>, env: Record<string, string>): string[] =>
  ((c.args ?? []) as string[]).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m));

for (const overlay of ['deploy/base', ...OVERLAYS]) {
  test(`${overlay}: the controller accepts its flags and environment`, (t) => {
    const objs = build(overlay);
    const c = find(objs, 'Deployment', 'podvnet-controller').spec.template.spec.containers[0];
    const env = containerEnv(objs, c);
    const cfg = loadConfig(args(c, env), env);
    t.true(cfg.leaderElect);
    t.is(cfg.leaseName, 'podvnet-controller');
    t.is(cfg.leaseNamespace, 'podvnet-system');
    t.is(cfg.identity, FIELD_VALUES['metadata.name']);
    t.is(cfg.eventNamespace, 'default');
    t.is(cfg.httpHost, FIELD_VALUES['status.hostIP']);
    t.is(cfg.httpPort, (c.ports as Array<{ name: string; containerPort: number }>).find((p) => p.name === 'metrics')!.containerPort);
    t.is(cfg.credential as string, ({ 'deploy/overlays/production': 'workload', 'deploy/overlays/managed-identity': 'managed' } as Record<string, string>)[overlay] ?? 'default');
    if (overlay.endsWith('managed-identity')) t.regex(cfg.managedIdentityClientId ?? '', /^[0-9a-f-]{36}$/);
    t.is(cfg.logLevel, overlay.endsWith('/dev') ? 'debug' : 'info');
  });

  test(`${overlay}: the node agent and the CNI installer accept theirs`, (t) => {
    const objs = build(overlay);
    const ds = find(objs, 'DaemonSet', 'podvnet-node');
    const [agent, installer] = ['agent', 'cni-installer'].map((n) => ds.spec.template.spec.containers.find((c: { name: string }) => c.name === n));
    const env = containerEnv(objs, agent);
    const cfg = parseAgentConfig(args(agent, env), env);
    t.is(cfg.nodeName, FIELD_VALUES['spec.nodeName']);
    t.is(cfg.socket, '/run/podvnet/agent.sock');
    t.is(cfg.cnmSocket, '', 'no Docker CNM driver on Kubernetes nodes');
    t.is(cfg.metricsAddress, `${FIELD_VALUES['status.hostIP']}:${(agent.ports as Array<{ containerPort: number }>)[0]!.containerPort}`);
    t.is(cfg.kubeconfig, undefined, 'in-cluster credentials');
    t.is(cfg.logLevel, overlay.endsWith('/dev') ? 'debug' : 'info');
    const ienv = containerEnv(objs, installer);
    t.notThrows(() => parseInstallerConfig(ienv));
    t.is(parseInstallerConfig(ienv).namespace, 'podvnet-system');
  });
}
