// Command: node --loader ts-node/esm hack/azure-emulator/main.ts --port 0 --scenario <file|inline>
// Prints one JSON line {url, caPath, adminUrl, subscriptionId, nodes...} and serves until SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { pino } from 'pino';
import { AzureEmulator, type EmulatorOptions } from './server.js';
import { readScenario, type ScenarioResult } from './scenario.js';
import { configPatchSchema } from './config.js';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';

const log = pino({ name: 'azure-emulator' }, pino.destination(2));

const flags = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(0).describe('ARM endpoint port (HTTPS); 0: any free port'),
  host: z.string().default('127.0.0.1'),
  'admin-port': z.coerce.number().int().min(0).max(65535).optional().describe('also serve the admin API over plain HTTP on this port'),
  scenario: z.string().optional().describe('VNets, VMs and scale sets to create: a YAML/JSON file or inline YAML'),
  mode: z.enum(['sync', 'async']).optional().describe('long-running operations complete at once or later (config default: async)'),
  'async-ms': z.coerce.number().int().min(0).optional().describe('how long an async operation runs'),
  'latency-ms': z.coerce.number().int().min(0).optional().describe('added to every response'),
  'no-throttling': z.boolean().optional().describe('turn off the ARM read/write budgets (429s)'),
  config: z.string().optional().describe('JSON config patch, as the admin endpoint takes'),
  'print-nodes': z.boolean().optional().describe('list every node (VM or scale-set instance) in the JSON line'),
});

const help = (): string =>
  renderHelp('azure-emulator: an Azure ARM emulator (HTTPS) the real @azure/arm-network and arm-compute clients talk to',
    'node --loader ts-node/esm hack/azure-emulator/main.ts [--flag value]...',
    describeSettings(flags.shape, { flag: (k) => `--${k}` }),
    ['No environment variables: flags only. Prints one JSON line {url, caPath, adminUrl, ...} and serves until SIGINT/SIGTERM.']);

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(help());
    process.exit(0);
  }
  const { values } = parseArgs({
    options: {
      port: { type: 'string' }, host: { type: 'string' }, 'admin-port': { type: 'string' }, scenario: { type: 'string' },
      mode: { type: 'string' }, 'async-ms': { type: 'string' }, 'latency-ms': { type: 'string' },
      'no-throttling': { type: 'boolean' }, config: { type: 'string' }, 'print-nodes': { type: 'boolean' },
    },
    strict: true,
  });
  const parsed = flags.safeParse(values);
  if (!parsed.success) throw new Error(`bad flags: ${z.prettifyError(parsed.error)}`);
  const f = parsed.data;
  const patch = configPatchSchema.parse(f.config ? JSON.parse(f.config) : {});
  if (f.mode) patch.mode = f.mode;
  if (f['async-ms'] !== undefined) patch.asyncDurationMs = f['async-ms'];
  if (f['latency-ms'] !== undefined) patch.latencyMs = f['latency-ms'];
  if (f['no-throttling']) patch.throttling = { ...patch.throttling, enabled: false };
  const opts: EmulatorOptions = { port: f.port, host: f.host, config: patch };
  if (f['admin-port'] !== undefined) opts.adminHttpPort = f['admin-port'];
  const seed = f.scenario ? readScenario(f.scenario) : undefined;
  const emu = await AzureEmulator.start(opts);
  let scenario: ScenarioResult | undefined;
  if (seed) scenario = emu.loadScenario(seed);
  const line: Record<string, unknown> = { url: emu.url, caPath: emu.caPath, adminUrl: emu.adminUrl ?? `${emu.url}/_emulator` };
  if (scenario) {
    line.subscriptionId = scenario.subscriptionId;
    line.resourceGroup = scenario.resourceGroup;
    line.subnets = scenario.subnets;
    line.nodeCount = scenario.nodes.length;
    if (f['print-nodes']) line.nodes = scenario.nodes;
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
  log.info({ url: emu.url, nodes: scenario?.nodes.length ?? 0 }, 'azure emulator listening');
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    void emu.close().then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  log.error({ err: e }, 'azure emulator failed to start');
  process.exit(1);
});
