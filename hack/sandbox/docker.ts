import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pingEventually } from '../../node-plugin/datapath/testing/testkit.js';
import { SA_IMAGE, SA_SUBNET, startStandaloneHost, type StandaloneHost } from '../../e2e/standalone-env.js';

/**
 * `bash hack/sandbox.sh --docker`: the seed's own user, a plain Docker host on an Azure VM with no
 * Kubernetes. On a simulated VM (emulated Azure serving IMDS inside it), the agent runs standalone as its
 * systemd unit would, a real dockerd runs beside it, and the seed's commands run verbatim: first in static
 * mode (the NIC's secondary ip-configs, as the seed set them up with `az network nic ip-config create`),
 * then in managed mode (the agent grows the NIC itself with the VM's managed identity).
 */

const { values: flags } = parseArgs({ options: { docker: { type: 'boolean', default: true }, mode: { type: 'string', default: 'static,managed' } } });
const step = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);
const info = (s: string) => console.log(`   ${s}`);
let failures = 0;
const expect = (ok: boolean, what: string) => {
  info(`${ok ? '\x1b[32mok\x1b[0m  ' : '\x1b[31mFAIL\x1b[0m'} ${what}`);
  if (!ok) failures++;
};

// The seed's name when nothing else on this machine uses it; otherwise a name of our own.
const taken = existsSync('/etc/docker/plugins/azure-vnet.spec') || existsSync('/run/docker/plugins/azure-vnet.sock');
const pluginName = taken ? undefined : 'azure-vnet';

async function docker(h: StandaloneHost, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  console.log(`   \x1b[2m$ docker ${args.join(' ')}\x1b[0m`);
  const r = await h.docker.cli(args);
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n').filter(Boolean)) console.log(`     ${line}`);
  return r;
}

const ipOf = async (h: StandaloneHost, name: string) =>
  (await h.docker.ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name])).trim();

async function untilStarted(h: StandaloneHost, name: string, timeoutMs = 60_000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
    if ((await h.docker.cli(['run', '-d', '--name', name, `--net=azure`, SA_IMAGE, 'sleep', '3600'])).code === 0) return true;
    await h.docker.cli(['rm', '-f', name]);
  }
  return false;
}

async function staticMode(): Promise<void> {
  step('Static mode: a Docker host on an Azure VM whose NIC has two secondary ip-configs (the seed\'s az network nic ip-config create)');
  const h = await startStandaloneHost({ mode: 'static', secondaryIPs: 2, pluginName });
  if (typeof h === 'string') throw new Error(h);
  try {
    info(`VM ${h.node.nodeName}: primary ${h.node.primaryIP}, secondary ${h.nicSecondaryIPs().join(', ')}; agent: podvnet-agent --standalone=static (inside the VM, IMDS at 169.254.169.254)`);
    if (h.plugin !== 'azure-vnet') info(`(another azure-vnet plugin is registered on this machine: this run calls it ${h.plugin})`);
    const d = (args: string[]) => docker(h, args);
    expect((await d(['network', 'create', `--driver=${h.plugin}`, `--ipam-driver=${h.plugin}`, `--subnet=${SA_SUBNET}`, 'azure'])).code === 0, 'the seed\'s network create');
    await d(['network', 'ls']);
    await d(['run', '--rm', '--net=azure', SA_IMAGE, 'ip', '-4', 'addr', 'show', 'eth0']);
    await d(['run', '-d', '--name', 'web1', '--net=azure', SA_IMAGE, 'sleep', '3600']);
    await d(['run', '-d', '--name', 'web2', '--net=azure', SA_IMAGE, 'sleep', '3600']);
    const ips = [await ipOf(h, 'web1'), await ipOf(h, 'web2')];
    info(`web1 ${ips[0]}, web2 ${ips[1]}`);
    expect(ips.every((ip) => h.nicSecondaryIPs().includes(ip)), 'each container holds one of the NIC\'s secondary IPs');
    expect(await pingEventually(h.vnetHost.netns, ips[0]!), `another VNet host (${h.vnetHost.ip}) reaches web1 at ${ips[0]}`);

    step('Every secondary IP is in use: the seed got "No address returned"');
    const full = await d(['run', '--rm', '--net=azure', SA_IMAGE, 'true']);
    expect(full.code !== 0 && /no free IP/.test(full.stderr) && !/No address returned/.test(full.stderr), 'the error says what happened and what to do');
    step('az network nic ip-config create ... (through ARM): the agent sees it through IMDS');
    const added = await h.addIpConfig('IPConfig4');
    info(`added ${added}`);
    expect(await untilStarted(h, 'web3'), 'the next docker run works');
    expect((await ipOf(h, 'web3')) === added, `web3 got the new address ${added}`);
    await d(['rm', '-f', 'web1', 'web2', 'web3']);
    await d(['network', 'rm', 'azure']);
  } finally {
    await h.close();
  }
}

async function managedMode(): Promise<void> {
  step('Managed mode: the agent manages its own NIC with the VM\'s managed identity (min 2, batches of 2, max 6)');
  const h = await startStandaloneHost({ mode: 'managed', secondaryIPs: 0, pluginName, agentArgs: ['--ips-min=2', '--ips-max=6', '--batch-size=2'] });
  if (typeof h === 'string') throw new Error(h);
  try {
    for (const deadline = Date.now() + 60_000; h.nicSecondaryIPs().length < 2 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 250));
    info(`the NIC holds ${h.nicSecondaryIPs().length} secondary IPs: ${h.nicSecondaryIPs().join(', ')}`);
    const d = (args: string[]) => docker(h, args);
    await d(['network', 'create', `--driver=${h.plugin}`, `--ipam-driver=${h.plugin}`, `--subnet=${SA_SUBNET}`, 'azure']);
    const names = ['app1', 'app2', 'app3', 'app4', 'app5'];
    for (const n of names) {
      const ok = await untilStarted(h, n);
      info(`${n}: ${ok ? await ipOf(h, n) : 'did not start'}   (NIC: ${h.nicSecondaryIPs().length} IPs)`);
    }
    expect(h.nicSecondaryIPs().length >= 5, `the NIC grew from 2 to ${h.nicSecondaryIPs().length} IPs as containers outnumbered them`);
    await d(['rm', '-f', ...names]);
    for (const deadline = Date.now() + 60_000; h.nicSecondaryIPs().length > 2 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 250));
    expect(h.nicSecondaryIPs().length === 2, `the containers are gone: the agent released the extra IPs and the NIC is back to ${h.nicSecondaryIPs().length}`);
    await d(['network', 'rm', 'azure']);
  } finally {
    await h.close();
  }
}

const modes = flags.mode!.split(',');
try {
  if (modes.includes('static')) await staticMode();
  if (modes.includes('managed')) await managedMode();
} catch (err) {
  console.error(`sandbox --docker: ${(err as Error).message}`);
  process.exit(1);
}
console.log(failures ? `\n${failures} check(s) failed` : '\nall checks passed');
process.exit(failures ? 1 : 0);
