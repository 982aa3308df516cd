import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { NodeIPPool } from '../crds/api/index.js';
import { API_GROUP } from '../crds/api/group.js';
import { build, find, KUBECTL, KUSTOMIZATIONS, OVERLAYS, REPO_ROOT, type K8sObject } from './testing/manifests.js';

const NAMESPACE = 'podvnet-system';
/** The one grant outside it: events about cluster-scoped objects are accepted only in `default`. */
const IN_DEFAULT = new Set(['Role/podvnet-controller-events', 'RoleBinding/podvnet-controller-events']);
const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding',
  'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'NodeIPPool', 'NodeIPAllocation']);

const wave = (o: K8sObject): number => Number(o.metadata.annotations?.['argocd.argoproj.io/sync-wave'] ?? 0);
const podSpec = (o: K8sObject) => o.spec.template.spec;
const container = (o: K8sObject, name: string) => {
  const c = (podSpec(o).containers as Array<Record<string, any>>).find((x) => x.name === name);
  if (!c) throw new Error(`${o.kind}/${o.metadata.name} has no container ${name}`);
  return c;
};

test('kubectl embeds kustomize v5 (components, labels and replacements need it)', async (t) => {
  const out = execFileSync(KUBECTL, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  const v = JSON.parse(out) as { kustomizeVersion?: string };
  t.regex(v.kustomizeVersion ?? '', /^v5\./, `kubectl ${KUBECTL} has kustomize ${v.kustomizeVersion ?? 'unknown'}; use kubectl 1.27 or later`);
});

for (const dir of KUSTOMIZATIONS) {
  test(`kubectl kustomize ${dir} builds`, (t) => {
    const objs = build(dir);
    t.true(objs.length > 0);
    for (const o of objs) {
      t.truthy(o.apiVersion && o.kind && o.metadata?.name, JSON.stringify(o).slice(0, 120));
    }
    const ids = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    t.is(new Set(ids).size, ids.length, 'no duplicate objects');
  });
}

for (const overlay of ['deploy/base', ...OVERLAYS]) {
  test(`${overlay}: namespaces and sync waves`, (t) => {
    const objs = build(overlay);
    for (const o of objs) {
      if (CLUSTER_SCOPED.has(o.kind)) t.is(o.metadata.namespace, undefined, `${o.kind}/${o.metadata.name} is cluster-scoped`);
      else t.is(o.metadata.namespace, IN_DEFAULT.has(`${o.kind}/${o.metadata.name}`) ? 'default' : NAMESPACE, `${o.kind}/${o.metadata.name}`);
    }
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
    t.deepEqual(crds.map((o) => o.metadata.name).sort(), [`nodeipallocations.${API_GROUP}`, `nodeippools.${API_GROUP}`]);
    // CRDs first, then the namespace, then accounts and policy, then workloads, then pools.
    const maxCRD = Math.max(...crds.map(wave));
    const ns = wave(find(objs, 'Namespace', NAMESPACE));
    t.true(maxCRD < ns);
    for (const o of objs.filter((x) => !['CustomResourceDefinition', 'Namespace'].includes(x.kind))) {
      t.true(wave(o) > ns, `${o.kind}/${o.metadata.name} after the namespace`);
    }
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']) {
      for (const o of objs.filter((x) => x.kind === kind)) t.true(wave(o) < 0, `${kind}/${o.metadata.name} before the workloads`);
    }
    // Argo CD waits for each wave to be healthy. A pool is healthy once the controller has served it, and
    // an agent is ready once its record has status, which needs a pool and the controller: so controller,
    // then pools, then the DaemonSet.
    const controllerWave = wave(find(objs, 'Deployment', 'podvnet-controller'));
    const dsWave = wave(find(objs, 'DaemonSet', 'podvnet-node'));
    t.is(controllerWave, 0);
    t.is(dsWave, 2);
    const pools = [...objs, ...build('deploy/examples/nodeippools')].filter((x) => x.kind === 'NodeIPPool');
    t.true(pools.length > 0);
    for (const o of pools) {
      t.true(wave(o) > controllerWave && wave(o) < dsWave, 'pools between the controller and the agents');
      t.regex(o.metadata.annotations['argocd.argoproj.io/sync-options'], /SkipDryRunOnMissingResource=true/);
    }
  });

  test(`${overlay}: node DaemonSet is host-network; nothing privileged; the agent holds NET_ADMIN, NET_RAW, SYS_ADMIN, only an init container SYS_MODULE`, (t) => {
    const objs = build(overlay);
    const ds = find(objs, 'DaemonSet', 'podvnet-node');
    const spec = podSpec(ds);
    t.true(spec.hostNetwork);
    t.is(spec.dnsPolicy, 'Default', 'cluster DNS needs pod networking, which needs this agent');
    t.is(spec.serviceAccountName, 'podvnet-node');
    t.falsy(spec.hostPID);
    t.falsy(spec.hostIPC);
    t.deepEqual(spec.tolerations, [{ operator: 'Exists' }], 'runs on every node, tainted or not');
    t.is(spec.priorityClassName, 'system-node-critical');
    const all = [...(spec.initContainers ?? []), ...spec.containers] as Array<Record<string, any>>;
    for (const c of all) {
      t.true(c.securityContext?.readOnlyRootFilesystem, c.name);
      t.is(c.securityContext?.privileged, false, c.name);
      t.is(c.securityContext?.allowPrivilegeEscalation, false, c.name);
      t.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
      t.notRegex(c.image, /^podvnet$/, 'image name was rewritten');
    }
    // Each of these is shown to be needed, and enough, against the real kernel by
    // node-plugin/datapath/unprivileged.test.ts, which reads them from this DaemonSet.
    const agent = container(ds, 'agent');
    t.deepEqual(agent.securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']);
    // /proc/sys is read-only in an unprivileged container: the agent writes sysctls as files under the
    // host's /proc/sys/net, mounted read-write at <procSysRoot>/net. sysctl(8) would write /proc/sys.
    const dir = join(REPO_ROOT, 'node-plugin/datapath');
    const datapath = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.includes('.test.') && !f.includes('.fixture.') && !f.includes('sim') && !f.includes('testkit'))
      .map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
    t.notRegex(datapath, /'sysctl'[^\n]*'-w'/, 'the datapath must not write sysctls through /proc/sys (read-only in the container)');
    t.true((agent.args as string[]).includes('--proc-sys-root=/host/proc/sys'));
    const volumes = new Map<string, Record<string, any>>((spec.volumes as Array<Record<string, any>>).map((v) => [v.name, v]));
    const sysMount = (agent.volumeMounts as Array<Record<string, any>>).find((m) => m.mountPath === '/host/proc/sys/net');
    t.truthy(sysMount, 'the host\'s /proc/sys/net is mounted at /host/proc/sys/net');
    t.falsy(sysMount?.readOnly);
    t.deepEqual(volumes.get(sysMount?.name)?.hostPath, { path: '/proc/sys/net', type: 'Directory' });
    // br_netfilter: loaded once by a short-lived init container, the only one with SYS_MODULE and /lib/modules.
    const inits = (spec.initContainers ?? []) as Array<Record<string, any>>;
    t.deepEqual(inits.map((c) => c.name), ['load-br-netfilter']);
    const loader = inits[0]!;
    t.deepEqual(loader.securityContext.capabilities, { drop: ['ALL'], add: ['SYS_MODULE'] });
    t.regex(loader.command.join(' '), /modprobe br_netfilter/);
    execFileSync('sh', ['-n', '-c', loader.command.at(-1)]); // its script parses
    for (const c of all) {
      if (c !== loader) t.false((c.securityContext?.capabilities?.add ?? []).includes('SYS_MODULE'), c.name);
      const modules = (c.volumeMounts ?? []).find((m: Record<string, any>) => volumes.get(m.name)?.hostPath?.path === '/lib/modules');
      if (c === loader) t.true(modules?.readOnly, 'read-only /lib/modules for modprobe');
      else t.is(modules, undefined, `${c.name} does not load modules`);
    }
    const installer = container(ds, 'cni-installer');
    t.false(installer.securityContext.privileged);
    t.is(installer.securityContext.allowPrivilegeEscalation, false);
    t.deepEqual(installer.securityContext.capabilities, { drop: ['ALL'] });
    t.is(installer.securityContext.runAsUser, 0, 'root only to write the root-owned CNI directories');
    // The agent only needs to see the runtime's netns mounts, not to make mounts the host sees.
    for (const c of all) {
      for (const m of c.volumeMounts ?? []) t.not(m.mountPropagation, 'Bidirectional');
    }
    for (const v of spec.volumes) if (v.hostPath) t.notRegex(v.hostPath.path, /^\/(|etc|var|proc|sys|root|home|usr)\/?$/, `${v.name} mounts a whole system directory`);
  });

  test(`${overlay}: the installer puts podvnet-cni and the conflist where the runtime looks`, (t) => {
    const objs = build(overlay);
    const ds = find(objs, 'DaemonSet', 'podvnet-node');
    const volumes = new Map<string, Record<string, any>>((podSpec(ds).volumes as Array<Record<string, any>>).map((v) => [v.name, v]));
    const installer = container(ds, 'cni-installer');
    const env = new Map<string, string>((installer.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value ?? '']));
    const hostPathOf = (mountPath: string): string | undefined => {
      const m = (installer.volumeMounts as Array<{ name: string; mountPath: string }>).find((x) => x.mountPath === mountPath);
      return m ? volumes.get(m.name)?.hostPath?.path : undefined;
    };
    t.is(hostPathOf(env.get('PODVNET_CNI_BIN_DIR')!), '/opt/cni/bin');
    t.is(hostPathOf(env.get('PODVNET_CNI_CONF_DIR')!), '/etc/cni/net.d');
    // Only the installer can write the runtime's CNI directories.
    for (const c of podSpec(ds).containers.filter((x: { name: string }) => x.name !== 'cni-installer')) {
      for (const m of c.volumeMounts ?? []) t.false(['/opt/cni/bin', '/etc/cni/net.d'].includes(volumes.get(m.name)?.hostPath?.path), `${c.name} mounts ${m.name}`);
    }
    // The conflist comes from the generated ConfigMap (hash-suffixed name, so changing it rolls the DaemonSet).
    const source = env.get('PODVNET_CNI_CONFIG_SOURCE')!;
    const cfgMount = (installer.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => source.startsWith(`${m.mountPath}/`));
    t.truthy(cfgMount);
    const cmName = volumes.get(cfgMount!.name)?.configMap?.name as string;
    t.regex(cmName, /^podvnet-cni-config-[a-z0-9]{10}$/);
    const cm = find(objs, 'ConfigMap', cmName);
    const conflist = JSON.parse(cm.data[basename(source)]);
    t.is(conflist.name, 'podvnet');
    t.regex(conflist.cniVersion, /^1\.[01]\.0$/);
    t.regex(basename(source), /\.conflist$/);
    // The runtime execs the binary named by each plugin's "type": the installer must install that name.
    t.is(conflist.plugins[0].type, basename(env.get('PODVNET_CNI_BINARY_SOURCE')!));
    // The CNI plugin reaches the agent on the socket the agent serves, through the same host directory.
    const agent = container(ds, 'agent');
    const socketArg = (agent.args as string[]).find((a) => a.startsWith('--socket='))!.slice('--socket='.length);
    t.is(conflist.plugins[0].agentSocket, socketArg);
    const runMount = (agent.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => socketArg.startsWith(`${m.mountPath}/`))!;
    t.is(volumes.get(runMount.name)?.hostPath?.path + socketArg.slice(runMount.mountPath.length), '/run/podvnet/agent.sock');
    // A DEL the executable (on the host) queues while the agent is down lands where the agent reads its queue.
    const queueArg = (agent.args as string[]).find((a) => a.startsWith('--del-queue-dir='))!.slice('--del-queue-dir='.length);
    t.is(conflist.plugins[0].delQueueDir, queueArg);
    const queueMount = (agent.volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.mountPath === queueArg)!;
    t.is(volumes.get(queueMount.name)?.hostPath?.path, queueArg, 'the same path on the host and in the agent');
    // The uninstall check looks up the DaemonSet it belongs to.
    t.is(env.get('PODVNET_DAEMONSET_NAME'), ds.metadata.name);
  });

  test(`${overlay}: controller Deployment runs with leader election, non-root, spread over nodes`, (t) => {
    const objs = build(overlay);
    const dep = find(objs, 'Deployment', 'podvnet-controller');
    const spec = podSpec(dep);
    t.is(dep.spec.replicas, overlay.endsWith('/dev') ? 1 : 2);
    t.true(spec.hostNetwork, 'the controller must not depend on the pod network it provides');
    t.is(spec.dnsPolicy, 'Default', 'nor on cluster DNS, whose pods need that network');
    t.is(spec.serviceAccountName, 'podvnet-controller');
    t.true(spec.securityContext.runAsNonRoot);
    const c = container(dep, 'controller');
    t.true((c.args as string[]).includes('--leader-elect=true'));
    t.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    t.is(c.securityContext.allowPrivilegeEscalation, false);
    const anti = spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0];
    t.is(anti.topologyKey, 'kubernetes.io/hostname');
    t.deepEqual(anti.labelSelector.matchLabels, dep.spec.selector.matchLabels);
    t.true((spec.tolerations as Array<{ key?: string }>).some((x) => x.key === 'node.kubernetes.io/not-ready'));
    const leaseRole = find(objs, 'Role', 'podvnet-controller-leader-election');
    const leaseName = (c.args as string[]).find((a) => a.startsWith('--lease-name='))!.split('=')[1];
    t.true(leaseRole.rules.some((r: { resourceNames?: string[] }) => r.resourceNames?.includes(leaseName!)));
    const pdb = find(objs, 'PodDisruptionBudget', 'podvnet-controller');
    t.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
    t.true(pdb.spec.minAvailable < dep.spec.replicas || dep.spec.replicas === 1 && pdb.spec.minAvailable === 0, 'the PDB never blocks a drain forever');
  });

  test(`${overlay}: Services select a workload and name a port it has; probes use declared ports`, (t) => {
    const objs = build(overlay);
    const workloads = objs.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
    const services = objs.filter((o) => o.kind === 'Service');
    t.is(services.length, 2);
    for (const svc of services) {
      const sel = svc.spec.selector as Record<string, string>;
      const w = workloads.find((x) => Object.entries(sel).every(([k, v]) => x.spec.template.metadata.labels[k] === v));
      t.truthy(w, `${svc.metadata.name} selects nothing`);
      const ports = (podSpec(w!).containers as Array<{ ports?: Array<{ name: string; containerPort: number }> }>).flatMap((c) => c.ports ?? []);
      for (const p of svc.spec.ports) t.true(ports.some((x) => x.name === p.targetPort && x.containerPort === p.port), `${svc.metadata.name}:${p.targetPort}`);
    }
    for (const w of workloads) {
      for (const c of podSpec(w).containers as Array<Record<string, any>>) {
        for (const probe of [c.livenessProbe, c.readinessProbe].filter(Boolean)) {
          t.true((c.ports ?? []).some((p: { name: string }) => p.name === probe.httpGet.port), `${c.name} probe port`);
        }
      }
      const ports = (podSpec(w).containers as Array<{ ports?: Array<{ containerPort: number }> }>).flatMap((c) => c.ports ?? []).map((p) => p.containerPort);
      t.is(new Set(ports).size, ports.length);
    }
    // Both run on the host network, possibly on the same node: their host ports must differ.
    const hostPorts = workloads.flatMap((w) => (podSpec(w).containers as Array<{ ports?: Array<{ containerPort: number }> }>).flatMap((c) => c.ports ?? []).map((p) => p.containerPort));
    t.is(new Set(hostPorts).size, hostPorts.length);
  });

  test(`${overlay}: every ConfigMap a pod refers to is in the build`, (t) => {
    const objs = build(overlay);
    for (const w of objs.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')) {
      const spec = podSpec(w);
      const refs: Array<[string, string | undefined]> = [];
      for (const v of spec.volumes ?? []) if (v.configMap) refs.push([v.configMap.name, undefined]);
      for (const c of spec.containers) for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef) refs.push([e.valueFrom.configMapKeyRef.name, e.valueFrom.configMapKeyRef.key]);
      for (const [name, key] of refs) {
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
        t.truthy(cm, `${w.metadata.name} refers to ConfigMap ${name}`);
        if (key) t.true(key in (cm?.data ?? {}), `${name} has ${key}`);
      }
    }
  });

  test(`${overlay}: the admission policy names the node agent's ServiceAccount`, (t) => {
    const objs = build(overlay);
    const ds = find(objs, 'DaemonSet', 'podvnet-node');
    const vap = find(objs, 'ValidatingAdmissionPolicy', 'podvnet-node-own-record');
    const binding = find(objs, 'ValidatingAdmissionPolicyBinding', 'podvnet-node-own-record');
    t.is(binding.spec.policyName, vap.metadata.name);
    t.deepEqual(binding.spec.validationActions, ['Deny']);
    t.is(vap.spec.failurePolicy, 'Fail');
    const user = `system:serviceaccount:${ds.metadata.namespace}:${podSpec(ds).serviceAccountName}`;
    t.is(vap.spec.matchConditions[0].expression, `request.userInfo.username == '${user}'`);
  });
}

