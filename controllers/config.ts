import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { describeIssues } from '../crds/api/validation.js';
import { describeSettings, kebabFlag, podvnetEnv, renderHelp } from '../crds/cli-help.js';

/**
 * The controller's settings: command-line flags, each with a PODVNET_* environment fallback, checked with
 * zod so a bad value fails at start with the flag's name. Flags win over the environment.
 */

export const AZURE_CLOUDS = {
  AzurePublicCloud: { arm: 'https://management.azure.com', authority: 'https://login.microsoftonline.com' },
  AzureChinaCloud: { arm: 'https://management.chinacloudapi.cn', authority: 'https://login.chinacloudapi.cn' },
  AzureUSGovernment: { arm: 'https://management.usgovcloudapi.net', authority: 'https://login.microsoftonline.us' },
} as const;

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const ConfigSchema = z.strictObject({
  kubeconfig: z.string().min(1).optional().describe('Path to a kubeconfig (else KUBECONFIG); in-cluster config when absent and running in a pod.'),
  azureCloud: z.enum(Object.keys(AZURE_CLOUDS) as [keyof typeof AZURE_CLOUDS]).default('AzurePublicCloud'),
  azureEndpoint: z.url({ protocol: /^https$/, message: 'must be an https URL' }).optional().describe('ARM endpoint override (the emulator).'),
  azureCaFile: z.string().min(1).optional().describe('Extra CA (PEM) to trust for the ARM endpoint.'),
  credential: z.enum(['default', 'workload', 'managed', 'cli', 'emulator']).default('default'),
  managedIdentityClientId: z.string().min(1).optional(),
  httpPort: int(0, 65535).default(8080).describe('Serves /metrics, /healthz and /readyz.'),
  httpHost: z.string().default('0.0.0.0'),
  leaderElect: bool.default(true),
  leaseName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain name').default('podvnet-controller'),
  leaseNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').default('kube-system').meta({ helpDefault: 'POD_NAMESPACE, else kube-system' }),
  identity: z.string().min(1).default(hostname()).meta({ helpDefault: 'POD_NAME, else the host name' }),
  eventNamespace: z.string().min(1).optional(),
  workers: int(1, 1024).default(32),
  resyncSeconds: int(10, 86_400).default(600),
  armConcurrency: int(1, 1024).default(64).describe('Azure calls in flight per subscription and kind.'),
  writeBurst: int(1, 100_000).default(200),
  writesPerSecond: z.coerce.number().positive().max(10_000).default(10),
  readBurst: int(1, 100_000).default(250),
  readsPerSecond: z.coerce.number().positive().max(10_000).default(25),
  pollIntervalMs: int(10, 60_000).default(1000).describe('Long-running operation polling, when Azure sends no Retry-After.'),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  shutdownTimeoutSeconds: int(1, 600).default(25),
}).superRefine((c, ctx) => {
  if (c.credential === 'emulator' && !c.azureEndpoint) {
    ctx.addIssue({ code: 'custom', path: ['credential'], message: 'the emulator credential needs --azure-endpoint (it never talks to real Azure)' });
  }
});
export type Config = z.infer<typeof ConfigSchema>;

const KEYS = Object.keys(ConfigSchema.shape) as Array<keyof z.input<typeof ConfigSchema>>;
const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (k: string) => `PODVNET_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(KEYS.map((k) => [kebab(k), { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  const raw: Record<string, unknown> = {};
  for (const k of KEYS) {
    const v = values[kebab(k)] ?? env[envName(k)];
    if (v !== undefined && v !== '') raw[k] = v;
  }
  // Kubernetes' own conventions, below our explicit settings.
  if (raw.kubeconfig === undefined && env.KUBECONFIG) raw.kubeconfig = env.KUBECONFIG;
  if (raw.identity === undefined && env.POD_NAME) raw.identity = env.POD_NAME;
  if (raw.leaseNamespace === undefined && env.POD_NAMESPACE) raw.leaseNamespace = env.POD_NAMESPACE;
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    const named = r.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      return `--${kebab(key)} (${envName(key)}): ${i.message}`;
    });
    throw new Error(`invalid configuration: ${named.join('; ') || describeIssues(r.error)}`);
  }
  return r.data;
}

/** `--help`: every flag with its allowed values, environment variable and default, from ConfigSchema. */
export const flagHelp = (): string =>
  renderHelp('podvnet controller: keeps each selected node\'s NIC ip-configs in step with its NodeIPPool', 'node dist/controllers/main.js [--flag value | --flag=value]...',
    describeSettings(ConfigSchema.shape, { flag: kebabFlag, env: podvnetEnv }),
    ['Flags win over the environment. Kubernetes conventions come below both: KUBECONFIG, POD_NAME (identity), POD_NAMESPACE (lease namespace).']);
