// Command line: start the emulator and print one JSON line {url, token, kubeconfig}.
//   node --loader ts-node/esm hack/kube-emulator/main.ts --port 6443 --kubeconfig-out /tmp/kc [--data-file f] [--token t] [--no-tls]
//     [--authorization-mode RBAC|AlwaysAllow]
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startKubeEmulator } from './index.js';

const Args = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(0),
  host: z.string().default('127.0.0.1'),
  'kubeconfig-out': z.string().optional(),
  'data-file': z.string().optional(),
  token: z.string().min(1).optional(),
  'no-tls': z.boolean().default(false),
  'authorization-mode': z.enum(['RBAC', 'AlwaysAllow']).default('RBAC'),
});

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
