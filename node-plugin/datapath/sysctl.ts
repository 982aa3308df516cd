/**
 * Network sysctls as files under a procfs root, instead of sysctl(8).
 *
 * Why a root: container runtimes mount /proc/sys read-only in every unprivileged container, whatever its
 * capabilities. The DaemonSet mounts the host's /proc/sys/net at /host/proc/sys/net and sets the root to
 * /host/proc/sys. That one mount serves every namespace: a file under /proc/sys/net shows the network
 * namespace of the process that opens it, not the one of the procfs mount.
 *
 * When the node is our own namespace (production), the files are written in-process with node:fs (no
 * process at all). When it is another namespace (tests, sandbox: a simulated VM), one `sh` runs inside
 * it and writes every file (a failed write is retried with tee, whose message carries the errno text).
 *
 * Keys are relative paths under the root such as `net/ipv4/conf/podvnet0/proxy_arp` ('/' separators,
 * so interface names with dots need no escaping).
 */
import { constants } from 'node:fs';
import { open, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { runRaw, type Netns } from './exec.js';
import { DatapathError } from './types.js';

export const DEFAULT_PROC_SYS_ROOT = '/proc/sys';
/** Where the DaemonSet mounts the host's /proc/sys/net (…/net under this root). */
export const SUGGESTED_PROC_SYS_ROOT = '/host/proc/sys';

const PROC_SUPER_MAGIC = 0x9fa0;
const KEY = /^net(\/[^/\s\0]+)+$/;

export interface SysctlFailure { key: string; file: string; value?: string; errno: string; explanation: string }

/** A sysctl could not be written or read; `failures` names each key, its file and the errno. */
export class SysctlError extends DatapathError {
  override name = 'SysctlError';
  constructor(message: string, readonly failures: SysctlFailure[]) {
    super(message);
  }
}

function fileOf(root: string, key: string): string {
  if (!KEY.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new TypeError(`datapath: invalid sysctl key "${key}": must be a path under net/ such as net/ipv4/ip_forward`);
  }
  return join(root, key);
}

/** Why errno happened, in words that say what to do. */
export function explain(errno: string, root: string, key: string): string {
  switch (errno) {
    case 'EROFS':
      return root === DEFAULT_PROC_SYS_ROOT
        ? `${root} is read-only in this container; mount the host's /proc/sys/net at ${SUGGESTED_PROC_SYS_ROOT}/net (hostPath) and set procSysRoot to ${SUGGESTED_PROC_SYS_ROOT} (--proc-sys-root)`
        : `${root}/net is mounted read-only; mount the host's /proc/sys/net there read-write`;
    case 'EPERM':
      return 'the kernel refused: network sysctls need CAP_NET_ADMIN';
    case 'EACCES':
      return 'permission denied: the agent must run as uid 0, and no AppArmor or SELinux policy may deny the write';
    case 'ENOENT':
    case 'ENOTDIR':
      if (key.startsWith('net/bridge/')) return 'no such key: br_netfilter is not loaded';
      if (/^net\/ipv4\/(conf|neigh)\//.test(key)) return `no such key: interface ${key.split('/')[3]} does not exist`;
      return 'no such key in this kernel';
    case 'EINVAL':
      return 'the kernel rejected the value';
    default:
      return 'unexpected error';
  }
}

/** The strerror(3) texts coreutils prints, back to errno names. */
const STRERROR: Record<string, string> = {
  'Read-only file system': 'EROFS',
  'Operation not permitted': 'EPERM',
  'Permission denied': 'EACCES',
  'No such file or directory': 'ENOENT',
  'Not a directory': 'ENOTDIR',
  'Invalid argument': 'EINVAL',
  'Input/output error': 'EIO',
  'Device or resource busy': 'EBUSY',
};

/**
 * `<root>/net` must be procfs: anything else (the hostPath missing, a plain directory) would take our
 * writes without effect, or, for tee, create regular files.
 */
async function checkRoot(root: string): Promise<void> {
  const dir = join(root, 'net');
  let type: number;
  try {
    type = (await statfs(dir)).type;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SysctlError(`procSysRoot ${root}: cannot read ${dir}: ${code}: mount the host's /proc/sys/net there (hostPath /proc/sys/net)`,
      [{ key: 'net', file: dir, errno: code, explanation: 'procSysRoot is not usable' }]);
  }
  if (type !== PROC_SUPER_MAGIC) {
    throw new SysctlError(`procSysRoot ${root}: ${dir} is not procfs (filesystem type 0x${type.toString(16)}): mount the host's /proc/sys/net there (hostPath /proc/sys/net)`,
      [{ key: 'net', file: dir, errno: 'ENOTPROC', explanation: 'procSysRoot is not usable' }]);
  }
}

function failureError(failures: SysctlFailure[]): SysctlError {
  const parts = failures.map((f) => `cannot set ${f.key}=${f.value} (${f.file}): ${f.errno}: ${f.explanation}`);
  return new SysctlError(`sysctl: ${parts.join('; ')}`, failures);
}

/** Writes the keys in order. Every key is tried; one SysctlError lists all that failed. */
export async function writeSysctls(ns: Netns, root: string, values: Record<string, string>): Promise<void> {
  const entries = Object.entries(values).map(([key, value]) => {
    if (/[\n\0]/.test(value)) throw new TypeError(`datapath: invalid value for sysctl ${key}: one line expected`);
    return { key, value, file: fileOf(root, key) };
  });
  await checkRoot(root);
  const failures: SysctlFailure[] = [];
  const fail = (e: { key: string; value: string; file: string }, errno: string) =>
    failures.push({ ...e, errno, explanation: explain(errno, root, e.key) });
  if (ns === undefined) {
    for (const e of entries) {
      try {
        // O_WRONLY alone: never create or truncate anything, a sysctl file exists or it does not.
        const fh = await open(e.file, constants.O_WRONLY);
        try { await fh.write(`${e.value}\n`); } finally { await fh.close(); }
      } catch (err) {
        fail(e, (err as NodeJS.ErrnoException).code ?? 'EIO');
      }
    }
  } else {
    // One sh in the node's namespace writes every file with its builtin printf (no further process).
    // A write that fails is retried through tee, whose message carries the errno text ("tee: <file>:
    // <strerror>"), which sh's does not for a failed write.
    const script = [
      'rc=0',
      'while [ $# -ge 2 ]; do',
      '  if ! { printf \'%s\\n\' "$2" >"$1"; } 2>/dev/null; then printf \'%s\\n\' "$2" | tee -- "$1" >/dev/null || rc=1; fi',
      '  shift 2',
      'done',
      'exit $rc',
    ].join('\n');
    const r = await runRaw(ns, ['sh', '-c', script, 'sh', ...entries.flatMap((e) => [e.file, e.value])]);
    if (r.code !== 0) {
      const lines = r.stderr.split('\n');
      for (const e of entries) {
        const line = lines.find((l) => l.startsWith(`tee: ${e.file}: `));
        if (line) fail(e, STRERROR[line.slice(`tee: ${e.file}: `.length).trim()] ?? line.slice(`tee: ${e.file}: `.length).trim());
      }
      if (!failures.length) {
        throw new DatapathError(`sysctl: writing ${entries.map((e) => e.file).join(', ')} in netns ${ns} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
      }
    }
  }
  if (failures.length) throw failureError(failures);
}

/**
 * Reads the keys; a key that does not exist (module not loaded, interface gone) reads as undefined.
 * Other errors throw.
 */
export async function readSysctls(ns: Netns, root: string, keys: string[]): Promise<Record<string, string | undefined>> {
  const files = keys.map((k) => fileOf(root, k));
  await checkRoot(root);
  const out: Record<string, string | undefined> = {};
  if (ns === undefined) {
    await Promise.all(keys.map(async (k, i) => {
      try {
        out[k] = (await readFile(files[i]!, 'utf8')).trim();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
        if (code === 'ENOENT' || code === 'ENOTDIR') out[k] = undefined;
        else throw new SysctlError(`sysctl: cannot read ${k} (${files[i]}): ${code}`, [{ key: k, file: files[i]!, errno: code, explanation: explain(code, root, k) }]);
      }
    }));
    return out;
  }
  // One grep for every file: "<file>:<value>" for each, "grep: <file>: <strerror>" for a missing one.
  // (Not sh's read: procfs returns an integer sysctl only to a read from offset 0, and sh reads bytewise.)
  const r = await runRaw(ns, ['grep', '-H', '', '--', ...files]);
  const lines = r.stdout.split('\n');
  const errors = r.stderr.split('\n');
  keys.forEach((k, i) => {
    const file = files[i]!;
    const line = lines.find((l) => l.startsWith(`${file}:`));
    if (line !== undefined) { out[k] = line.slice(file.length + 1).trim(); return; }
    const err = errors.find((l) => l.startsWith(`grep: ${file}: `));
    const text = err?.slice(`grep: ${file}: `.length).trim();
    const code = text ? STRERROR[text] ?? text : 'EIO';
    if (code === 'ENOENT' || code === 'ENOTDIR') { out[k] = undefined; return; }
    throw new SysctlError(`sysctl: cannot read ${k} (${file}) in netns ${ns}: ${code}`,
      [{ key: k, file, errno: code, explanation: explain(code, root, k) }]);
  });
  return out;
}
