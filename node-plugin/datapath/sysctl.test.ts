/**
 * sysctl.ts against the real kernel (root): writes and reads in a namespace of the test's own, and the
 * errors for every way procSysRoot can be wrong. Nothing here writes a sysctl of the test's own network
 * namespace: in-process writes only go to a read-only mount or to keys that do not exist.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.js';
import { configureDatapath, datapathOptions } from './options.js';
import { explain, readSysctls, SysctlError, writeSysctls } from './sysctl.js';

async function netns(t: ExecutionContext): Promise<string> {
  const name = `pvs${randomBytes(3).toString('hex')}`;
  await run(undefined, ['ip', 'netns', 'add', name]);
  t.teardown(() => run(undefined, ['ip', 'netns', 'del', name]));
  await run(name, ['ip', 'link', 'add', 'br-x.1', 'type', 'bridge']);
  return name;
}

/** A root whose net/ is the host's /proc/sys/net, mounted read-only (as a runtime mounts /proc/sys). */
async function readOnlyRoot(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'podvnet-sysctl-'));
  await mkdir(join(dir, 'net'));
  t.teardown(async () => {
    await run(undefined, ['umount', join(dir, 'net')]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  await run(undefined, ['mount', '--bind', '/proc/sys/net', join(dir, 'net')]);
  await run(undefined, ['mount', '-o', 'remount,bind,ro', join(dir, 'net')]);
  return dir;
}

const cat = async (ns: string, file: string) => (await run(ns, ['cat', file])).trim();

test('in another namespace: one process writes every key there (interface names with dots need no escaping) and reads them back', async (t) => {
  const ns = await netns(t);
  const own = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  await writeSysctls(ns, '/proc/sys', {
    'net/ipv4/ip_forward': '1',
    'net/ipv4/conf/br-x.1/proxy_arp': '1',
    'net/ipv4/neigh/br-x.1/proxy_delay': '0',
  });
  t.is(await cat(ns, '/proc/sys/net/ipv4/ip_forward'), '1');
  t.is(await cat(ns, '/proc/sys/net/ipv4/conf/br-x.1/proxy_arp'), '1');
  t.is(await cat(ns, '/proc/sys/net/ipv4/neigh/br-x.1/proxy_delay'), '0');
  t.is((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), own, 'the test\'s own namespace is untouched');
  t.deepEqual(await readSysctls(ns, '/proc/sys', ['net/ipv4/ip_forward', 'net/ipv4/conf/br-x.1/proxy_arp', 'net/ipv4/conf/gone0/proxy_arp']), {
    'net/ipv4/ip_forward': '1', 'net/ipv4/conf/br-x.1/proxy_arp': '1', 'net/ipv4/conf/gone0/proxy_arp': undefined,
  });
});

test('every key is tried; one SysctlError names each failed key, its file and errno', async (t) => {
  const ns = await netns(t);
  const e = await t.throwsAsync(writeSysctls(ns, '/proc/sys', {
    'net/ipv4/conf/gone0/forwarding': '1',
    'net/ipv4/ip_forward': 'yes',
    'net/ipv4/conf/br-x.1/proxy_arp': '1',
  }), { instanceOf: SysctlError });
  t.deepEqual(e?.failures.map((f) => [f.key, f.file, f.errno]), [
    ['net/ipv4/conf/gone0/forwarding', '/proc/sys/net/ipv4/conf/gone0/forwarding', 'ENOENT'],
    ['net/ipv4/ip_forward', '/proc/sys/net/ipv4/ip_forward', 'EINVAL'],
  ]);
  t.regex(e!.message, /cannot set net\/ipv4\/conf\/gone0\/forwarding=1 \(\/proc\/sys\/net\/ipv4\/conf\/gone0\/forwarding\): ENOENT: no such key: interface gone0 does not exist/);
  t.is(await cat(ns, '/proc/sys/net/ipv4/conf/br-x.1/proxy_arp'), '1', 'the key after the failures was still written');
});

test('a read-only /proc/sys/net: EROFS, in-process and in another namespace, with what to do', async (t) => {
  const root = await readOnlyRoot(t);
  const ns = await netns(t);
  for (const where of [undefined, ns]) {
    const e = await t.throwsAsync(writeSysctls(where, root, { 'net/ipv4/ip_forward': '1' }), { instanceOf: SysctlError });
    t.deepEqual(e?.failures.map((f) => [f.key, f.file, f.errno]), [['net/ipv4/ip_forward', `${root}/net/ipv4/ip_forward`, 'EROFS']]);
    t.regex(e!.message, new RegExp(`EROFS: ${root}/net is mounted read-only; mount the host's /proc/sys/net there read-write`));
  }
  // Reading works through a read-only mount, and shows the reader's namespace.
  t.is((await readSysctls(ns, root, ['net/ipv4/ip_forward']))['net/ipv4/ip_forward'], '0');
  t.is(explain('EROFS', '/proc/sys', 'net/ipv4/ip_forward'),
    "/proc/sys is read-only in this container; mount the host's /proc/sys/net at /host/proc/sys/net (hostPath) and set procSysRoot to /host/proc/sys (--proc-sys-root)");
});

test('a procSysRoot without procfs under net/ is refused before anything is written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'podvnet-sysctl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.throwsAsync(writeSysctls(undefined, dir, { 'net/ipv4/ip_forward': '1' }), { instanceOf: SysctlError, message: new RegExp(`cannot read ${dir}/net: ENOENT: mount the host's /proc/sys/net there`) });
  await mkdir(join(dir, 'net', 'ipv4'), { recursive: true });
  await t.throwsAsync(writeSysctls(undefined, dir, { 'net/ipv4/ip_forward': '1' }), { instanceOf: SysctlError, message: /is not procfs \(filesystem type 0x[0-9a-f]+\)/ });
  await t.throwsAsync(readSysctls(undefined, dir, ['net/ipv4/ip_forward']), { instanceOf: SysctlError, message: /is not procfs/ });
  await t.throwsAsync(rm(join(dir, 'net', 'ipv4', 'ip_forward')), { code: 'ENOENT' }, 'no file was created');
});

test('keys and values are checked before anything runs', async (t) => {
  for (const key of ['kernel/hostname', 'net/../kernel/hostname', 'net/ipv4/./ip_forward', 'net', 'net//ipv4', 'net/ipv4/conf/a b/x']) {
    await t.throwsAsync(writeSysctls(undefined, '/nonexistent', { [key]: '1' }), { instanceOf: TypeError, message: /invalid sysctl key/ }, key);
  }
  await t.throwsAsync(writeSysctls(undefined, '/nonexistent', { 'net/ipv4/ip_forward': '1\n0' }), { instanceOf: TypeError, message: /one line expected/ });
});

test('in-process reads of our own namespace match the kernel; a missing key is undefined', async (t) => {
  const v = await readSysctls(undefined, '/proc/sys', ['net/ipv4/ip_forward', 'net/ipv4/conf/gone0/forwarding']);
  t.is(v['net/ipv4/ip_forward'], (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim());
  t.is(v['net/ipv4/conf/gone0/forwarding'], undefined);
});

test('configureDatapath: procSysRoot must be absolute; a trailing slash is dropped', (t) => {
  const before = datapathOptions().procSysRoot;
  t.teardown(() => configureDatapath({ procSysRoot: before }));
  t.throws(() => configureDatapath({ procSysRoot: 'host/proc/sys' }), { instanceOf: TypeError, message: /procSysRoot: must be an absolute path/ });
  t.is(datapathOptions().procSysRoot, before);
  configureDatapath({ procSysRoot: '/host/proc/sys/' });
  t.is(datapathOptions().procSysRoot, '/host/proc/sys');
  configureDatapath({});
  t.is(datapathOptions().procSysRoot, '/host/proc/sys', 'omitted options keep their value');
});
