/**
 * Process-wide datapath options: how this process reaches the node's kernel, as opposed to what the
 * node's network is (NodeNetwork). The agent sets them once at start from its configuration.
 */
import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import { DEFAULT_PROC_SYS_ROOT } from './sysctl.js';

export interface DatapathOptions {
  /**
   * Where the node's /proc/sys is: sysctls are written as files under `<procSysRoot>/net`. Default
   * /proc/sys; in an unprivileged container (read-only /proc/sys) the host's /proc/sys/net is mounted
   * at e.g. /host/proc/sys/net and this is /host/proc/sys.
   */
  procSysRoot: string;
  /**
   * When retired pod veths are deleted (retired-veths.ts): once no pod was attached or detached for
   * `quietMs`, at the latest `maxWaitMs` after the first one waiting. Defaults 100 ms and 5 s.
   */
  retiredVeths: { quietMs: number; maxWaitMs: number };
}

const Options = z.strictObject({
  procSysRoot: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path').transform((p) => p.replace(/\/+$/, '') || '/').optional(),
  retiredVeths: z.strictObject({ quietMs: z.number().int().min(0).max(60_000), maxWaitMs: z.number().int().min(0).max(600_000) }).optional(),
});

let current: DatapathOptions = { procSysRoot: DEFAULT_PROC_SYS_ROOT, retiredVeths: { quietMs: 100, maxWaitMs: 5_000 } };

/** Sets options (omitted ones keep their value). An invalid option throws TypeError naming it. */
export function configureDatapath(opts: Partial<DatapathOptions>): void {
  const r = Options.safeParse(opts);
  if (!r.success) throw new TypeError(`datapath: invalid options: ${describeIssues(r.error)}`);
  current = { ...current, ...Object.fromEntries(Object.entries(r.data).filter(([, v]) => v !== undefined)) };
}

export function datapathOptions(): Readonly<DatapathOptions> {
  return current;
}