test('production uses Workload Identity with the client id from its ConfigMap', (t) => {
  const objs = build('deploy/overlays/production');
  const env = container(find(objs, 'Deployment', 'podvnet-controller'), 'controller').env as Array<Record<string, any>>;
  t.is(env.find((e) => e.name === 'PODVNET_CREDENTIAL')?.value, 'workload');
  const cm = find(objs, 'ConfigMap', 'podvnet-azure');
  t.regex(cm.data.AZURE_CLIENT_ID, /^[0-9a-f-]{36}$/);
  t.is(find(objs, 'ServiceAccount', 'podvnet-controller').metadata.annotations['azure.workload.identity/client-id'], cm.data.AZURE_CLIENT_ID);
  const dep = find(objs, 'Deployment', 'podvnet-controller');
  t.is(dep.spec.template.metadata.labels['azure.workload.identity/use'], 'true');
  // Only the controller talks to Azure.
  const ds = find(objs, 'DaemonSet', 'podvnet-node');
  t.is(ds.spec.template.metadata.labels['azure.workload.identity/use'], undefined);
  t.is(find(objs, 'ServiceAccount', 'podvnet-node').metadata.annotations?.['azure.workload.identity/client-id'], undefined);
});

test('managed-identity passes the identity\'s client id to the controller only', (t) => {
  const objs = build('deploy/overlays/managed-identity');
  const env = container(find(objs, 'Deployment', 'podvnet-controller'), 'controller').env as Array<Record<string, any>>;
  t.is(env.find((e) => e.name === 'PODVNET_CREDENTIAL')?.value, 'managed');
  t.deepEqual(env.find((e) => e.name === 'PODVNET_MANAGED_IDENTITY_CLIENT_ID')?.valueFrom, { configMapKeyRef: { name: 'podvnet-azure', key: 'AZURE_CLIENT_ID' } });
  for (const c of podSpec(find(objs, 'DaemonSet', 'podvnet-node')).containers) {
    t.false((c.env ?? []).some((e: { name: string }) => e.name.startsWith('AZURE_') || e.name.includes('IDENTITY') || e.name === 'PODVNET_CREDENTIAL'), c.name);
  }
  t.is(find(objs, 'ServiceAccount', 'podvnet-controller').metadata.annotations?.['azure.workload.identity/client-id'], undefined);
});

