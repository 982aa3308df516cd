/**
 * What the kernel tools' error messages mean, as pure functions, so that a removal can treat exactly
 * "what it would remove is already gone" as success (CNI DEL must be idempotent, whatever raced it) and
 * nothing else. Each removal step names the messages that mean gone *for that step*: "No such device"
 * on `link del <veth>` means the veth vanished between ip's name lookup and the delete (its namespace was
 * destroyed meanwhile), while the same text from an unrelated line is a real error.
 *
 * iproute2 (6.1) in `ip -force -batch` mode: a failing `link` or `route` line prints its message(s) and
 * then `Command failed -:N` and the batch goes on; a failing `neigh` line prints its message and ends the
 * whole process (ipneigh calls exit(2)), so the lines after it do not run and no `Command failed` follows.
 */

export interface RemovalStep {
  /** One `ip -batch` line. */
  line: string;
  /** Messages that mean this step's object is already gone. */
  gone: RegExp[];
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const noDevice = (dev: string): RegExp[] => [
  new RegExp(`^Cannot find device "${esc(dev)}"$`),
  /^RTNETLINK answers: No such device$/,
];

/** `link del dev <dev>`: gone if ip cannot find it, or it vanished between the lookup and the delete. */
export function linkDelStep(dev: string): RemovalStep {
  return { line: `link del dev ${dev}`, gone: noDevice(dev) };
}

/** `link set dev <dev> down`: gone if the device is. */
export function linkDownStep(dev: string): RemovalStep {
  return { line: `link set dev ${dev} down`, gone: noDevice(dev) };
}

/** `link set dev <dev> name <name>`: gone if the device is (it must be down). */
export function linkRenameStep(dev: string, name: string): RemovalStep {
  return { line: `link set dev ${dev} name ${name}`, gone: noDevice(dev) };
}

/**
 * `route del <ip>/32 dev <bridge> metric <m>`: gone if no such route (ESRCH), the main table is empty
 * (the kernel says the FIB table does not exist), or the bridge (and with it its routes) is gone.
 */
export function routeDelStep(ip: string, bridge: string, metric: number): RemovalStep {
  return {
    line: `route del ${ip}/32 dev ${bridge} metric ${metric}`,
    gone: [/^RTNETLINK answers: No such process$/, /^Error: FIB table does not exist\.$/, ...noDevice(bridge)],
  };
}

/** `neigh del <ip> dev <bridge>`: gone if there is no entry (ENOENT, e.g. flushed by a carrier loss) or no bridge. */
export function neighDelStep(ip: string, bridge: string): RemovalStep {
  return { line: `neigh del ${ip} dev ${bridge}`, gone: [/^RTNETLINK answers: No such file or directory$/, ...noDevice(bridge)] };
}

/** A netlink dump that a concurrent change interrupted: its output may be inconsistent, so it is read again. */
export const DUMP_INTERRUPTED = /Dump was interrupted and may be inconsistent/;

export interface BatchOutcome {
  /** Messages that are not "already gone" for the line they belong to (with the line), or unattributable ones. */
  errors: string[];
  /**
   * Index (0-based) of the first step that may not have run because a `neigh` line ended the batch with
   * an "already gone" error; undefined when every line ran. The caller runs the steps from here again.
   */
  resumeAt?: number;
}

/**
 * Splits `ip -force -batch` stderr into per-line errors and keeps those that are not "already gone" for
 * their own line. A trailing block without `Command failed` comes from a line that ended the process:
 * only `neigh` lines do that, so it belongs to a `neigh` step after the last reported failure. If no
 * such step exists, the message cannot be attributed and counts as an error.
 */
export function batchOutcome(steps: readonly RemovalStep[], stderr: string, code: number): BatchOutcome {
  if (code === 0) return { errors: [] };
  const errors: string[] = [];
  let block: string[] = [];
  let lastFailed = -1; // 0-based index of the last line that reported `Command failed`
  for (const raw of stderr.split('\n')) {
    const l = raw.trim();
    if (!l || DUMP_INTERRUPTED.test(l)) continue;
    const failed = /^Command failed -:(\d+)$/.exec(l);
    if (!failed) { block.push(l); continue; }
    const i = Number(failed[1]) - 1;
    const step = steps[i];
    const msgs = block.length ? block : [`exit code ${code}`];
    for (const m of msgs) if (!step || !step.gone.some((re) => re.test(m))) errors.push(step ? `${step.line}: ${m}` : m);
    block = [];
    lastFailed = Math.max(lastFailed, i);
  }
  if (!block.length) {
    // Every failure was reported line by line (or ip said nothing): the batch ran to its end.
    return errors.length || lastFailed >= 0 ? { errors } : { errors: [`exit code ${code} without a message`] };
  }
  // Which neigh line ended the batch is certain only if one follows the last reported failure; with
  // several, the message must mean "gone" for each of them, and everything from the first of them on
  // is run again (removal steps are idempotent: what this run removed is gone the next time).
  const candidates = steps.map((s, i) => ({ s, i })).filter(({ s, i }) => i > lastFailed && s.line.startsWith('neigh '));
  if (!candidates.length) return { errors: [...errors, ...block] };
  const owner = candidates.length === 1 ? candidates[0]!.s.line : `one of ${candidates.map((c) => c.s.line).join(' | ')}`;
  const real = block.filter((m) => !candidates.every(({ s }) => s.gone.some((re) => re.test(m))));
  if (real.length) return { errors: [...errors, ...real.map((m) => `${owner}: ${m}`)] };
  const resumeAt = candidates[0]!.i + 1;
  return resumeAt < steps.length ? { errors, resumeAt } : { errors };
}

/** `iptables -S <chain>` failed because the chain (or, for legacy, the table) does not exist. */
export function iptablesChainMissing(stderr: string): boolean {
  return /No chain\/target\/match by that name|chain `[^']+' in table `[^']+' is incompatible|Table does not exist/.test(stderr);
}

/** An iptables call that lost a race with a concurrent ruleset change and may simply be run again. */
export function iptablesInterrupted(stderr: string): boolean {
  return /Interrupted system call|Dump was interrupted/.test(stderr);
}
