import { hostname } from 'node:os';
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
    addWaitMs: num(0).describe('hold an ADD that finds no free IP this long, waiting for the IPs its demand asked for, before answering "try again"; 0: answer at once'),
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
    // ---- standalone mode: a plain Docker host on an Azure VM, no API server ----
    standalone: z.enum(['off', 'static', 'managed']).default('off')
      .describe('static: pod IPs are the secondary IPs IMDS lists on the VM\'s NIC; managed: the agent adds and removes them itself with the VM\'s managed identity'),
    vnetPrefixes: z.string().default('10.0.0.0/8,172.16.0.0/12,192.168.0.0/16')
      .refine((v) => v.split(',').every((c) => /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(c.trim())), { message: 'must be comma-separated IPv4 CIDRs' })
      .describe('static mode: destinations reached without SNAT (IMDS does not tell the VNet\'s address space)'),
    imdsIntervalMs: num(5000, 100).describe('static mode: re-read IMDS this often'),
    azureEndpoint: z.string().url().default('https://management.azure.com').describe('managed mode: the ARM endpoint'),
    azureCaFile: z.string().optional().describe('managed mode: extra CA to trust for ARM (the emulator)'),
    managedIdentityClientId: z.string().optional().describe('managed mode: a user-assigned identity; default: the VM\'s system-assigned one'),
    subnetId: z.string().optional().describe('managed mode: the subnet pod IPs come from; default: the NIC\'s primary subnet'),
    ipsMin: num(0),
    ipsMax: num(250, 1),
    batchSize: num(16, 1),
    requestThresholdPercent: num(50, 1),
    releaseThresholdPercent: num(150, 2),
    warmIps: z.coerce.number().int().min(0).optional(),
    azureResyncMs: num(30_000, 100).describe('managed mode: re-read the NIC this often without a change of demand'),
  });
export const AgentConfig = fields.refine((c) => !(c.kubeconfig && c.recordFile), { message: 'give either kubeconfig or recordFile, not both' });
export type AgentConfig = z.infer<typeof AgentConfig>;

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (key: string) => `PODVNET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Every PODVNET_* variable the agent reads. */
export function agentEnvNames(): string[] {
  return Object.keys(fields.shape).map(envName);
}

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
  // A standalone node is named after its host, as Azure names the VM's computer.
  if (raw.standalone !== undefined && raw.standalone !== 'off' && raw.nodeName === undefined) raw.nodeName = hostname();
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
