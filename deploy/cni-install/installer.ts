import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import { describeSettings, renderHelp } from '../../crds/cli-help.js';
import { decideOnStop, type DaemonSetLookup, type StopDecision } from './decide.js';
import { installFile, removeFile } from './files.js';

/**
 * The node DaemonSet's cni-installer container: installs the podvnet-cni binary into the runtime's CNI
 * bin directory and the conflist into its config directory, puts them back if they go missing or
 * change, and on SIGTERM removes them only if PodVNet is being uninstalled (see decide.ts).
 */

const absolute = z.string().regex(/^\//, { message: 'must be an absolute path' });
export const InstallerConfig = z.strictObject({
  binarySource: absolute.describe('the podvnet-cni executable in the image'),
  binDir: absolute.describe('the host\'s /opt/cni/bin, mounted'),
  configSource: absolute.describe('the conflist from the ConfigMap'),
  confDir: absolute.describe('the host\'s /etc/cni/net.d, mounted'),
  daemonSetName: z.string().min(1).describe('this DaemonSet: on SIGTERM, its absence means PodVNet is being uninstalled'),
  namespace: z.string().min(1).describe('the namespace of this pod and its DaemonSet (downward API)'),
  recheckSeconds: z.coerce.number().int().min(1).max(3600).default(30).describe('how often to check that the installed files are still there and unchanged'),
});
export type InstallerConfig = z.infer<typeof InstallerConfig>;

const ENV_NAMES: Record<keyof InstallerConfig, string> = {
  binarySource: 'PODVNET_CNI_BINARY_SOURCE',
  binDir: 'PODVNET_CNI_BIN_DIR',
  configSource: 'PODVNET_CNI_CONFIG_SOURCE',
  confDir: 'PODVNET_CNI_CONF_DIR',
  daemonSetName: 'PODVNET_DAEMONSET_NAME',
  namespace: 'POD_NAMESPACE',
  recheckSeconds: 'PODVNET_CNI_RECHECK_SECONDS',
};

/** `--help`: the environment the installer reads, with allowed values and defaults, from InstallerConfig. */
export const installerHelp = (): string =>
  renderHelp('podvnet cni-installer: installs podvnet-cni and its conflist on the node; removes them only on uninstall',
    'node dist/deploy/cni-install/main.js   (configured by the environment only)',
    describeSettings(InstallerConfig.shape, { env: (k) => ENV_NAMES[k as keyof InstallerConfig] }),
    ['The API server is found as in any pod (KUBERNETES_SERVICE_HOST/PORT and the service account token).']);

export function parseInstallerConfig(env: Record<string, string | undefined>): InstallerConfig {
  const raw = Object.fromEntries(Object.entries(ENV_NAMES).map(([key, name]) => [key, env[name]]));
  const r = InstallerConfig.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => {
      const key = i.path[0] as keyof InstallerConfig;
      return `${ENV_NAMES[key] ?? String(key)} ${raw[key] === undefined ? 'is required' : i.message}`;
    });
    throw new Error(`invalid cni-installer environment: ${problems.join('; ')}`);
  }
  return r.data;
}

/** The parts of a CNI network configuration list the installer relies on (CNI SPEC, section 1). */
const ConfList = z.looseObject({
  cniVersion: z.string().regex(/^\d+\.\d+\.\d+$/, { message: 'must be a semantic version such as 1.1.0' }),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'must be a valid network name' }),
  plugins: z.array(z.looseObject({ type: z.string().min(1) })).min(1),
});

/** Reads and checks the conflist: valid JSON, the CNI fields, and a first plugin that is our binary. */
export function checkConflist(text: string, binaryName: string): void {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`the CNI conflist is not JSON: ${(err as Error).message}`);
  }
  const r = ConfList.safeParse(json);
  if (!r.success) throw new Error(`the CNI conflist is invalid: ${describeIssues(r.error)}`);
  if (r.data.plugins[0]!.type !== binaryName) {
    throw new Error(`the conflist's first plugin has type "${r.data.plugins[0]!.type}" but the binary installed is "${binaryName}": the runtime would not find it`);
  }
}

/** Installs binary first, conflist second: once the runtime sees the network, the plugin is there. */
export async function installAll(cfg: InstallerConfig): Promise<{ binary: string; conflist: string }> {
  const binaryName = basename(cfg.binarySource);
  const [binary, conflist] = await Promise.all([readFile(cfg.binarySource), readFile(cfg.configSource)]);
  checkConflist(conflist.toString('utf8'), binaryName);
  return {
    binary: await installFile(binary, cfg.binDir, binaryName, 0o755),
    conflist: await installFile(conflist, cfg.confDir, basename(cfg.configSource), 0o644),
  };
}

/** Conflist first, binary second: the runtime stops using the network before the plugin goes. */
export async function removeAll(cfg: InstallerConfig): Promise<void> {
  await removeFile(cfg.confDir, basename(cfg.configSource));
  await removeFile(cfg.binDir, basename(cfg.binarySource));
}

export interface RunningInstaller {
  /** Decides, removes the files if PodVNet is being uninstalled, and stops re-checking. */
  stop(): Promise<StopDecision>;
}

export async function startInstaller(cfg: InstallerConfig, deps: { lookup: () => Promise<DaemonSetLookup>; logger: Logger }): Promise<RunningInstaller> {
  const { logger } = deps;
  const first = await installAll(cfg);
  logger.info({ ...first, binDir: cfg.binDir, confDir: cfg.confDir }, 'CNI plugin and configuration installed');
  const atStart = await deps.lookup();
  const uidAtStart = atStart.kind === 'found' ? atStart.uid : undefined;
  if (atStart.kind !== 'found') logger.warn({ lookup: atStart }, 'cannot see the DaemonSet now; will decide on stop without its uid');

  let checking: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    checking = installAll(cfg).then(
      (r) => { if (r.binary === 'installed' || r.conflist === 'installed') logger.warn(r, 'CNI files were missing or changed; reinstalled'); },
      (err: Error) => logger.error({ err: err.message }, 'reinstalling the CNI files failed'),
    );
  }, cfg.recheckSeconds * 1000);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      await checking;
      const decision = decideOnStop(uidAtStart, await deps.lookup());
      if (decision.remove) await removeAll(cfg);
      logger.info({ removed: decision.remove, reason: decision.reason }, 'cni-installer stopping');
      return decision;
    },
  };
}
