import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sandbox, type ComponentLaunch, type SandboxProcess } from '../hack/sandbox/sandbox.js';
import { build, find } from '../deploy/testing/manifests.js';
import { pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { cidrContains, parseCIDR } from '../crds/ipv4.js';
import { DOCKER_CLI, startDockerd, type DockerDaemon } from './docker-daemon.js';
import { podDockerRun } from './pod-docker.js';

/**
 * The image as production runs it: hack/image/build.sh builds it (Debian base from debootstrap, Node.js from
 * the npm registry, dist/; cached, so a second run costs seconds), a private dockerd loads it, and the
 * sandbox's controller and node agent run FROM THE IMAGE with `docker run`, holding exactly the user,
 * capabilities, read-only root, host network and mounts that deploy/base's Deployment and DaemonSet
 * declare (read from the manifests by pod-docker.ts). The API server is reached as in a pod: in-cluster
 * config from a service-account token volume. Against the sandbox's emulators, a pod gets its VNet IP
 * through the agent in the container. Root only (debootstrap, dockerd, network namespaces).
 *
 * Additions no manifest declares, and why: the service-account volume (the kubelet adds it to every pod);
 * the Azure emulator's CA file (real Azure's CA is in the image's trust store); --host-netns (the agent's
 * node is a network namespace here, as in the sandbox); ports 0 and the emulator's endpoints as flags.
 */

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TEST_CA = '/var/run/secrets/podvnet-test/azure-ca.pem';

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Drops `--flag value` / `--flag=value` pairs from a sandbox argument list. */
function without(args: string[], flags: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.split('=')[0]!;
    if (!flags.includes(name)) out.push(a);
    else if (!a.includes('=')) i++;
  }
  return out;
}
const valueOf = (args: string[], flag: string): string => {
  const i = args.indexOf(flag);
  if (i < 0 || args[i + 1] === undefined) throw new Error(`no ${flag} in ${args.join(' ')}`);
  return args[i + 1]!;
};

