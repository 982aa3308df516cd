// The real kubectl (v1.32) against the emulator: apply (client- and server-side), get with printer
// columns, describe, patch, label, wait, delete with finalizers, strict validation errors.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withEmulator, widgetsCrd, type Reply } from './testing/index.js';
import type { KubeEmulator } from './index.js';
import YAML from 'yaml';

const KUBECTL = '/usr/bin/kubectl';
const haveKubectl = existsSync(KUBECTL);
const crdFile = fileURLToPath(new URL('./testdata/widgets-crd.yaml', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function kubectl(emu: KubeEmulator, args: string[], stdin?: string, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile(KUBECTL, args, { env: { ...process.env, KUBECONFIG: emu.kubeconfigPath, HOME: '/tmp' }, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, stdout, stderr });
    });
    if (stdin !== undefined) p.stdin!.end(stdin);
  });
}

const widgetYaml = (name: string, spec: string, extraMeta = ''): string =>
  `apiVersion: test.podvnet.io/v1\nkind: Widget\nmetadata:\n  name: ${name}\n${extraMeta}spec:\n${spec}`;

const t2 = haveKubectl ? test : test.skip;

t2('kubectl apply, get (printer columns, short name), describe, patch, label, wait and delete', async (t) => {
  const emu = await withEmulator(t);
  const crd = await kubectl(emu, ['apply', '-f', crdFile]);
  t.is(crd.code, 0, crd.stderr);
  t.regex(crd.stdout, /customresourcedefinition.apiextensions.k8s.io\/widgets.test.podvnet.io created/);
  const est = await kubectl(emu, ['wait', '--for=condition=Established', 'crd/widgets.test.podvnet.io', '--timeout=10s']);
  t.is(est.code, 0, est.stderr);
  const ap = await kubectl(emu, ['apply', '-f', '-'], widgetYaml('alpha', '  size: 4\n  owner: ann\n  mode: fast\n'));
  t.is(ap.code, 0, ap.stderr);
  t.is(ap.stdout.trim(), 'widget.test.podvnet.io/alpha created');
  const again = await kubectl(emu, ['apply', '-f', '-'], widgetYaml('alpha', '  size: 4\n  owner: ann\n  mode: fast\n'));
  t.is(again.stdout.trim(), 'widget.test.podvnet.io/alpha unchanged');
  const changed = await kubectl(emu, ['apply', '-f', '-'], widgetYaml('alpha', '  size: 6\n  owner: ann\n'));
  t.is(changed.stdout.trim(), 'widget.test.podvnet.io/alpha configured');
  const get = await kubectl(emu, ['get', 'wdg']);
  t.is(get.code, 0, get.stderr);
  const lines = get.stdout.trim().split('\n');
  t.regex(lines[0]!, /^NAME\s+SIZE\s+MODE\s+READY\s+AGE$/);
  // mode was removed from the applied config: the client-side apply patch deletes it, then the default applies
  t.regex(lines[1]!, /^alpha\s+6\s+slow\s+\d+s$/, 'an absent column value prints empty');
  const js = JSON.parse((await kubectl(emu, ['get', 'widget', 'alpha', '-o', 'json'])).stdout);
  t.is(js.metadata.generation, 2);
  t.truthy(js.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']);
  const desc = await kubectl(emu, ['describe', 'widget', 'alpha']);
  t.is(desc.code, 0, desc.stderr);
  t.regex(desc.stdout, /Name:\s+alpha/);
  t.regex(desc.stdout, /Size:\s+6/);
  const lab = await kubectl(emu, ['label', 'widget', 'alpha', 'team=blue']);
  t.is(lab.code, 0, lab.stderr);
  t.is((await kubectl(emu, ['get', 'widgets', '-l', 'team=blue', '-o', 'name'])).stdout.trim(), 'widget.test.podvnet.io/alpha');
  t.is((await kubectl(emu, ['get', 'widgets', '-l', 'team=red', '-o', 'name'])).stdout.trim(), '');
  const sp = await kubectl(emu, ['patch', 'widget', 'alpha', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}']);
  t.is(sp.code, 0, sp.stderr);
  const w = await kubectl(emu, ['wait', '--for=condition=Ready', 'widget/alpha', '--timeout=10s']);
  t.is(w.code, 0, w.stderr);
  t.regex(w.stdout, /widget.test.podvnet.io\/alpha condition met/);
  const wj = await kubectl(emu, ['wait', '--for=jsonpath={.spec.size}=6', 'widget/alpha', '--timeout=10s']);
  t.is(wj.code, 0, wj.stderr);
  const jp = await kubectl(emu, ['patch', 'widget', 'alpha', '--type=json', '-p', '[{"op":"add","path":"/metadata/finalizers","value":["test/hold"]}]']);
  t.is(jp.code, 0, jp.stderr);
  const del = await kubectl(emu, ['delete', 'widget', 'alpha', '--wait=false']);
  t.is(del.code, 0, del.stderr);
  const waiting = kubectl(emu, ['wait', '--for=delete', 'widget/alpha', '--timeout=15s']);
  await new Promise((r) => setTimeout(r, 300));
  const rm = await kubectl(emu, ['patch', 'widget', 'alpha', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  t.is(rm.code, 0, rm.stderr);
  const gone = await waiting;
  t.is(gone.code, 0, gone.stderr);
  t.regex((await kubectl(emu, ['get', 'widget', 'alpha'])).stderr, /widgets.test.podvnet.io "alpha" not found/);
});

t2('kubectl reports schema, CEL and strict-validation errors the way the API server words them', async (t) => {
  const emu = await withEmulator(t);
  await kubectl(emu, ['apply', '-f', crdFile]);
  const bad = await kubectl(emu, ['apply', '-f', '-'], widgetYaml('beta', '  size: 40\n  owner: ann\n  min: 9\n  max: 1\n'));
  t.not(bad.code, 0);
  t.regex(bad.stderr, /The Widget "beta" is invalid: /);
  t.regex(bad.stderr, /spec.size: Invalid value: 40: spec.size in body should be less than or equal to 10/);
  t.regex(bad.stderr, /spec: Invalid value: "object": min must not exceed max/);
  const strict = await kubectl(emu, ['apply', '-f', '-'], widgetYaml('beta', '  size: 4\n  owner: ann\n  colour: red\n'));
  t.not(strict.code, 0);
  t.regex(strict.stderr, /strict decoding error: unknown field "spec.colour"/);
  const lax = await kubectl(emu, ['apply', '--validate=false', '-f', '-'], widgetYaml('beta', '  size: 4\n  owner: ann\n  colour: red\n'));
  t.is(lax.code, 0, lax.stderr);
  const got = JSON.parse((await kubectl(emu, ['get', 'widget', 'beta', '-o', 'json'])).stdout);
  t.is(got.spec.colour, undefined, 'unknown field pruned');
  const imm = await kubectl(emu, ['patch', 'widget', 'beta', '--type=merge', '-p', '{"spec":{"owner":"bob"}}']);
  t.not(imm.code, 0);
  t.regex(imm.stderr, /spec: Invalid value: "object": owner is immutable/);
});

t2('kubectl server-side apply: field managers, conflicts, --force-conflicts, dry run', async (t) => {
  const emu = await withEmulator(t);
  await kubectl(emu, ['apply', '--server-side', '-f', crdFile]);
  const a = await kubectl(emu, ['apply', '--server-side', '--field-manager=alice', '-f', '-'], widgetYaml('gamma', '  size: 2\n  owner: ann\n'));
  t.is(a.code, 0, a.stderr);
  t.is(a.stdout.trim(), 'widget.test.podvnet.io/gamma serverside-applied');
  const b = await kubectl(emu, ['apply', '--server-side', '--field-manager=bob', '-f', '-'], widgetYaml('gamma', '  size: 3\n  owner: ann\n'));
  t.not(b.code, 0);
  t.regex(b.stderr, /conflict with "alice"/);
  t.regex(b.stderr, /\.spec\.size/);
  const f = await kubectl(emu, ['apply', '--server-side', '--field-manager=bob', '--force-conflicts', '-f', '-'], widgetYaml('gamma', '  size: 3\n  owner: ann\n'));
  t.is(f.code, 0, f.stderr);
  const dry = await kubectl(emu, ['apply', '--server-side', '--dry-run=server', '--field-manager=bob', '-f', '-'], widgetYaml('gamma', '  size: 9\n  owner: ann\n'));
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout, /serverside-applied \(server dry run\)/);
  const got = JSON.parse((await kubectl(emu, ['get', 'widget', 'gamma', '-o', 'json', '--show-managed-fields'])).stdout);
  t.is(got.spec.size, 3);
  t.deepEqual(got.metadata.managedFields.map((m: any) => `${m.manager}:${m.operation}`).sort(), ['alice:Apply', 'bob:Apply']);
  // client-side apply, then server-side: kubectl migrates the ownership (a JSON patch of managedFields),
  // so a later server-side apply that drops a key removes it
  const cm = (data: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  namespace: default\ndata: {${data}}\n`;
  t.is((await kubectl(emu, ['apply', '-f', '-'], cm('a: "1", b: "2"'))).code, 0);
  t.is((await kubectl(emu, ['apply', '--server-side', '-f', '-'], cm('a: "1", b: "2"'))).code, 0);
  t.is((await kubectl(emu, ['apply', '--server-side', '-f', '-'], cm('a: "1"'))).code, 0);
  t.is((await kubectl(emu, ['get', 'cm', 'm', '-o', 'jsonpath={.data}'])).stdout, '{"a":"1"}');
});

t2('kubectl with built-in kinds: configmap apply/patch (strategic merge), nodes, events, namespaces', async (t) => {
  const emu = await withEmulator(t);
  const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  namespace: default\ndata:\n  a: "1"\n';
  t.is((await kubectl(emu, ['apply', '-f', '-'], cm)).code, 0);
  const p = await kubectl(emu, ['patch', 'configmap', 'conf', '-p', '{"data":{"b":"2"}}']);
  t.is(p.code, 0, p.stderr);
  t.is((await kubectl(emu, ['get', 'cm', 'conf', '-o', 'jsonpath={.data.b}'])).stdout, '2');
  const nodes = 'apiVersion: v1\nkind: Node\nmetadata:\n  name: vm-1\n  labels:\n    node-role.kubernetes.io/worker: ""\nstatus:\n  conditions:\n  - type: Ready\n    status: "True"\n';
  t.is((await kubectl(emu, ['apply', '-f', '-'], nodes)).code, 0);
  const gn = await kubectl(emu, ['get', 'nodes']);
  t.regex(gn.stdout, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION/);
  t.regex(gn.stdout, /vm-1\s+Unknown\s+worker/, 'status is not writable through the main resource');
  // kubectl's typed generators send protobuf bodies
  const ns = await kubectl(emu, ['create', 'namespace', 'scratch']);
  t.is(ns.code, 0, ns.stderr);
  t.is((await kubectl(emu, ['get', 'ns', 'scratch', '-o', 'jsonpath={.metadata.labels}'])).stdout, '{"kubernetes.io/metadata.name":"scratch"}');
  t.is((await kubectl(emu, ['create', 'configmap', 'lit', '-n', 'scratch', '--from-literal=a=b'])).code, 0);
  t.is((await kubectl(emu, ['get', 'cm', 'lit', '-n', 'scratch', '-o', 'jsonpath={.data.a}'])).stdout, 'b');
  t.is((await kubectl(emu, ['create', 'secret', 'generic', 'pw', '-n', 'scratch', '--from-literal=p=x'])).code, 0);
  t.is((await kubectl(emu, ['get', 'secret', 'pw', '-n', 'scratch', '-o', 'jsonpath={.data.p}{.type}'])).stdout, 'eA==Opaque');
  t.is((await kubectl(emu, ['create', 'serviceaccount', 'bot', '-n', 'scratch'])).code, 0);
  const tok = await kubectl(emu, ['create', 'token', 'bot', '-n', 'scratch']);
  t.is(tok.code, 0, tok.stderr);
  t.regex((await kubectl(emu, ['--token', tok.stdout.trim(), 'auth', 'whoami'])).stdout, /Username\s+system:serviceaccount:scratch:bot/);
  t.is((await kubectl(emu, ['apply', '-n', 'scratch', '-f', '-'], cm.replace('namespace: default', 'namespace: scratch'))).code, 0);
  const who = await kubectl(emu, ['auth', 'whoami']);
  t.regex(who.stdout, /Username\s+kubernetes-admin/);
  t.is((await kubectl(emu, ['auth', 'can-i', 'list', 'configmaps'])).stdout.trim(), 'yes');
  const d = await kubectl(emu, ['delete', 'namespace', 'scratch', '--timeout=15s']);
  t.is(d.code, 0, d.stderr);
  t.regex((await kubectl(emu, ['get', 'ns'])).stdout, /^(?![\s\S]*scratch)/);
});

t2('RBAC: kubectl auth can-i (exit codes, --list), a Forbidden get, and access granted by a RoleBinding', async (t) => {
  const emu = await withEmulator(t);
  t.is((await kubectl(emu, ['create', 'namespace', 'team'])).code, 0);
  t.is((await kubectl(emu, ['create', 'serviceaccount', 'bot', '-n', 'team'])).code, 0);
  const tok = (await kubectl(emu, ['create', 'token', 'bot', '-n', 'team'])).stdout.trim();
  const as = (args: string[], stdin?: string) => kubectl(emu, ['--token', tok, ...args], stdin);
  const SA = 'system:serviceaccount:team:bot';

  let r = await as(['auth', 'can-i', 'list', 'configmaps', '-n', 'team']);
  t.is(r.stdout.trim(), 'no');
  t.is(r.code, 1, 'kubectl exits 1 for no');
  r = await as(['get', 'secrets', '-n', 'team']);
  t.is(r.code, 1);
  t.is(r.stderr.trim(), `Error from server (Forbidden): secrets is forbidden: User "${SA}" cannot list resource "secrets" in API group "" in the namespace "team"`);
  r = await as(['get', 'nodes']);
  t.is(r.stderr.trim(), `Error from server (Forbidden): nodes is forbidden: User "${SA}" cannot list resource "nodes" in API group "" at the cluster scope`);

  // a namespaced grant: the ClusterRole through a RoleBinding in team only
  // kubectl's generators (protobuf bodies) for roles and bindings
  r = await kubectl(emu, ['create', 'role', 'lease-renewer', '-n', 'team', '--verb=get,update', '--resource=leases.coordination.k8s.io', '--resource-name=mine']);
  t.is(r.code, 0, r.stderr);
  r = await kubectl(emu, ['create', 'rolebinding', 'bot-leases', '-n', 'team', '--role=lease-renewer', '--serviceaccount=team:bot']);
  t.is(r.code, 0, r.stderr);
  t.is((await as(['auth', 'can-i', 'update', 'leases.coordination.k8s.io/mine', '-n', 'team'])).stdout.trim(), 'yes');
  t.is((await as(['auth', 'can-i', 'update', 'leases.coordination.k8s.io/theirs', '-n', 'team'])).stdout.trim(), 'no');
  r = await kubectl(emu, ['create', 'clusterrole', 'node-lister', '--verb=list', '--resource=nodes']);
  t.is(r.code, 0, r.stderr);
  t.is((await kubectl(emu, ['get', 'clusterrole', 'node-lister', '-o', 'jsonpath={.rules[0].verbs} {.rules[0].resources}'])).stdout, '["list"] ["nodes"]');
  r = await kubectl(emu, ['create', 'clusterrolebinding', 'bot-nodes', '--clusterrole=node-lister', '--user=someone', '--group=bots']);
  t.is(r.code, 0, r.stderr);
  t.is((await kubectl(emu, ['get', 'clusterrolebinding', 'bot-nodes', '-o', 'jsonpath={.roleRef.kind}/{.roleRef.name} {.subjects[*].kind} {.subjects[*].name}'])).stdout, 'ClusterRole/node-lister User Group someone bots');
  const grant = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cm-reader}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}, {apiGroups: [""], resources: [secrets], resourceNames: [visible], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-reads, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cm-reader}
subjects: [{kind: ServiceAccount, name: bot, namespace: team}]
`;
  r = await kubectl(emu, ['apply', '-f', '-'], grant);
  t.is(r.code, 0, r.stderr);
  r = await as(['auth', 'can-i', 'list', 'configmaps', '-n', 'team']);
  t.is(r.stdout.trim(), 'yes');
  t.is(r.code, 0);
  t.is((await as(['auth', 'can-i', 'list', 'configmaps', '-n', 'default'])).stdout.trim(), 'no', 'a RoleBinding grants in its namespace only');
  t.is((await as(['auth', 'can-i', 'get', 'secrets/visible', '-n', 'team'])).stdout.trim(), 'yes');
  t.is((await as(['auth', 'can-i', 'get', 'secrets/hidden', '-n', 'team'])).stdout.trim(), 'no');
  t.is((await as(['auth', 'can-i', 'get', '/apis'])).stdout.trim(), 'yes', 'discovery for every authenticated user');
  r = await as(['get', 'configmaps', '-n', 'team']);
  t.is(r.code, 0, r.stderr);
  r = await as(['auth', 'can-i', '--list', '-n', 'team']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /configmaps\s+\[\]\s+\[\]\s+\[get list watch\]/);
  t.regex(r.stdout, /secrets\s+\[\]\s+\[visible\]\s+\[get\]/);
  t.regex(r.stdout, /selfsubjectaccessreviews\.authorization\.k8s\.io/);
  // impersonation (--as): the admin may; the bot may not
  t.is((await kubectl(emu, ['auth', 'can-i', 'list', 'configmaps', '-n', 'team', `--as=${SA}`])).stdout.trim(), 'yes');
  t.is((await kubectl(emu, ['auth', 'can-i', 'list', 'configmaps', '-n', 'default', `--as=${SA}`])).stdout.trim(), 'no');
  r = await kubectl(emu, ['get', 'secrets', '-n', 'team', '--as=jane', '--as-group=ops']);
  t.is(r.stderr.trim(), 'Error from server (Forbidden): secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team"');
  r = await as(['get', 'configmaps', '-n', 'team', '--as=kubernetes-admin']);
  t.is(r.stderr.trim(), `Error from server (Forbidden): users "kubernetes-admin" is forbidden: User "${SA}" cannot impersonate resource "users" in API group "" at the cluster scope`);
  // the admin (system:masters) may do anything; SubjectAccessReview asks about someone else
  t.is((await kubectl(emu, ['auth', 'can-i', 'delete', 'nodes'])).stdout.trim(), 'yes');
  const sar = `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"${SA}","groups":["system:serviceaccounts","system:authenticated"],"resourceAttributes":{"namespace":"team","verb":"watch","resource":"configmaps"}}}`;
  r = await kubectl(emu, ['create', '-f', '-', '-o', 'jsonpath={.status.allowed} {.status.reason}'], sar);
  t.is(r.stdout, 'true RBAC: allowed by RoleBinding "bot-reads/team" of ClusterRole "cm-reader" to ServiceAccount "bot/team"');
});

const haveRepoManifests = existsSync(`${repo}crds/podvnet.io_nodeippools.yaml`) && existsSync(`${repo}deploy/base/kustomization.yaml`);
(haveKubectl && haveRepoManifests ? test : test.skip)('the project manifests: CRDs, server-side dry-run of deploy/base, example pools', async (t) => {
  const emu = await withEmulator(t);
  const crds = await kubectl(emu, ['apply', '--server-side', '-f', `${repo}crds/`]);
  t.is(crds.code, 0, crds.stderr);
  // kubectl's server-side dry run cannot create the namespace the other objects need; create it first
  const rendered = await kubectl(emu, ['kustomize', `${repo}deploy/base`]);
  const nsDocs = YAML.parseAllDocuments(rendered.stdout).map((d) => d.toJSON()).filter((d) => d?.kind === 'Namespace');
  for (const n of nsDocs) t.is((await kubectl(emu, ['apply', '-f', '-'], YAML.stringify(n))).code, 0);
  const dry = await kubectl(emu, ['apply', '--server-side', '--dry-run=server', '-k', `${repo}deploy/base`]);
  t.is(dry.code, 0, dry.stderr);
  t.notRegex(dry.stdout + dry.stderr, /error/i);
  if (existsSync(`${repo}deploy/examples/nodeippools/kustomization.yaml`)) {
    const ex = await kubectl(emu, ['apply', '-k', `${repo}deploy/examples/nodeippools`]);
    t.is(ex.code, 0, ex.stderr);
    const get = await kubectl(emu, ['get', 'nodeippools']);
    t.is(get.code, 0, get.stderr);
  }
});

export type { Reply };
void readFileSync;
void widgetsCrd;

t2('kubectl --sort-by: table rows carry whole objects (kind and apiVersion too), so kubectl can sort them', async (t) => {
  const emu = await withEmulator(t);
  for (const name of ['b-ns', 'a-ns', 'c-ns']) t.is((await kubectl(emu, ['create', 'namespace', name])).code, 0);
  const r = await kubectl(emu, ['get', 'namespaces', '--sort-by', '.metadata.name', '-o', 'wide']);
  t.is(r.code, 0, r.stderr);
  const names = r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
  t.deepEqual(names.filter((n) => n!.endsWith('-ns')), ['a-ns', 'b-ns', 'c-ns'], r.stdout);
  t.regex(r.stdout.split('\n')[0]!, /^NAME\s+STATUS\s+AGE/);
  // events sort by their own time, as `kubectl get events --sort-by .eventTime` is used
  const ev = (name: string, time: string) => ({ apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name, namespace: 'default' }, eventTime: time, reportingController: 'x.io/c', reportingInstance: 'i', action: 'A', reason: `R-${name}`, type: 'Normal', note: name, regarding: { kind: 'Node', name: 'n' } });
  t.is((await kubectl(emu, ['create', '-f', '-'], JSON.stringify(ev('later', '2026-01-01T00:00:09.000000Z')))).code, 0);
  t.is((await kubectl(emu, ['create', '-f', '-'], JSON.stringify(ev('earlier', '2026-01-01T00:00:01.000000Z')))).code, 0);
  const events = await kubectl(emu, ['get', 'events', '-n', 'default', '--sort-by', '.eventTime']);
  t.is(events.code, 0, events.stderr);
  t.regex(events.stdout, /LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE\n.*R-earlier.*\n.*R-later/);
});
