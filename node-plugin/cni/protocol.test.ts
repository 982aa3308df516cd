import test from 'ava';
import {
  compareVersions,
  errorResponse,
  formatResult,
  mergeIntoPrevResult,
  parseCniArgs,
  parseRequest,
  toInternalResult,
  versionResponse,
} from './protocol.js';
import { CniError, SUPPORTED_VERSIONS, type CniVersion, type Result } from './types.js';

const conf = (version: string | undefined, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ...(version ? { cniVersion: version } : {}), name: 'podvnet', type: 'podvnet-cni', ...extra });

const addEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/run/netns/p1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  throw new Error('did not throw');
}

const ours: Result = {
  interfaces: [{ name: 'pvabc', mac: '02:00:00:00:00:01' }, { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/p1' }],
  ips: [{ address: '10.1.0.7/16', gateway: '10.1.0.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
  dns: {},
};

test('ADD parses in every supported version', (t) => {
  for (const v of SUPPORTED_VERSIONS) {
    const req = parseRequest({ ...addEnv, CNI_ARGS: 'K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=default;IgnoreUnknown=1' }, conf(v));
    t.is(req.command, 'ADD');
    t.is(req.version, v);
    if (req.command === 'ADD') {
      t.is(req.containerId, 'abc123');
      t.is(req.netns, '/run/netns/p1');
      t.is(req.ifName, 'eth0');
      t.deepEqual(req.args, { K8S_POD_NAME: 'web-0', K8S_POD_NAMESPACE: 'default', IgnoreUnknown: '1' });
    }
  }
});

test('a configuration without cniVersion is 0.1.0', (t) => {
  t.is(parseRequest(addEnv, conf(undefined)).version, '0.1.0');
});

test('missing or malformed environment is code 4 and names the variable', (t) => {
  for (const drop of ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'] as const) {
    const env: Record<string, string> = { ...addEnv };
    delete env[drop];
    const err = t.throws(() => parseRequest(env, conf('1.0.0')), { instanceOf: CniError });
    t.is(err?.code, 4);
    t.regex(err!.message, new RegExp(drop));
  }
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_IFNAME: 'a-very-long-interface-name' }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_IFNAME: 'eth/0' }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_CONTAINERID: 'bad id!' }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_NETNS: 'relative/path' }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_COMMAND: 'FROB' }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_COMMAND: undefined }, conf('1.0.0'))), 4);
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_ARGS: 'novalue' }, conf('1.0.0'))), 4);
});

test('stdin that is not JSON is code 6; an invalid configuration is 7; ipam is refused with 2', (t) => {
  t.is(codeOf(() => parseRequest(addEnv, '{not json')), 6);
  t.is(codeOf(() => parseRequest(addEnv, '')), 6);
  t.is(codeOf(() => parseRequest(addEnv, JSON.stringify({ cniVersion: '1.0.0', type: 'x' }))), 7); // no name
  t.is(codeOf(() => parseRequest(addEnv, conf('1.0.0', { name: 'bad name' }))), 7);
  t.is(codeOf(() => parseRequest(addEnv, conf('1.0.0', { mtu: 10 }))), 7);
  t.is(codeOf(() => parseRequest(addEnv, JSON.stringify({ cniVersion: 1, name: 'n', type: 't' }))), 7);
  const err = t.throws(() => parseRequest(addEnv, conf('1.0.0', { ipam: { type: 'host-local' } })), { instanceOf: CniError });
  t.is(err?.code, 2);
  t.regex(err!.message, /ipam/);
  // unknown fields are otherwise fine, as the spec asks
  t.notThrows(() => parseRequest(addEnv, conf('1.0.0', { somethingNew: true })));
});

test('an unsupported version is code 1 and lists what is supported', (t) => {
  const err = t.throws(() => parseRequest(addEnv, conf('2.0.0')), { instanceOf: CniError });
  t.is(err?.code, 1);
  t.regex(err!.message, /1\.1\.0/);
});

test('CHECK needs 0.4.0+, GC and STATUS need 1.1.0 (code 1 otherwise)', (t) => {
  const prev = { cniVersion: '0.3.1', ips: [{ version: '4', address: '10.1.0.7/16' }] };
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_COMMAND: 'CHECK' }, conf('0.3.1', { prevResult: prev }))), 1);
  t.is(parseRequest({ ...addEnv, CNI_COMMAND: 'CHECK' }, conf('0.4.0', { prevResult: prev })).command, 'CHECK');
  t.is(codeOf(() => parseRequest({ CNI_COMMAND: 'GC' }, conf('1.0.0'))), 1);
  t.is(codeOf(() => parseRequest({ CNI_COMMAND: 'STATUS' }, conf('1.0.0'))), 1);
  t.is(parseRequest({ CNI_COMMAND: 'STATUS' }, conf('1.1.0')).command, 'STATUS');
});