/** The time from `docker run` to a line matching `ready` in the container's log. */
function timeToLine(logFile: string, ready: RegExp, startedAt: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (ready.test(text)) return resolve(Date.now() - startedAt);
      if (Date.now() > deadline) return reject(new Error(`no ${String(ready)} in ${logFile} within ${timeoutMs} ms:\n${text.slice(-2000)}`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

test.serial('the controller and the agent run from the image with the manifests\' privileges; a pod gets its VNet IP', async (t) => {
  t.timeout(1_500_000); // a first build: debootstrap, npm pack, npm ci; cached afterwards
  if (process.getuid?.() !== 0) {
    t.fail('needs root (debootstrap, dockerd, network namespaces): sudo npx ava e2e/image.test.ts');
    return;
  }
  const started = Date.now();
  const built = await run('bash', ['hack/image/build.sh'], 1_400_000);
  t.is(built.code, 0, `hack/image/build.sh failed:\n${built.stderr.slice(-3000)}`);
  if (built.code !== 0) return;
  const imageTar = built.stdout.trim().split('\n').at(-1)!;
  t.log(`image build: ${((Date.now() - started) / 1000).toFixed(1)} s (${built.stderr.trim().split('\n').at(-1)})`);

  const work = mkdtempSync(path.join(tmpdir(), 'podvnet-image-test-'));
  chmodSync(work, 0o755); // the controller runs as 65532 and reads its token and CA from here
  t.teardown(() => {
    // dockerd leaves a namespace mount (exec/netns/default) behind: unmount what is under work/ first
    for (const m of readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((p) => p?.startsWith(`${work}/`))) {
      spawnSync('umount', ['-l', m!]);
    }
    rmSync(work, { recursive: true, force: true });
  });
  const docker: DockerDaemon = await startDockerd({ root: path.join(work, 'dockerd') });
  t.teardown(() => docker.stop());
  await docker.ok(['load', '-i', imageTar]);
  const image = 'podvnet:dev';
  const size = Number((await docker.ok(['image', 'inspect', image, '--format', '{{.Size}}'])).trim());
  t.log(`image size: ${(size / 1e6).toFixed(1)} MB`);

  // start-up of the bare commands from the image: `docker start` to exit of --help (the container is
  // created first: with the vfs storage driver, creating one copies the whole image)
  for (const [what, main] of [['controller', '/app/dist/controllers/main.js'], ['agent', '/app/dist/node-plugin/agent/main.js']] as const) {
    const id = (await docker.ok(['create', '--network', 'host', image, 'node', main, '--help'])).trim();
    const t0 = Date.now();
    const help = await docker.cli(['start', '-a', id]);
    const ms = Date.now() - t0;
    await docker.cli(['rm', id]);
    t.is(help.code, 0, help.stderr);
    t.regex(help.stdout, /--log-level/, `${what} --help from the image`);
    // the reference, in the same run: the same compiled command on the host, no container
    const h0 = Date.now();
    const host = await run(process.execPath, [path.join(REPO, main.replace('/app/', '')), '--help'], 120_000);
    t.is(host.code, 0, host.stderr);
    t.log(`${what}: docker start -a of \`node ${main} --help\` from the image: ${ms} ms (on the host, compiled: ${Date.now() - h0} ms)`);
  }

  const objs = build('deploy/base');
  const deployment = find(objs, 'Deployment', 'podvnet-controller');
  const daemonSet = find(objs, 'DaemonSet', 'podvnet-node');
  const readyMs: Record<string, number> = {};
  const containers: Record<string, { container: string; ready: RegExp; log: string }> = {};
  const waits: Promise<void>[] = [];

  const launch = (l: ComponentLaunch, sandbox: Sandbox): SandboxProcess => {
    const dir = path.join(work, l.name);
    const sa = path.join(dir, 'serviceaccount');
    mkdirSync(sa, { recursive: true, mode: 0o755 });
    writeFileSync(path.join(sa, 'token'), l.serviceAccount.token, { mode: 0o644 });
    writeFileSync(path.join(sa, 'namespace'), l.serviceAccount.namespace, { mode: 0o644 });
    writeFileSync(path.join(sa, 'ca.crt'), l.kube.caPem ?? '', { mode: 0o644 });
    const api = new URL(l.kube.url);
    const extraEnv = { KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port || '443' };
    const extraMounts = [{ source: sa, target: SA_DIR, readOnly: true }];
    const fieldValues = {
      'spec.nodeName': l.nodeName ?? 'controller-node', 'status.hostIP': '127.0.0.1',
      'metadata.name': `${l.name}-pod`, 'metadata.namespace': l.serviceAccount.namespace,
    };
    const name = `podvnet-image-test-${process.pid}-${l.name}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
    let spec;
    if (l.command === 'controller') {
      const ca = path.join(dir, 'azure-ca.pem');
      copyFileSync(valueOf(l.args, '--azure-ca-file'), ca);
      chmodSync(ca, 0o644);
      extraMounts.push({ source: ca, target: TEST_CA, readOnly: true });
      spec = podDockerRun({
        podSpec: deployment.spec.template.spec, container: 'controller', image, name, fieldValues, extraEnv, extraMounts,
        extraArgs: [...without(l.args, ['--azure-ca-file']), '--azure-ca-file', TEST_CA],
      });
    } else {
      // the agent's socket, state and DEL-queue directories: the DaemonSet's host paths, one set per simulated node
      const socket = valueOf(l.args, '--socket');
      if (path.basename(socket) !== 'agent.sock') throw new Error(`the DaemonSet's socket is agent.sock, the sandbox asked for ${socket}`);
      spec = podDockerRun({
        podSpec: daemonSet.spec.template.spec, container: 'agent', image, name, fieldValues, extraEnv, extraMounts,
        hostPathMap: {
          '/run/podvnet': path.dirname(socket), '/var/lib/podvnet': valueOf(l.args, '--state-dir'),
          '/var/lib/podvnet/del-queue': valueOf(l.args, '--del-queue-dir'),
        },
        extraArgs: without(l.args, ['--socket', '--state-dir', '--del-queue-dir', '--node-name']),
      });
    }
    for (const d of spec.prepare.dirs) mkdirSync(d, { recursive: true });
    for (const f of spec.prepare.files) if (!existsSync(f)) closeSync(openSync(f, 'a'));
    const child = sandbox.startProcess(l.name, ['--host', `unix://${docker.socket}`, 'run', ...spec.args], DOCKER_CLI);
    const ready = l.command === 'controller' ? /serving metrics and health/ : /agent started/;
    containers[l.name] = { container: name, ready, log: path.join(l.logDir, `${l.name}.log`) };
    waits.push(timeToLine(path.join(l.logDir, `${l.name}.log`), ready, Date.now(), 120_000).then((ms) => { readyMs[l.name] = ms; }));
    return child;
  };

  const sandbox = await Sandbox.start({ vms: 1, scaleSetInstances: 0, launch, logDir: path.join(work, 'logs') });
  t.teardown(() => sandbox.close());
  await Promise.all(waits);
  for (const [name, c] of Object.entries(containers)) {
    // the process's own start-up: from the container's start (docker inspect) to its ready log line (pino time)
    const startedAt = Date.parse((await docker.ok(['inspect', '--format', '{{.State.StartedAt}}', c.container])).trim().replace(/(\.\d{3})\d*/, '$1'));
    const line = readFileSync(c.log, 'utf8').split('\n').find((l) => c.ready.test(l))!;
    const readyAt = (JSON.parse(line) as { time: number }).time;
    t.log(`${name}: container start to ready (${String(c.ready)}): ${readyAt - startedAt} ms; docker run to ready, with the vfs copy of the image: ${readyMs[name]} ms`);
  }
  const running = (await docker.ok(['ps', '--format', '{{.Names}} {{.Image}}'])).trim().split('\n');
  t.is(running.length, 2, `the controller and one agent run in containers: ${running.join(', ')}`);
  t.true(running.every((line) => line.endsWith(' podvnet:dev')));

  const [n] = sandbox.nodes;
  await sandbox.waitFor('the node record to hold its minimum IPs (the controller in its container, through Azure)', async () =>
    ((await sandbox.record(n!.name)).status?.ips ?? []).length >= 4, 120_000);
  const pod = await sandbox.addPod(n!.name, 'from-image');
  t.true(cidrContains(parseCIDR(sandbox.podSubnet), pod.ip), `${pod.ip} is in the pool's subnet ${sandbox.podSubnet}`);
  t.true(sandbox.fabric.nicIPs(n!.name).includes(pod.ip), `${pod.ip} is an ip-config of the node's NIC`);
  t.true(await pingEventually(pod.netns, n!.azure.primaryIP), 'the pod reaches its node over the datapath the containerised agent built');
  await sandbox.deletePod('from-image');
});
