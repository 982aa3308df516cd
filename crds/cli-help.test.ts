import test from 'ava';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { allowedValues, describeSettings, kebabFlag, podvnetEnv, renderHelp } from './cli-help.js';
import { ConfigSchema } from '../controllers/config.js';
import { AgentConfig } from '../node-plugin/agent/config.js';
import { InstallerConfig } from '../deploy/cni-install/installer.js';

/**
 * `--help` is derived from the zod schema each command parses with: every setting shows its flag, allowed
 * values, environment variable and default. The commands themselves are run with --help as a user would.
 */

const REPO = fileURLToPath(new URL('../', import.meta.url));

test('describeSettings: allowed values, defaults and required-ness come from the schema', (t) => {
  const shape = {
    port: z.coerce.number().int().min(0).max(65535).default(8080).describe('where to listen'),
    rate: z.coerce.number().positive().max(100).default(2.5),
    level: z.enum(['info', 'debug']).default('info'),
    elect: z.union([z.boolean(), z.enum(['true', 'false'])]).transform((v) => v === true || v === 'true').default(true),
    dir: z.string().regex(/^\//).default('/var/lib/x'),
    name: z.string().min(1),
    url: z.url().optional(),
    empty: z.string().default(''),
    host: z.string().default('computed-at-start').meta({ helpDefault: 'the host name' }),
    verbose: z.boolean().optional(),
  };
  const docs = describeSettings(shape, { flag: kebabFlag, env: podvnetEnv });
  t.deepEqual(docs.map((d) => [d.flag, d.env, d.allowed, d.default, d.required]), [
    ['--port', 'PODVNET_PORT', 'integer 0..65535', '8080', false],
    ['--rate', 'PODVNET_RATE', 'number >0..100', '2.5', false],
    ['--level', 'PODVNET_LEVEL', 'info|debug', 'info', false],
    ['--elect', 'PODVNET_ELECT', 'true|false', 'true', false],
    ['--dir', 'PODVNET_DIR', 'absolute path', '/var/lib/x', false],
    ['--name', 'PODVNET_NAME', 'non-empty string', undefined, true],
    ['--url', 'PODVNET_URL', 'URL', undefined, false],
    ['--empty', 'PODVNET_EMPTY', 'string', '"" (empty)', false],
    ['--host', 'PODVNET_HOST', 'string', 'the host name', false],
    ['--verbose', 'PODVNET_VERBOSE', 'switch (no value)', undefined, false],
  ]);
  t.is(docs[0]!.description, 'where to listen');
  t.is(allowedValues({ type: 'string', pattern: '^[a-z]+$' }), 'string matching ^[a-z]+$');
});

test('renderHelp: one entry per setting with its env (or that it has none) and its default (or that it is required)', (t) => {
  const docs = describeSettings({ a: z.string().default('x'), b: z.string() }, { flag: kebabFlag });
  t.is(renderHelp('T', 'u', docs), 'T\n\nUsage: u\n\n  --a <string>\n      no env variable; default: x\n  --b <string>\n      no env variable; required\n');
  const envOnly = describeSettings({ c: z.coerce.number().int().min(1).default(3) }, { env: () => 'C_ENV' });
  t.regex(renderHelp('T', 'u', envOnly, ['note']), /  C_ENV <integer 1\.\.>\n      environment only; default: 3\n\nnote\n$/);
});

function helpOf(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', ...args, '--help'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every key of the schema shows up with its flag/env and a default or "required". */
function coversSchema(t: { true(v: boolean, m?: string): void }, help: string, shape: Record<string, z.ZodType>, flag: ((k: string) => string) | undefined, env: (k: string) => string | undefined) {
  for (const key of Object.keys(shape)) {
    const name = flag ? flag(key) : env(key)!;
    const entry = new RegExp(`^  ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} <[^\\n]+>\\n      ([^\\n]+)`, 'm').exec(help);
    t.true(entry !== null, `${name} is listed`);
    const e = env(key);
    t.true(!!entry && (flag && e ? entry[1]!.includes(`env ${e}`) : true), `${name} names its environment variable ${e}`);
    t.true(!!entry && /(default: |required)/.test(entry[1]!), `${name} gives its default or says it is required`);
  }
}

const COMMANDS = {
  controller: ['controllers/main.ts'],
  agent: ['node-plugin/agent/main.ts'],
  installer: ['deploy/cni-install/main.ts'],
  azureEmulator: ['hack/azure-emulator/main.ts'],
  kubeEmulator: ['hack/kube-emulator/main.ts'],
  sandbox: ['hack/sandbox/main.ts'],
} as const;

test('--help of every command: flags, allowed values, environment variables and defaults, exit 0', async (t) => {
  t.timeout(300_000);
  const names = Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>;
  const results = await Promise.all(names.map((n) => helpOf([...COMMANDS[n]])));
  const help = Object.fromEntries(names.map((n, i) => [n, results[i]!])) as Record<keyof typeof COMMANDS, Awaited<ReturnType<typeof helpOf>>>;
  for (const n of names) t.is(help[n].code, 0, `${n} --help exits 0: ${help[n].stderr}`);

  const c = help.controller.stdout;
  coversSchema(t, c, ConfigSchema.shape, kebabFlag, podvnetEnv);
  t.regex(c, /--credential <default\|workload\|managed\|cli\|emulator>\n      env PODVNET_CREDENTIAL; default: default/);
  t.regex(c, /--azure-cloud <AzurePublicCloud\|AzureChinaCloud\|AzureUSGovernment>\n      env PODVNET_AZURE_CLOUD; default: AzurePublicCloud/);
  t.regex(c, /--leader-elect <true\|false>\n      env PODVNET_LEADER_ELECT; default: true/);
  t.regex(c, /--http-port <integer 0\.\.65535>\n      env PODVNET_HTTP_PORT; default: 8080/);

  const a = help.agent.stdout;
  coversSchema(t, a, AgentConfig.shape, kebabFlag, podvnetEnv);
  t.regex(a, /--node-name <non-empty string>\n      env PODVNET_NODE_NAME; required/);
  t.regex(a, /--log-level <fatal\|error\|warn\|info\|debug\|trace\|silent>\n      env PODVNET_LOG_LEVEL; default: info/);
  t.regex(a, /--mtu <integer 576\.\.9216>\n      env PODVNET_MTU; default: none/);

  const i = help.installer.stdout;
  coversSchema(t, i, InstallerConfig.shape, undefined, (k) => ({ namespace: 'POD_NAMESPACE', recheckSeconds: 'PODVNET_CNI_RECHECK_SECONDS', binarySource: 'PODVNET_CNI_BINARY_SOURCE', binDir: 'PODVNET_CNI_BIN_DIR', configSource: 'PODVNET_CNI_CONFIG_SOURCE', confDir: 'PODVNET_CNI_CONF_DIR', daemonSetName: 'PODVNET_DAEMONSET_NAME' })[k]);
  t.regex(i, /PODVNET_CNI_RECHECK_SECONDS <integer 1\.\.3600>\n      environment only; default: 30/);

  t.regex(help.azureEmulator.stdout, /--mode <sync\|async>\n      no env variable; default: none/);
  t.regex(help.azureEmulator.stdout, /--port <integer 0\.\.65535>\n      no env variable; default: 0/);
  t.regex(help.kubeEmulator.stdout, /--authorization-mode <RBAC\|AlwaysAllow>\n      no env variable; default: RBAC/);
  t.regex(help.sandbox.stdout, /--vms <integer 2\.\.64>\n      no env variable; default: 2/);
  t.regex(help.sandbox.stdout, /--keep <switch \(no value\)>\n      no env variable; default: false/);
});

test('the compiled commands print the same help (what the image runs)', async (t) => {
  t.timeout(300_000);
  const { ensureBuilt } = await import('../hack/dist.js');
  ensureBuilt();
  for (const [ts, js] of [['controllers/main.ts', 'dist/controllers/main.js'], ['node-plugin/agent/main.ts', 'dist/node-plugin/agent/main.js'], ['deploy/cni-install/main.ts', 'dist/deploy/cni-install/main.js']] as const) {
    const [fromTs, fromJs] = await Promise.all([helpOf([ts]), new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO, js), '--help'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
      child.on('close', () => resolve(out));
    })]);
    t.is(fromJs, fromTs.stdout, js);
  }
});
