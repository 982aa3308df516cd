import { pino } from 'pino';
import { installerHelp, parseInstallerConfig, startInstaller, type RunningInstaller } from './installer.js';
import { daemonSetLookup, resolveTarget } from './kube.js';

/** Entry point of the DaemonSet's cni-installer container (configuration: environment, see installer.ts). */

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(installerHelp());
  process.exit(0);
}
const logger = pino({ base: { component: 'podvnet-cni-installer' } });
let installer: RunningInstaller | undefined;
let signalled: string | undefined;
const keepAlive = setInterval(() => undefined, 1 << 30);

function stop(signal: string): void {
  if (signalled) process.exit(1);
  signalled = signal;
  logger.info({ signal }, 'signal received');
  if (!installer) return; // still starting: stopped as soon as it is up
  clearInterval(keepAlive);
  installer.stop().then(() => process.exit(0), (err: Error) => {
    logger.error({ err: err.message }, 'stopping failed');
    process.exit(1);
  });
}
// Handlers first: a SIGTERM that arrives while installing must still get the uninstall check.
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

try {
  const cfg = parseInstallerConfig(process.env);
  installer = await startInstaller(cfg, { lookup: daemonSetLookup(resolveTarget(process.env), cfg.namespace, cfg.daemonSetName), logger });
  if (signalled) {
    const signal = signalled;
    signalled = undefined;
    stop(signal);
  }
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'cni-installer failed to start');
  process.exit(1);
}
