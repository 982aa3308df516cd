import test from 'ava';
import { build, find } from '../deploy/testing/manifests.js';
import { podDockerRun } from './pod-docker.js';

/** The manifests of deploy/base as `docker run` arguments: what e2e/image.test.ts runs the image with. */

const objs = build('deploy/base');
const controller = find(objs, 'Deployment', 'podvnet-controller').spec.template.spec;
const node = find(objs, 'DaemonSet', 'podvnet-node').spec.template.spec;
const fieldValues = { 'spec.nodeName': 'n1', 'status.hostIP': '10.0.0.4', 'metadata.name': 'pod-1', 'metadata.namespace': 'podvnet-system' };

test('the controller: non-root 65532, no capabilities, read-only root, no privilege escalation, host network', (t) => {
  const r = podDockerRun({ podSpec: controller, container: 'controller', image: 'img', name: 'c', fieldValues });
  const a = r.args.join(' ');
  t.is(r.user, '65532:65532');
  t.true(a.includes('--network host'));
  t.true(a.includes('--user 65532:65532'));
  t.true(a.includes('--cap-drop ALL'));
  t.false(a.includes('--cap-add'));
  t.true(a.includes('--read-only'));
  t.true(a.includes('--security-opt no-new-privileges'));
  t.false(a.includes('--privileged'));
  t.false(a.includes('--mount'), 'the Deployment mounts nothing');
  t.true(a.includes('--env POD_NAMESPACE=podvnet-system'));
  t.true(a.includes('--env NODE_OPTIONS=--max-old-space-size=768'));
  t.deepEqual(r.args.slice(r.args.indexOf('img')), ['img', 'node', '/app/dist/controllers/main.js', '--leader-elect=true',
    '--lease-name=podvnet-controller', '--http-host=10.0.0.4', '--http-port=9465', '--event-namespace=default']);
});

test('the agent: root with NET_ADMIN, NET_RAW, SYS_ADMIN only; the declared host paths, remapped where asked', (t) => {
  const r = podDockerRun({
    podSpec: node, container: 'agent', image: 'img', name: 'a', fieldValues,
    hostPathMap: { '/run/podvnet': '/tmp/x/run', '/var/lib/podvnet': '/tmp/x/state', '/var/lib/podvnet/del-queue': '/tmp/x/del-queue' }, extraArgs: ['--metrics-address', '127.0.0.1:0'],
  });
  const a = r.args.join(' ');
  t.is(r.user, '0');
  t.deepEqual(r.args.filter((_, i) => r.args[i - 1] === '--cap-add'), ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']);
  t.true(a.includes('--cap-drop ALL'));
  t.true(a.includes('--mount type=bind,source=/tmp/x/run,target=/run/podvnet'));
  t.true(a.includes('--mount type=bind,source=/tmp/x/state,target=/var/lib/podvnet'));
  t.true(a.includes('--mount type=bind,source=/tmp/x/del-queue,target=/var/lib/podvnet/del-queue'));
  t.true(a.includes('--mount type=bind,source=/var/run/netns,target=/var/run/netns,bind-propagation=rslave'));
  t.true(a.includes('--mount type=bind,source=/proc/sys/net,target=/host/proc/sys/net'));
  t.true(a.includes('--mount type=tmpfs,target=/tmp,tmpfs-size=16777216'));
  t.true(a.includes(`--memory ${256 * 1024 * 1024}`));
  t.deepEqual(r.prepare, { dirs: ['/tmp/x/run', '/tmp/x/state', '/tmp/x/del-queue', '/var/run/netns'], files: ['/run/xtables.lock'] });
  t.true(a.includes('--node-name=n1'));
  t.true(a.endsWith('--metrics-address=10.0.0.4:9464 --metrics-address 127.0.0.1:0'));
});

test('refused: a container that is not there, runAsNonRoot as root, a pod off the host network, an unknown volume kind', (t) => {
  t.throws(() => podDockerRun({ podSpec: controller, container: 'nope', image: 'i', name: 'n', fieldValues }), { message: /no container nope/ });
  const rootAsNonRoot = { ...controller, securityContext: { runAsNonRoot: true, runAsUser: 0 } };
  t.throws(() => podDockerRun({ podSpec: rootAsNonRoot, container: 'controller', image: 'i', name: 'n', fieldValues }), { message: /runAsNonRoot/ });
  t.throws(() => podDockerRun({ podSpec: { ...controller, hostNetwork: false }, container: 'controller', image: 'i', name: 'n', fieldValues }), { message: /hostNetwork/ });
  t.throws(() => podDockerRun({ podSpec: node, container: 'cni-installer', image: 'i', name: 'n', fieldValues }), { message: /cni-config: only hostPath and emptyDir/ });
});