test('dev: debug logs, local image, and the example pools', (t) => {
  const objs = build('deploy/overlays/dev');
  const c = container(find(objs, 'Deployment', 'podvnet-controller'), 'controller');
  const agent = container(find(objs, 'DaemonSet', 'podvnet-node'), 'agent');
  for (const x of [c, agent]) t.deepEqual((x.env as Array<{ name: string; value?: string }>).find((e) => e.name === 'PODVNET_LOG_LEVEL'), { name: 'PODVNET_LOG_LEVEL', value: 'debug' });
  t.is(c.image, 'podvnet:dev');
  t.deepEqual(objs.filter((o) => o.kind === 'NodeIPPool').map((o) => o.metadata.name).sort(), ['batch', 'general']);
});

test('example NodeIPPools pass the runtime schema and carry no status', (t) => {
  const pools = build('deploy/examples/nodeippools');
  t.is(pools.length, 2);
  for (const p of pools) {
    t.is(p.kind, 'NodeIPPool');
    const r = NodeIPPool.safeParse(p);
    t.true(r.success, r.success ? '' : r.error.message);
    t.is(p.status, undefined, 'status is the controller\'s, never Git\'s');
  }
});

test('no manifest in Git declares a NodeIPAllocation or any status', (t) => {
  for (const dir of KUSTOMIZATIONS) {
    for (const o of build(dir)) {
      t.not(o.kind, 'NodeIPAllocation', dir);
      if (o.kind !== 'CustomResourceDefinition') t.is(o.status, undefined, `${dir} ${o.kind}/${o.metadata.name}`);
    }
  }
});

