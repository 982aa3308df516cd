// Command line: start the emulator and print one JSON line {url, token, kubeconfig}.
//   node --loader ts-node/esm hack/kube-emulator/main.ts --port 6443 --kubeconfig-out /tmp/kc [--data-file f] [--token t] [--no-tls]
//     [--authorization-mode RBAC|AlwaysAllow]
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startKubeEmulator } from './index.js';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';

const Args = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(0).describe('0: any free port'),
  host: z.string().default('127.0.0.1'),
  'kubeconfig-out': z.string().optional().describe('write an admin kubeconfig here'),
  'data-file': z.string().optional().describe('keep the objects in this JSON file (loaded at start, saved as they change)'),
  token: z.string().min(1).optional().describe('the admin bearer token; default: a random one'),
  'no-tls': z.boolean().default(false).describe('serve plain HTTP'),
  'authorization-mode': z.enum(['RBAC', 'AlwaysAllow']).default('RBAC'),
});

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(renderHelp('kube-emulator: a Kubernetes API server emulator (REST, watch, CRDs, RBAC) for client-node and kubectl',
    'node --loader ts-node/esm hack/kube-emulator/main.ts [--flag value]...',
    describeSettings(Args.shape, { flag: (k) => `--${k}` }),
    ['No environment variables: flags only. Prints one JSON line {url, kubeconfig} and serves until SIGINT/SIGTERM.']));
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    port: { type: 'string' }, host: { type: 'string' }, 'kubeconfig-out': { type: 'string' },
    'data-file': { type: 'string' }, token: { type: 'string' }, 'no-tls': { type: 'boolean' },
    'authorization-mode': { type: 'string' },
  },
});
const parsed = Args.safeParse(values);
if (!parsed.success) {
  process.stderr.write(`kube-emulator: invalid arguments: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const a = parsed.data;
const emu = await startKubeEmulator({
  port: a.port, host: a.host, kubeconfigPath: a['kubeconfig-out'], dataFile: a['data-file'], token: a.token, tls: !a['no-tls'],
  authorization: a['authorization-mode'],
});
process.stdout.write(`${JSON.stringify({ url: emu.url, kubeconfig: emu.kubeconfigPath })}\n`);
const stop = (): void => { emu.close().then(() => process.exit(0), () => process.exit(1)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