test('CHECK without prevResult is code 7; prevResult is normalised (ips[].version dropped)', (t) => {
  t.is(codeOf(() => parseRequest({ ...addEnv, CNI_COMMAND: 'CHECK' }, conf('1.0.0'))), 7);
  const req = parseRequest({ ...addEnv, CNI_COMMAND: 'CHECK' }, conf('0.4.0', { prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.7/16', interface: 0 }] } }));
  t.is(req.command, 'CHECK');
  if (req.command === 'CHECK') t.deepEqual(req.prevResult.ips, [{ address: '10.1.0.7/16', interface: 0 }]);
});

test('DEL needs no netns and tolerates a broken prevResult', (t) => {
  const req = parseRequest({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'abc', CNI_IFNAME: 'eth0' }, conf('1.0.0', { prevResult: { ips: 'garbage' } }));
  t.is(req.command, 'DEL');
  if (req.command === 'DEL') {
    t.is(req.netns, undefined);
    t.is(req.prevResult, undefined);
  }
  t.is(codeOf(() => parseRequest({ CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0' }, conf('1.0.0'))), 4);
});

test('GC reads cni.dev/valid-attachments', (t) => {
  const req = parseRequest({ CNI_COMMAND: 'GC' }, conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }));
  t.deepEqual(req.command === 'GC' ? req.validAttachments : undefined, [{ containerID: 'a', ifname: 'eth0' }]);
  t.is(codeOf(() => parseRequest({ CNI_COMMAND: 'GC' }, conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'a' }] }))), 7);
});

test('VERSION answers in the asked version, or the latest for empty stdin or an unknown version', (t) => {
  for (const v of SUPPORTED_VERSIONS) {
    const req = parseRequest({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: v }));
    const out = JSON.parse(versionResponse(req.version).stdout);
    t.is(out.cniVersion, v);
    t.deepEqual(out.supportedVersions, [...SUPPORTED_VERSIONS]);
  }
  t.is(parseRequest({ CNI_COMMAND: 'VERSION' }, '').version, '1.1.0');
  t.is(parseRequest({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '9.9.9' })).version, '1.1.0');
});

test('results take the shape of each version', (t) => {
  const v1 = formatResult(ours, '1.0.0') as { cniVersion: string; ips: Array<Record<string, unknown>> };
  t.is(v1.cniVersion, '1.0.0');
  t.false('version' in v1.ips[0]!);
  t.deepEqual(v1.ips[0], { address: '10.1.0.7/16', gateway: '10.1.0.1', interface: 1 });
  for (const v of ['0.3.0', '0.3.1', '0.4.0'] as CniVersion[]) {
    const r = formatResult(ours, v) as { cniVersion: string; ips: Array<Record<string, unknown>>; interfaces: unknown[] };
    t.is(r.cniVersion, v);
    t.is(r.ips[0]!.version, '4');
    t.is(r.interfaces.length, 2);
  }
  for (const v of ['0.1.0', '0.2.0'] as CniVersion[]) {
    const r = formatResult(ours, v) as Record<string, unknown>;
    t.deepEqual(r, { cniVersion: v, ip4: { ip: '10.1.0.7/16', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] }, dns: {} });
  }
});

test('round trip: an older-shaped result read back as prevResult is the internal result', (t) => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as CniVersion[]) {
    const back = toInternalResult(formatResult(ours, v) as Result);
    t.deepEqual(back, ours, v);
  }
});

test('our interface and IP are appended to a prevResult with indices shifted', (t) => {
  const prev: Result = { interfaces: [{ name: 'lo' }], ips: [{ address: '127.0.0.1/8', interface: 0 }], dns: { nameservers: ['10.0.0.10'] } };
  const merged = mergeIntoPrevResult(prev, ours);
  t.is(merged.interfaces?.length, 3);
  t.deepEqual(merged.ips?.[1], { address: '10.1.0.7/16', gateway: '10.1.0.1', interface: 2 });
  t.deepEqual(merged.dns, { nameservers: ['10.0.0.10'] });
  t.is(mergeIntoPrevResult(undefined, ours), ours);
});

test('errors are the spec object with the code, in the request version', (t) => {
  const res = errorResponse(new CniError(11, 'try again', 'details here'), '0.4.0');
  t.is(res.exitCode, 1);
  t.deepEqual(JSON.parse(res.stdout), { cniVersion: '0.4.0', code: 11, msg: 'try again', details: 'details here' });
  t.is(JSON.parse(errorResponse(new CniError(1, 'x'), '7.0.0').stdout).cniVersion, '1.1.0');
});

test('version comparison and CNI_ARGS', (t) => {
  t.is(compareVersions('0.4.0', '0.3.1'), 1);
  t.is(compareVersions('1.0.0', '1.0.0'), 0);
  t.is(compareVersions('0.3.1', '1.1.0'), -1);
  t.deepEqual(parseCniArgs('A=1;B=x=y;'), { A: '1', B: 'x=y' });
  t.deepEqual(parseCniArgs(undefined), {});
});
