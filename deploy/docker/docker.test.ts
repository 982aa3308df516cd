import test from 'ava';
import { readFileSync } from 'node:fs';
import { agentEnvNames, parseAgentConfig } from '../../node-plugin/agent/config.js';
import { agentNodeFlags } from '../../hack/dist.js';

/**
 * The systemd unit, its environment file and the managed plugin's config.json say only what the agent
 * understands: every flag and PODVNET_* variable they set parses, with the values they set.
 */

const read = (p: string) => readFileSync(new URL(p, import.meta.url), 'utf8');
const envFile = (text: string) =>
  Object.fromEntries(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

test('the systemd unit\'s command line and environment file parse as agent flags', (t) => {
  const unit = read('./podvnet-agent.service');
  const exec = /^ExecStart=(\S+) ((?:--\S+ )*)(\S+) (.*)$/m.exec(unit);
  t.truthy(exec, 'ExecStart runs node with the agent');
  t.is(exec![3], '/opt/podvnet/dist/node-plugin/agent/main.js');
  t.deepEqual(exec![2]!.trim().split(' '), agentNodeFlags(), 'the V8 flags of the DaemonSet\'s agent');
  const env = envFile(read('./podvnet-agent.env'));
  const known = new Set(agentEnvNames());
  t.deepEqual(Object.keys(env).filter((k) => !known.has(k)), [], 'no variable the agent does not read');
  const commented = [...read('./podvnet-agent.env').matchAll(/^# (PODVNET_[A-Z_]+)=/gm)].map((m) => m[1]!);
  t.deepEqual(commented.filter((k) => !known.has(k)), []);
  const config = parseAgentConfig(exec![4]!.split(' '), env);
  t.is(config.standalone, 'static');
  t.is(config.cnmSocket, '/run/docker/plugins/azure-vnet.sock');
  t.is(config.stateDir, '/var/lib/podvnet');
  t.true(config.nodeName.length > 0, 'a standalone node is named after its host');
  t.deepEqual(parseAgentConfig(exec![4]!.split(' '), { ...env, PODVNET_STANDALONE: 'managed' }).ipsMax, 250);
});

test('the managed plugin\'s config.json: both driver interfaces, host network, and settings the agent knows', (t) => {
  const config = JSON.parse(read('../../hack/docker-plugin/config.json')) as {
    interface: { types: string[]; socket: string };
    network: { type: string };
    linux: { capabilities: string[] };
    env: Array<{ name: string; value: string }>;
    entrypoint: string[];
  };
  t.deepEqual(config.entrypoint, ['/usr/bin/node', ...agentNodeFlags(), '/app/dist/node-plugin/agent/main.js'], 'the V8 flags of the DaemonSet\'s agent');
  t.deepEqual(config.interface.types.sort(), ['docker.ipamdriver/1.0', 'docker.networkdriver/1.0']);
  t.is(config.network.type, 'host');
  t.deepEqual(config.linux.capabilities.sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN']);
  const known = new Set(agentEnvNames());
  t.deepEqual(config.env.map((e) => e.name).filter((k) => k !== 'PATH' && !known.has(k)), [], 'no variable the agent does not read');
  const env = Object.fromEntries(config.env.filter((e) => e.value !== '' && e.name !== 'PATH').map((e) => [e.name, e.value]));
  const agent = parseAgentConfig([], env);
  t.is(agent.cnmSocket, `/run/docker/plugins/${config.interface.socket}`, 'the agent listens where Docker looks for the plugin');
  for (const mode of ['static', 'managed'] as const) t.is(parseAgentConfig([], { ...env, PODVNET_STANDALONE: mode }).standalone, mode);
});
