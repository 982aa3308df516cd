import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { FORWARDER, startTestNode } from '../agent/testing/test-node.js';

/**
 * A real container runtime: podman (CNI backend) runs a busybox container whose network comes from our
 * plugin. Everything podman needs is test-owned: a containers.conf (via CONTAINERS_CONF, so the system's
 * is not touched) with network_backend = "cni", runc as the OCI runtime (crun refuses hybrid-cgroup machines),
 * the lowered ulimits this sandbox needs, our conflist
 * directory and plugin directory, and separate image storage. The image is imported from
 * busybox-static's /bin/busybox. Needs root, podman and busybox-static.
 */

const exec = promisify(execFile);
const hasPodman = spawnSync('podman', ['--version']).status === 0;
const hasRunc = spawnSync('runc', ['--version']).status === 0;

test('podman runs a busybox container that gets its VNet IP through podvnet-cni, and DEL frees it', async (t) => {
  if (!hasPodman) {
    t.fail('podman is not installed (apt-get install podman)');
    return;
  }
  if (!hasRunc) {
    t.fail('runc is not installed (apt-get install runc; docker.io brings it)');
    return;
  }
  t.timeout(90_000);
  const node = await startTestNode({ podIPCount: 4 });
  t.teardown(() => node.close());
  const dir = path.join(node.dir, 'podman');
  const netName = `podvnet-${path.basename(node.dir).slice(-6).toLowerCase()}`;
  await mkdir(path.join(dir, 'net.d'), { recursive: true });
  await mkdir(path.join(dir, 'rootfs/bin'), { recursive: true });
  await writeFile(
    path.join(dir, 'containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
      // runc, not podman's default crun: crun refuses to start containers on hybrid-cgroup machines
      // (cgroup v1 controllers plus a cgroup2 mount with a controller left on it); runc comes with docker.io
      '[engine]',
      'runtime = "runc"',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${path.dirname(FORWARDER)}", "/usr/lib/cni"]`,
      `network_config_dir = "${path.join(dir, 'net.d')}"`,
      '',
    ].join('\n'),
  );
  await writeFile(
    path.join(dir, 'net.d', `${netName}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: netName,
      plugins: [{ type: 'podvnet-cni', agentSocket: node.socket }],
    }),
  );
  await copyFile('/bin/busybox', path.join(dir, 'rootfs/bin/busybox'));
  await symlink('busybox', path.join(dir, 'rootfs/bin/sh'));
  const env = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf') };
  const podman = ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs'];
  const image = `localhost/podvnet-busybox-${netName}`;
  await exec('sh', ['-c', `tar -C ${dir}/rootfs -c . | podman ${podman.join(' ')} import - ${image}`], { env });
  t.teardown(async () => {
    await exec('podman', [...podman, 'rm', '-af'], { env }).catch(() => undefined);
    await exec('podman', [...podman, 'rmi', '-af'], { env }).catch(() => undefined);
  });

  // up to five probes: on a loaded machine the first can be lost to a slow ARP answer
  const ping = `for i in 1 2 3 4 5; do ping -c 1 -W 2 ${node.vm.primaryIP} >/dev/null && echo PING-OK && break; done`;
  const script = `ip -4 -o addr show dev eth0; ${ping}; ip route show default`;
  const { stdout } = await exec('podman', [...podman, 'run', '--rm', '--network', netName, image, '/bin/busybox', 'sh', '-c', script], { env, timeout: 60_000 });
  const ip = /inet (\d+\.\d+\.\d+\.\d+)\/22/.exec(stdout)?.[1];
  t.truthy(ip, stdout);
  t.true(node.podIPs.includes(ip!), `container IP ${ip} is one of the node's VNet IPs`);
  t.regex(stdout, /PING-OK/, 'the container reaches the node over the VNet datapath');
  t.regex(stdout, /default via 10\.40\.4\.1/);
  // podman called DEL when the container went away: the IP is free again and nothing is left on the bridge
  t.deepEqual(node.agent!.addresses.listAllocations(), []);
  const links = await node.fabric.exec('vm1', ['ip', '-o', 'link', 'show', 'master', 'podvnet0']);
  t.is(links.trim(), '');
});
