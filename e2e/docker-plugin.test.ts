import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { tail } from './docker-daemon.js';
import { SA_IMAGE, SA_SUBNET, startStandaloneHost } from './standalone-env.js';

/**
 * The Docker managed plugin, as a Docker user installs it: hack/docker-plugin/build-rootfs.sh makes the
 * plugin directory (config.json + rootfs) from this machine, `docker plugin create` and `enable` install it
 * into a private dockerd running inside a simulated Azure VM (no registry), and the seed's commands give a
 * container a VNet address that another VNet host reaches.
 */

const run = promisify(execFile);
const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));

test('the azure-vnet managed plugin: docker plugin create/enable, then the seed\'s network create and run', async (t) => {
  t.timeout(20 * 60_000); // building the rootfs compiles the tree and copies node_modules: minutes on a loaded machine
  const h = await startStandaloneHost({ mode: 'static', secondaryIPs: 2, agentProcess: false });
  if (typeof h === 'string') {
    t.log(`SKIPPED: ${h}`);
    t.pass();
    return;
  }
  const name = `podvnet-test/azure-vnet-${randomBytes(3).toString('hex')}`;
  try {
    const dir = join(h.dir, 'plugin');
    await run('bash', [join(repo, 'hack/docker-plugin/build-rootfs.sh'), dir], { maxBuffer: 16 << 20, timeout: 600_000 });
    const d = h.docker.ok;
    await d(['plugin', 'create', name, dir]);
    // Its own state directory (the default /var/lib/podvnet is the host's; concurrent tests must not share it).
    const state = join(h.dir, 'plugin-state');
    mkdirSync(state);
    await d(['plugin', 'set', name, `state.source=${state}`, 'PODVNET_LOG_LEVEL=debug']);
    await d(['plugin', 'enable', name]);
    const inspect = JSON.parse(await d(['plugin', 'inspect', name]))[0];
    t.true(inspect.Enabled);
    t.regex(JSON.stringify(inspect.Config.Interface.Types), /networkdriver/);
    t.regex(JSON.stringify(inspect.Config.Interface.Types), /ipamdriver/);

    // libnetwork finds a managed plugin's drivers by the full reference, tag included.
    const plain = await h.docker.cli(['network', 'create', `--driver=${name}`, `--ipam-driver=${name}`, `--subnet=${SA_SUBNET}`, 'azure']);
    t.log(`network create without the tag: exit ${plain.code} ${plain.stderr.trim()}`);
    if (plain.code !== 0) await d(['network', 'create', `--driver=${name}:latest`, `--ipam-driver=${name}:latest`, `--subnet=${SA_SUBNET}`, 'azure']);
    await d(['run', '-d', '--name', 'c1', '--net=azure', SA_IMAGE, 'sleep', '600']);
    const ip = (await d(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'c1'])).trim();
    t.true(h.nicSecondaryIPs().includes(ip), `${ip} is one of the NIC's secondary IPs (${h.nicSecondaryIPs().join(', ')})`);
    t.true(await pingEventually(h.vnetHost.netns, ip), 'another VNet host reaches the container');
    await d(['rm', '-f', 'c1']);
    await d(['network', 'rm', 'azure']);
    await d(['plugin', 'disable', name]);
    await d(['plugin', 'rm', name]);
  } catch (err) {
    t.log(`--- dockerd log ---\n${tail(h.docker.logPath, 40)}`);
    throw err;
  } finally {
    await h.docker.cli(['plugin', 'rm', '-f', name]);
    await h.close();
  }
});
