import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import { describeSettings, kebabFlag, podvnetEnv, renderHelp } from '../../crds/cli-help.js';

/**
 * The agent's configuration: command-line flags (`--node-name=n1` or `--node-name n1`), each with a
 * PODVNET_* environment variable as fallback (`PODVNET_NODE_NAME`). Flags win over the environment.
 */

const NODE_NAME_REQUIRED = 'is required (--node-name or PODVNET_NODE_NAME, usually the Kubernetes node name)';
const num = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

const fields = z
  .strictObject({
    nodeName: z
      .string({ error: (iss) => (iss.input === undefined ? NODE_NAME_REQUIRED : 'must be a string') })
      .min(1, { message: NODE_NAME_REQUIRED }),
    socket: z.string().regex(/^\//, { message: 'must be an absolute path' }).default('/run/podvnet/agent.sock'),
    cnmSocket: z.string().default('/run/docker/plugins/azure-vnet.sock').describe('empty: no CNM driver'),
    stateDir: z.string().regex(/^\//, { message: 'must be an absolute path' }).default('/var/lib/podvnet'),
    delQueueDir: z.string().regex(/^\//, { message: 'must be an absolute path' }).optional()
      .describe("DELs the CNI executable queued while the agent was unreachable; default <stateDir>/del-queue (the executable's default is /var/lib/podvnet/del-queue)"),
    kubeconfig: z.string().optional().describe('kubeconfig file; in-cluster config if neither this nor recordFile is set'),
    recordFile: z.string().optional().describe('read the NodeIPAllocation from this JSON file instead of the API server'),
    hostInterface: z.string().min(1).default('eth0'),
    hostNetns: z.string().optional().describe('the namespace that plays the node (tests, sandbox)'),
    procSysRoot: z.string().regex(/^\//, { message: 'must be an absolute path' }).default('/proc/sys')
      .describe("where the node's /proc/sys is: sysctls are written under <root>/net (the DaemonSet mounts the host's /proc/sys/net at /host/proc/sys/net)"),
    bridge: z.string().min(1).max(15).default('podvnet0'),
    mtu: z.coerce.number().int().min(576).max(9216).optional(),
    cooldownMs: num(5000),
    syncIntervalMs: num(1000, 10),
    pendingWindowMs: num(30_000, 1),
    resyncIntervalMs: num(60_000).describe('re-apply the node network (bridge, sysctls, iptables chains) this often; 0: never'),
    metricsAddress: z
      .string()
      .regex(/^[0-9.]+:\d+$/, { message: 'must be host:port, such as 127.0.0.1:9464' })
      .default('127.0.0.1:9464'),
    cniBinDir: z.string().default('').describe('install podvnet-cni here on start (e.g. /opt/cni/bin); empty: do not'),
    cniConfDir: z.string().default('').describe('write the conflist here on start (e.g. /etc/cni/net.d); empty: do not'),
    cniBinary: z.string().default('').describe('the podvnet-cni executable to install; default: the one built beside this source'),
    cniNetworkName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/).default('podvnet'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  });
export const AgentConfig = fields.refine((c) => !(c.kubeconfig && c.recordFile), { message: 'give either kubeconfig or recordFile, not both' });
export type AgentConfig = z.infer<typeof AgentConfig>;

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (key: string) => `PODVNET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export function parseAgentConfig(argv: readonly string[], env: Record<string, string | undefined>): AgentConfig {
  const keys = Object.keys(fields.shape);
  const raw: Record<string, unknown> = {};
  for (const k of keys) {
    const v = env[envName(k)];
    if (v !== undefined) raw[k] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = camel(eq > 0 ? arg.slice(2, eq) : arg.slice(2));
    if (!keys.includes(name)) throw new Error(`unknown flag "${arg}"; known: ${keys.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`flag ${arg} needs a value`);
    raw[name] = value;
  }
  const parsed = AgentConfig.safeParse(raw);
  if (!parsed.success) throw new Error(`invalid agent configuration: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** `--help`: every flag with its allowed values, environment variable and default, from the schema above. */
export const agentHelp = (): string =>
  renderHelp('podvnet-agent: the node agent (pod IPs from the node\'s pool, the datapath, the CNI socket, the Docker CNM driver)',
    'node dist/node-plugin/agent/main.js --node-name NAME [--flag value | --flag=value]...',
    describeSettings(fields.shape, { flag: kebabFlag, env: podvnetEnv }), ['Flags win over the environment.']);

export const wantsHelp = (argv: readonly string[]): boolean => argv.includes('--help') || argv.includes('-h');
