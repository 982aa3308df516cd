import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, symlinkSync, copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A private dockerd for tests: its own data root, exec root and API socket under a temp dir, no bridge,
 * no iptables rules, no IP forwarding changes, the vfs storage driver (works on any filesystem), started
 * inside a given network namespace (`nsenter --net`, so it sees only that namespace's links) so that it
 * never touches the machine's own network. Plugins are still found through /run/docker/plugins and
 * /etc/docker/plugins: those paths are fixed in dockerd.
 */

const execFileP = promisify(execFile);

/** Debian's client matches Debian's daemon; any docker CLI on PATH works too (it negotiates the API). */
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export interface DockerDaemon {
  socket: string;
  root: string;
  logPath: string;
  /** Runs the docker CLI against this daemon; resolves with the exit code instead of throwing. */
  cli(args: string[], input?: Buffer): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Like cli, but throws with stderr on a non-zero exit. */
  ok(args: string[], input?: Buffer): Promise<string>;
  stop(): Promise<void>;
  /** SIGKILL, as a crash: containers and their shims keep running. */
  kill(): Promise<void>;
}

export function findDockerd(): string | undefined {
  for (const p of ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd']) if (existsSync(p)) return p;
  return undefined;
}

/** Why a Docker test cannot run here (the caller skips), or undefined if it can. */
export function dockerTestUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (the test makes network namespaces and runs dockerd)';
  if (!findDockerd()) return 'dockerd is not installed: apt-get install docker.io';
  return undefined;
}

/** A test's clean-up: every container and every network of the plugin `driver` removed, then dockerd stopped. */
export async function removeAllAndStop(d: DockerDaemon, driver: string): Promise<void> {
  const ids = (await d.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await d.cli(['rm', '-f', ...ids]);
  const nets = (await d.cli(['network', 'ls', '-q', '--filter', `driver=${driver}`])).stdout.split('\n').filter(Boolean);
  if (nets.length) await d.cli(['network', 'rm', ...nets]);
  await d.stop();
}

export async function startDockerd(opts: { root: string; netnsPath?: string; timeoutMs?: number }): Promise<DockerDaemon> {
  const dockerd = findDockerd();
  if (!dockerd) throw new Error('dockerd is not installed (Debian package docker.io)');
  mkdirSync(opts.root, { recursive: true });
  const socket = join(opts.root, 'docker.sock');
  const logPath = join(opts.root, 'dockerd.log');
  const args = dockerdArgs(opts.root, socket);
  const argv = opts.netnsPath ? ['nsenter', `--net=${opts.netnsPath}`, '--', dockerd, ...args] : [dockerd, ...args];
  const log = openSync(logPath, 'a');
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  const daemon = daemonControl(child);
  const { cli, ok } = dockerCli(socket);

  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemon.exited()) throw new Error(`${daemon.exited()} while starting; last log lines:\n${tail(logPath)}`);
    if (existsSync(socket) && (await cli(['version', '--format', '{{.Server.Version}}'])).code === 0) break;
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`dockerd did not answer on ${socket} within ${timeoutMs} ms; last log lines:\n${tail(logPath)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { socket, root: opts.root, logPath, cli, ok, stop: daemon.stop, kill: daemon.kill };
}

/** A dockerd of its own under `root` that touches nothing of the host's networking. */
function dockerdArgs(root: string, socket: string): string[] {
  return [
    `--data-root=${join(root, 'data')}`,
    `--exec-root=${join(root, 'exec')}`,
    `--pidfile=${join(root, 'dockerd.pid')}`,
    `--host=unix://${socket}`,
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    '--storage-driver=vfs',
    '--userland-proxy=false',
    '--log-level=info',
    // Containers get this long to stop when the daemon stops (the default is 15 s): test containers run
    // `sleep` as PID 1, which ignores SIGTERM.
    '--shutdown-timeout=1',
  ];
}

/** The docker CLI against `socket`: cli() resolves with the exit code and output, ok() throws on failure. */
function dockerCli(socket: string): Pick<DockerDaemon, 'cli' | 'ok'> {
  const cli = (cliArgs: string[], input?: Buffer) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const c = spawn(DOCKER_CLI, ['--host', `unix://${socket}`, ...cliArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      c.stdout.on('data', (b: Buffer) => out.push(b));
      c.stderr.on('data', (b: Buffer) => err.push(b));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
      c.stdin.on('error', () => undefined);
      c.stdin.end(input ?? '');
    });
  const ok = async (cliArgs: string[], input?: Buffer) => {
    const r = await cli(cliArgs, input);
    if (r.code !== 0) throw new Error(`docker ${cliArgs.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  return { cli, ok };
}

/** Stopping the daemon: stop() gracefully (SIGKILL after 15 s), kill() as a crash; exited() says why it is gone. */
function daemonControl(child: ChildProcess): { exited(): string | undefined; stop(): Promise<void>; kill(): Promise<void> } {
  let exited: string | undefined;
  child.on('exit', (code, signal) => {
    exited = `dockerd exited (${signal ?? `code ${code}`})`;
  });
  const stop = async () => {
    if (exited) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await done;
    clearTimeout(timer);
  };
  const kill = async () => {
    if (exited) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await done;
  };
  return { exited: () => exited, stop, kill };
}

export function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Imports a busybox image (no registry here): a rootfs with busybox-static's binary and the applet links
 * the tests use, piped through `docker import`.
 */
export async function importBusybox(d: DockerDaemon, tag: string): Promise<void> {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) throw new Error('busybox is not installed (Debian package busybox-static)');
  const rootfs = join(d.root, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'ip', 'ping', 'sleep', 'cat', 'ifconfig', 'true', 'nc', 'hostname']) {
    if (!existsSync(join(rootfs, 'bin', applet))) symlinkSync('busybox', join(rootfs, 'bin', applet));
  }
  const { stdout: tar } = await execFileP('tar', ['-C', rootfs, '-c', '.'], { encoding: 'buffer', maxBuffer: 64 << 20 });
  await d.ok(['import', '-', tag], tar);
}

/**
 * `docker rm -f` of the container with exactly this name, if there is one. A plain `docker rm -f c5` for a
 * name that is already gone removes whichever container's ID starts with "c5" (IDs are hex and the daemon
 * takes an ID prefix), so a test's cleanup could remove another of its containers (with three about, 1
 * run in 85).
 */
export async function removeByName(d: DockerDaemon, name: string): Promise<void> {
  const ids = (await d.ok(['ps', '-aq', '--no-trunc', '--filter', `name=^/?${name}$`])).split('\n').filter(Boolean);
  if (ids.length) await d.ok(['rm', '-f', ...ids]);
}

/**
 * `ping` from inside a container: single probes until one is answered or about `timeoutMs` has passed
 * (a loaded CI machine can lose the first to a slow ARP answer, and `docker exec` itself is slow then);
 * resolves with the last attempt's result.
 */
export async function pingFrom(d: DockerDaemon, container: string, ip: string, timeoutMs = 15_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await d.cli(['exec', container, 'ping', '-c', '1', '-W', '2', ip]);
    if (last.code === 0 || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
}
