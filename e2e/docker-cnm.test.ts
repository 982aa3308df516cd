import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as datapath from '../node-plugin/datapath/index.js';
import { STATE_FILE } from '../node-plugin/cnm/state.js';
import { pingFrom, removeByName, startDockerd, tail } from './docker-daemon.js';
import { pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { IMAGE, NODE_IP, OUTSIDE_HOST_IP, POD_SUBNET, startDockerCnmEnv, VNET_HOST_IP } from './docker-env.js';

/**
 * The azure-vnet CNM driver under a real dockerd. A simulated Azure VM (a network namespace with its NIC on
 * a simulated VNet fabric) runs a private dockerd; the driver runs in this process with the real datapath
 * and a PodAddressService over a fixed list of the NIC's secondary IPs. Containers must get those IPs, talk
 * to each other, to the node and, through the fabric, to another VNet host; an exhausted pool must fail
 * with the explanation; removing everything must leave nothing behind.
 *
 * Needs root, docker.io, busybox-static, iproute2 and iptables. The plugin gets a unique name per run
 * (a spec file in /etc/docker/plugins) so parallel runs and a real azure-vnet plugin do not collide.
 */

const POD_IPS = Array.from({ length: 10 }, (_, i) => `10.61.1.${10 + i}`);

const env = await startDockerCnmEnv({ podIPs: POD_IPS });

if (typeof env === 'string') {
  console.warn(`docker-cnm: SKIPPED: ${env}`);
  test.skip(`docker CNM driver with a real dockerd (skipped: ${env})`, () => undefined);
} else {
  test.after.always(() => env.close());

  const ipOf = async (name: string) =>
    (await env.docker.ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name])).trim();
  const ping = (from: string, to: string) => pingFrom(env.docker, from, to);
  const diag = () => `\n--- dockerd log ---\n${tail(env.docker.logPath)}\n--- driver log ---\n${tail(env.driverLog, 10)}`;
  const run = (name: string) =>
    env.docker.ok(['run', '-d', '--stop-timeout=1', '--name', name, '--net=azure', IMAGE, 'sleep', '600']).catch((e) => {
      throw new Error(`${(e as Error).message}${diag()}`);
    });

  test.serial('network create: the pod subnet is accepted, any other refused with the reason', async (t) => {
    const { docker, plugin } = env;
    const wrong = await docker.cli(['network', 'create', `--driver=${plugin}`, `--ipam-driver=${plugin}`, '--subnet=192.168.77.0/24', 'wrong']);
    t.not(wrong.code, 0);
    t.regex(wrong.stderr, /does not match this node's pod subnet 10\.61\.1\.0\/24/, wrong.stderr);
    const foreignIpam = await docker.cli(['network', 'create', `--driver=${plugin}`, `--subnet=${POD_SUBNET}`, 'wrong2']);
    t.not(foreignIpam.code, 0);
    t.regex(foreignIpam.stderr, /addresses come from another IPAM driver/, foreignIpam.stderr);

    await docker.ok(['network', 'create', `--driver=${plugin}`, `--ipam-driver=${plugin}`, `--subnet=${POD_SUBNET}`, 'azure']).catch((e) => {
      throw new Error(`${(e as Error).message}${diag()}`);
    });
    const netInfo = JSON.parse(await docker.ok(['network', 'inspect', 'azure']))[0];
    t.is(netInfo.Driver, plugin);
    t.is(netInfo.IPAM.Driver, plugin);
    t.deepEqual(netInfo.IPAM.Config, [{ Subnet: POD_SUBNET }]);
  });

  test.serial('containers get pool IPs and talk to each other, the node and the VNet', async (t) => {
    const { docker, pool, fabric, net } = env;
    await run('c1');
    await run('c2');
    const ip1 = await ipOf('c1');
    const ip2 = await ipOf('c2');
    t.true(POD_IPS.includes(ip1), `c1 got ${ip1}`);
    t.true(POD_IPS.includes(ip2), `c2 got ${ip2}`);
    t.not(ip1, ip2);
    t.deepEqual([...pool.held.values()].sort(), [ip1, ip2].sort(), 'the pool hands out exactly what the containers have');

    // Inside the container: the address with the subnet's prefix and Azure's gateway as default route.
    t.regex(await docker.ok(['exec', 'c1', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']), new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/24`));
    t.regex(await docker.ok(['exec', 'c1', 'ip', 'route']), /default via 10\.61\.1\.1 dev eth0/);
    t.regex(await docker.ok(['exec', 'c1', 'ip', '-o', 'link', 'show', 'dev', 'eth0']), new RegExp(`mtu ${net.mtu} `), 'the datapath MTU');

    // Container to container, to the node, and across the fabric to another VNet host (no SNAT in the VNet).
    // And out of the VNet, which the fabric allows only from the NIC's primary IP: through the node's SNAT.
    for (const [from, to] of [['c1', ip2], ['c2', ip1], ['c1', NODE_IP], ['c1', VNET_HOST_IP], ['c2', OUTSIDE_HOST_IP]] as const) {
      const r = await ping(from, to);
      t.is(r.code, 0, `${from} -> ${to}: ${r.stdout}${r.stderr}`);
    }
    // The VNet host reaches the container by its VNet IP (the fabric delivers it to the node's NIC only).
    t.true(await pingEventually(`${fabric.prefix}-vhost`, ip1), `VNet host -> ${ip1}`);

    // Publishing ports makes no sense on a VNet address and is refused; the address goes back.
    const published = await docker.cli(['run', '--rm', '--net=azure', '-p', '8080:80', IMAGE, 'true']);
    t.not(published.code, 0);
    t.regex(published.stderr, /publishing ports \(-p\/-P\) is not supported: the container has its own VNet address/, published.stderr);
    t.is(pool.held.size, 2);

    // The datapath labels the Docker veths with the owners the agent knows the addresses by.
    const attachments = await datapath.listAttachments(net);
    t.deepEqual(attachments.map((a) => `${a.containerId}/${a.ifName}=${a.ip}`).sort(), [...pool.held.entries()].map(([k, ip]) => `${k}=${ip}`).sort());
  });

  test.serial('concurrent docker runs get distinct IPs; a full pool and --ip fail with the reason', async (t) => {
    const { docker, pool } = env;
    const names = POD_IPS.slice(2).map((_, i) => `p${i}`);
    const started = Date.now();
    await Promise.all(names.map((n) => run(n)));
    t.log(`${names.length} concurrent docker runs on azure-vnet: ${Date.now() - started} ms`);
    const ips = await Promise.all(['c1', 'c2', ...names].map(ipOf));
    t.deepEqual([...ips].sort(), [...POD_IPS].sort(), 'every pool IP used exactly once');
    t.is(pool.held.size, POD_IPS.length);
    const r = await ping(names[0]!, ips[ips.length - 1]!);
    t.is(r.code, 0, `${names[0]} -> ${ips[ips.length - 1]}: ${r.stdout}${r.stderr}`);

    const pinned = await docker.cli(['run', '--rm', '--net=azure', '--ip', '10.61.1.99', IMAGE, 'true']);
    t.not(pinned.code, 0);
    t.regex(pinned.stderr, /a chosen address \(10\.61\.1\.99, from --ip or --aux-address\) is not supported/, pinned.stderr);

    const full = await docker.cli(['run', '--name', 'c3', '--net=azure', IMAGE, 'true']);
    t.not(full.code, 0);
    t.log(`docker run on a full pool: ${full.stderr.trim()}`);
    t.regex(full.stderr, /no free IP for this container/, full.stderr);
    t.regex(full.stderr, /subnet 10\.61\.1\.0\/24/);
    t.regex(full.stderr, /node vm-node/);
    t.regex(full.stderr, /NodeIPPool's max IPs per node/);
    await removeByName(docker, 'c3');
    t.is(pool.held.size, POD_IPS.length, 'the failed container holds no extra address');

    // Removing containers gives their addresses back; the next container can use one.
    await docker.ok(['rm', '-f', ...names]);
    t.is(pool.held.size, 2);
    await run('c4');
    t.true(POD_IPS.includes(await ipOf('c4')));
    t.is((await ping('c4', await ipOf('c2'))).code, 0, 'a reused address works');
  });

  test.serial('docker network connect/disconnect a running container (Join into an existing sandbox)', async (t) => {
    const { docker, pool, net } = env;
    await docker.ok(['network', 'create', '--driver=bridge', '--subnet=172.31.9.0/24', 'other']);
    t.teardown(() => docker.cli(['network', 'rm', 'other']));
    await docker.ok(['run', '-d', '--stop-timeout=1', '--name', 'c5', '--net=other', IMAGE, 'sleep', '600']);
    t.teardown(() => removeByName(docker, 'c5')); // by exact name: it is gone by then, and "c5" is also an ID prefix
    const held = pool.held.size;
    await docker.ok(['network', 'connect', 'azure', 'c5']);
    const ip5 = JSON.parse(await docker.ok(['inspect', 'c5']))[0].NetworkSettings.Networks.azure.IPAddress as string;
    t.true(POD_IPS.includes(ip5), `c5 got ${ip5} on azure`);
    t.is(pool.held.size, held + 1);
    const r = await ping('c5', await ipOf('c2'));
    t.is(r.code, 0, `c5 -> c2 over azure: ${r.stdout}${r.stderr}`);
    await docker.ok(['network', 'disconnect', 'azure', 'c5']);
    t.is(pool.held.size, held, 'disconnect released the address');
    t.false((await datapath.listAttachments(net)).some((a) => a.ip === ip5), 'and removed the veth');
    await docker.ok(['rm', '-f', 'c5']);
  });

  test.serial('after a driver restart, docker still releases what the driver handed out before it; a dockerd restart brings containers back', async (t) => {
    const { pool, net, vm } = env;
    const before = [...pool.held.entries()].sort();
    t.is(before.length, 3);

    // The driver restarts (state from its state dir) ...
    await env.restartDriver();
    t.deepEqual([...pool.held.entries()].sort(), before, 'the restarted driver gave nothing back');

    // ... and dockerd restarts; its containers stop with it (no live-restore), so their endpoints are
    // left, deleted and their addresses released through the restarted driver, which must still know them.
    let started = Date.now();
    await env.docker.stop();
    t.log(`dockerd stopped in ${Date.now() - started} ms`);
    t.is(pool.held.size, 0, `addresses still held after the containers stopped: ${[...pool.held.values()].join(', ')}${diag()}`);
    t.deepEqual(await datapath.listAttachments(net), [], 'their veths are gone');
    started = Date.now();
    env.docker = await startDockerd({ root: join(env.root, 'd'), netnsPath: vm.netnsPath });
    t.log(`dockerd started again in ${Date.now() - started} ms`);

    // Starting the containers again gets them fresh addresses and working interfaces.
    await env.docker.ok(['start', 'c1', 'c2', 'c4']);
    const ips = await Promise.all(['c1', 'c2', 'c4'].map(ipOf));
    t.is(new Set(ips).size, 3);
    t.true(ips.every((ip) => POD_IPS.includes(ip)));
    const r = await ping('c1', ips[2]!);
    t.is(r.code, 0, `c1 -> c4 after the restarts: ${r.stdout}${r.stderr}`);
    t.is((await datapath.listAttachments(net)).length, 3);
  });

  test.serial('removing everything leaves nothing in the pool, the kernel or the driver state', async (t) => {
    const { docker, pool, fabric, vm, net } = env;
    const ids = (await docker.ok(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length) await docker.ok(['rm', '-f', ...ids]);
    await docker.ok(['network', 'rm', 'azure']);
    t.is(pool.held.size, 0);
    t.deepEqual(await datapath.listAttachments(net), []);
    const links = await fabric.exec(vm.netns, ['ip', '-o', 'link', 'show']);
    t.notRegex(links, /pvd[0-9a-f]{11}|pvn[0-9a-f]{11}/, 'no veths left (neither end)');
    const routes = await fabric.exec(vm.netns, ['ip', 'route', 'show', 'dev', net.bridgeName]);
    t.is(routes.trim(), '', 'no /32 pod routes left');
    const state = JSON.parse(readFileSync(join(env.root, 'cnm-state', STATE_FILE), 'utf8'));
    t.deepEqual({ leases: state.leases, networks: state.networks, endpoints: state.endpoints, pools: state.pools }, { leases: {}, networks: {}, endpoints: {}, pools: {} });
  });
}