test('the Argo CD project admits every kind PodVNet ships, and nothing else is needed', (t) => {
  const argo = build('deploy/argocd');
  const project = find(argo, 'AppProject', 'podvnet');
  const groupOf = (o: K8sObject) => (o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '');
  const allowed = (list: Array<{ group: string; kind: string }>, o: K8sObject) => list.some((x) => x.group === groupOf(o) && x.kind === o.kind);
  const used = new Set<string>();
  for (const dir of [...OVERLAYS, 'deploy/examples/nodeippools']) {
    for (const o of build(dir)) {
      const list = CLUSTER_SCOPED.has(o.kind) ? project.spec.clusterResourceWhitelist : project.spec.namespaceResourceWhitelist;
      t.true(allowed(list, o), `${dir}: ${o.kind}`);
      used.add(`${groupOf(o)}/${o.kind}`);
    }
  }
  const listed = [...project.spec.clusterResourceWhitelist, ...project.spec.namespaceResourceWhitelist].map((x: { group: string; kind: string }) => `${x.group}/${x.kind}`);
  t.deepEqual(listed.sort(), [...used].sort(), 'the project lists no kind PodVNet does not ship');
});

test('Application and ApplicationSet point at overlays that exist, apply server-side, sync in waves', (t) => {
  const app = find(build('deploy/argocd'), 'Application', 'podvnet');
  const appset = parse(readFileSync(join(REPO_ROOT, 'deploy/argocd/applicationset.yaml'), 'utf8'));
  t.is(appset.kind, 'ApplicationSet');
  const specs = [app.spec, appset.spec.template.spec];
  for (const spec of specs) {
    t.is(spec.project, 'podvnet');
    t.is(spec.destination.namespace, NAMESPACE);
    const own = spec.sources.find((s: { repoURL: string }) => s.repoURL.endsWith('/podvnet.git'));
    t.true(existsSync(join(REPO_ROOT, own.path, 'kustomization.yaml')), own.path);
    t.true(spec.syncPolicy.syncOptions.includes('ServerSideApply=true'));
    t.true(spec.syncPolicy.automated.prune);
  }
  t.is(app.metadata.annotations['argocd.argoproj.io/compare-options'], 'ServerSideDiff=true');
  t.is(appset.spec.template.metadata.annotations['argocd.argoproj.io/compare-options'], 'ServerSideDiff=true');
  // The per-cluster patches in the ApplicationSet must hit objects that the overlay really has.
  const prod = build(appset.spec.template.spec.sources[0].path);
  for (const p of appset.spec.template.spec.sources[0].kustomize.patches) t.notThrows(() => find(prod, p.target.kind, p.target.name));
});

test('every container has a memory request and limit, and a Node heap cap below the limit', (t) => {
  const toMi = (q: string) => {
    const m = /^(\d+)(Mi|Gi)$/.exec(q);
    if (!m) throw new Error(`unexpected quantity ${q}`);
    return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
  };
  for (const o of build('deploy/base').filter((x) => x.kind === 'Deployment' || x.kind === 'DaemonSet')) {
    for (const c of o.spec.template.spec.containers as Array<Record<string, any>>) {
      const limit = toMi(c.resources.limits.memory);
      t.true(toMi(c.resources.requests.memory) <= limit, c.name);
      const heap = (c.env as Array<{ name: string; value?: string }>).find((e) => e.name === 'NODE_OPTIONS')?.value?.match(/--max-old-space-size=(\d+)/)?.[1];
      if (heap) t.true(Number(heap) < limit, `${c.name}: heap ${heap} MiB under the ${limit} MiB limit`);
    }
  }
});
