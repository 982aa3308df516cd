import test from 'ava';
import { pingEventually } from '../node-plugin/datapath/testing/testkit.js';
import { pingFrom, removeByName, tail } from './docker-daemon.js';
import { SA_IMAGE, SA_SUBNET, startStandaloneHost, type StandaloneHost } from './standalone-env.js';

/**
 * A plain Docker host on an Azure VM, no Kubernetes: the real agent in standalone mode inside the
 * simulated VM, a real dockerd, the seed's commands verbatim. Static mode hands out the secondary IPs
 * IMDS lists (and sees one added through ARM); managed mode grows and shrinks the NIC itself with the
 * VM's identity. Also: IMDS refuses a request without `Metadata: true`, an agent restart keeps running
 * containers' addresses, and a full pool says what to do (never "No address returned").
 */

const ipOf = async (h: StandaloneHost, name: string) =>
  (await h.docker.ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name])).trim();

async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function withHost(t: import('ava').ExecutionContext, opts: Parameters<typeof startStandaloneHost>[0], body: (h: StandaloneHost) => Promise<void>): Promise<void> {
  const h = await startStandaloneHost(opts);
  if (typeof h === 'string') {
    t.log(`SKIPPED: ${h}`);
    t.pass();
    return;
  }
  try {
    await body(h);
  } catch (err) {
    t.log(`--- agent log ---\n${tail(h.agentLog, 40)}\n--- dockerd log ---\n${tail(h.docker.logPath)}`);
    throw err;
  } finally {
    await h.close();
  }
}

test.serial('static mode: the NIC\'s secondary IPs from IMDS, reachable from the VNet; a full pool says what to do; a restart keeps containers', async (t) => {
  await withHost(t, { mode: 'static', secondaryIPs: 2 }, async (h) => {
    const d = h.docker.ok;
    // IMDS inside the VM refuses a request without the header, as Azure's does.
    const refused = await h.inVm(['curl', '-s', '-w', '\n%{http_code}', 'http://169.254.169.254/metadata/instance/network?api-version=2021-02-01']);
    t.deepEqual(refused.stdout.split('\n'), ['{"error":"Bad request. Required metadata header not specified"}', '400']);

    await d(['network', 'create', `--driver=${h.plugin}`, `--ipam-driver=${h.plugin}`, `--subnet=${SA_SUBNET}`, 'azure']);
    await d(['run', '-d', '--name', 'c1', '--net=azure', SA_IMAGE, 'sleep', '600']);
    await d(['run', '-d', '--name', 'c2', '--net=azure', SA_IMAGE, 'sleep', '600']);
    const ips = [await ipOf(h, 'c1'), await ipOf(h, 'c2')];
    t.deepEqual([...ips].sort(), [...h.nicSecondaryIPs()].sort(), 'the containers hold the NIC\'s two secondary IPs');
    t.true(await pingEventually(h.vnetHost.netns, ips[0]!), `another VNet host reaches the container at ${ips[0]}`);

    // The pool is full: the answer says so and what to do, never libnetwork's bare "No address returned".
    const full = await h.docker.cli(['run', '--name', 'c3', '--net=azure', SA_IMAGE, 'true']);
    t.not(full.code, 0);
    t.log(`docker run on a full pool: ${full.stderr.trim()}`);
    t.regex(full.stderr, /no free IP for this container/);
    t.regex(full.stderr, /az network nic ip-config create/);
    t.notRegex(full.stderr, /No address returned|NodeIPPool/);
    await removeByName(h.docker, 'c3');

    // An ip-config added through ARM (the portal, az) shows up through IMDS, and serves the next container.
    const added = await h.addIpConfig('added-in-portal');
    await eventually('the third container to start', async () => (await h.docker.cli(['run', '-d', '--name', 'c3', '--net=azure', SA_IMAGE, 'sleep', '600'])).code === 0
      || (await removeByName(h.docker, 'c3'), false), 30_000);
    t.is(await ipOf(h, 'c3'), added);

    // Restart the agent (SIGTERM, as systemd does) while the containers run.
    t.is(await h.stopAgent(), 0, 'graceful exit on SIGTERM');
    await h.startAgent();
    const ping = await pingFrom(h.docker, 'c1', ips[1]!);
    t.is(ping.code, 0, `c1 -> c2 after the restart: ${ping.stdout}${ping.stderr}`);
    await d(['rm', '-f', 'c1']);
    await d(['run', '-d', '--name', 'c4', '--net=azure', SA_IMAGE, 'sleep', '600']);
    t.is(await ipOf(h, 'c4'), ips[0]!, 'the restarted agent freed c1\'s address and handed it out again');
    t.true(await pingEventually(h.vnetHost.netns, ips[0]!), 'the VNet host reaches c4');
    await d(['rm', '-f', 'c2', 'c3', 'c4']);
    await d(['network', 'rm', 'azure']);
  });
});

test.serial('managed mode: the agent grows its own NIC when containers outnumber its IPs, shrinks it after, and says when it is at --ips-max', async (t) => {
  await withHost(t, { mode: 'managed', secondaryIPs: 0, agentArgs: ['--ips-min=2', '--ips-max=4', '--batch-size=2'] }, async (h) => {
    const d = h.docker.ok;
    await eventually('the minimum of 2 IPs on the NIC', () => h.nicSecondaryIPs().length === 2);
    t.true((h.emu.entra.byClient.get(h.emu.state.vms.values().next().value!.vmId) ?? 0) > 0, 'ARM was called with a token for the VM\'s own identity from IMDS');

    await d(['network', 'create', `--driver=${h.plugin}`, `--ipam-driver=${h.plugin}`, `--subnet=${SA_SUBNET}`, 'azure']);
    const runOne = async (name: string) =>
      eventually(`container ${name} to start`, async () => (await h.docker.cli(['run', '-d', '--name', name, '--net=azure', SA_IMAGE, 'sleep', '600'])).code === 0
        || (await removeByName(h.docker, name), false));
    for (const name of ['c1', 'c2', 'c3', 'c4']) await runOne(name);
    const ips = await Promise.all(['c1', 'c2', 'c3', 'c4'].map((n) => ipOf(h, n)));
    t.is(new Set(ips).size, 4);
    t.deepEqual([...ips].sort(), [...h.nicSecondaryIPs()].sort(), 'the NIC grew from 2 to 4 and the containers hold them');
    t.true(await pingEventually(h.vnetHost.netns, ips[3]!), 'an added IP is reachable from the VNet');

    const full = await h.docker.cli(['run', '--name', 'c5', '--net=azure', SA_IMAGE, 'true']);
    t.not(full.code, 0);
    t.log(`docker run at --ips-max: ${full.stderr.trim()}`);
    t.regex(full.stderr, /no free IP for this container/);
    t.regex(full.stderr, /--ips-max \(4\)/);
    t.notRegex(full.stderr, /No address returned/);
    await removeByName(h.docker, 'c5');

    await d(['rm', '-f', 'c1', 'c2', 'c3', 'c4']);
    await eventually('the NIC to shrink back to 2', () => h.nicSecondaryIPs().length === 2);
    await d(['network', 'rm', 'azure']);
  });
});
