import test from 'ava';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { encodeRequest } from './cni-socket.js';
import { DelQueue, outcome, parseQueuedDel } from './del-queue.js';
import { planReconcile } from './reconcile.js';

/** The DEL queue's decisions and its file handling, without a datapath (del-queue-e2e.test.ts has one). */

const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'abc', CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/x' };
const good = encodeRequest({ env, stdin: '{"cniVersion":"1.0.0"}' });
const name = (ms: number, id = 'abc') => `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1e6).padStart(9, '0')}-42-${id}.del`;

test('parseQueuedDel: the request, the container and the time it was queued; anything else says what is wrong', (t) => {
  const d = parseQueuedDel(name(1_700_000_000_123), good);
  t.like(d, { containerId: 'abc', ifName: 'eth0', queuedAt: 1_700_000_000_123 });
  t.deepEqual(d.request.env, env);
  t.is(d.request.stdin, '{"cniVersion":"1.0.0"}');
  t.throws(() => parseQueuedDel('junk.txt', good), { message: /file name/ });
  t.throws(() => parseQueuedDel(name(1), good.subarray(0, 25)), { message: /not a complete PODVNET-CNI\/1 request/ });
  t.throws(() => parseQueuedDel(name(1), Buffer.from('hello')), { message: /not a complete/ });
  t.throws(() => parseQueuedDel(name(1), encodeRequest({ env: { ...env, CNI_COMMAND: 'ADD' }, stdin: '' })), { message: /CNI_COMMAND must be DEL, got "ADD"/ });
  t.throws(() => parseQueuedDel(name(1), encodeRequest({ env: { CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0' }, stdin: '' })), { message: /CNI_CONTAINERID/ });
});

test('outcome: success is applied; 11 and datapath failures are retried; a request the spec refuses is rejected', (t) => {
  t.is(outcome({ exitCode: 0, stdout: '' }), 'applied');
  t.is(outcome({ exitCode: 1, stdout: '{"code":11,"msg":"later"}' }), 'retry');
  t.is(outcome({ exitCode: 1, stdout: '{"code":101,"msg":"rtnetlink"}' }), 'retry');
  t.is(outcome({ exitCode: 1, stdout: 'not json' }), 'retry');
  for (const code of [1, 4, 6, 7]) t.is(outcome({ exitCode: 1, stdout: JSON.stringify({ code }) }), 'reject', String(code));
});

test('DelQueue: oldest first, files removed once applied, kept while they fail, stale temporaries removed, runs never overlap', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-delq-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const calls: string[] = [];
  let active = 0;
  let maxActive = 0;
  let failB = true;
  const q = new DelQueue({
    dir,
    logger: pino({ level: 'silent' }),
    assignedAt: () => undefined,
    staleTempMs: 1000,
    apply: async (e) => {
      active++;
      maxActive = Math.max(maxActive, active);
      calls.push(e.CNI_CONTAINERID!);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return e.CNI_CONTAINERID === 'b' && failB ? { exitCode: 1, stdout: '{"code":101,"msg":"busy"}' } : { exitCode: 0, stdout: '' };
    },
  });
  const req = (id: string) => encodeRequest({ env: { ...env, CNI_CONTAINERID: id }, stdin: '{}' });
  await writeFile(path.join(dir, name(3000, 'c')), req('c'));
  await writeFile(path.join(dir, name(1000, 'a')), req('a'));
  await writeFile(path.join(dir, name(2000, 'b')), req('b'));
  await writeFile(path.join(dir, '.tmp-old'), 'partial');
  await writeFile(path.join(dir, '.tmp-new'), 'partial');
  await utimes(path.join(dir, '.tmp-old'), new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
  const [r1] = await Promise.all([q.applyAll(), q.applyAll(), q.applyAll()]);
  t.deepEqual(calls.slice(0, 3), ['a', 'b', 'c'], 'oldest first');
  t.is(maxActive, 1, 'one at a time');
  t.like(r1, { applied: 2, retrying: ['b/eth0'] });
  t.deepEqual((await readdir(dir)).sort(), ['.tmp-new', name(2000, 'b')]);
  failB = false;
  t.like(await q.applyAll(), { applied: 1, retrying: [] });
  t.deepEqual(await readdir(dir), ['.tmp-new'], 'a temporary file being written is left alone');
});

test('reconcile: a queued DEL is proof the pod is gone (freed with no attachment even if its netns remains), never adopted', (t) => {
  const alloc = (id: string, ip: string) => ({ containerId: id, ifName: 'eth0', runtime: 'cni' as const, ip, assignedAt: 1, netnsPath: `/run/netns/${id}` });
  const input = {
    allocations: [alloc('gone', '10.0.0.10'), alloc('kept', '10.0.0.11'), alloc('stuck', '10.0.0.12')],
    attachments: [{ containerId: 'stuck', ifName: 'eth0', ip: '10.0.0.12' }, { containerId: 'unknown', ifName: 'eth0', ip: '10.0.0.13' }],
    netnsExists: new Map([['/run/netns/gone', true], ['/run/netns/kept', true], ['/run/netns/stuck', true]]),
    poolIPs: ['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13'],
    now: 5,
  };
  const without = planReconcile(input);
  t.deepEqual(without.free, []);
  t.deepEqual(without.adopt.map((a) => a.containerId), ['unknown']);
  const withQueue = planReconcile({ ...input, queuedDels: new Set(['gone/eth0', 'stuck/eth0', 'unknown/eth0']) });
  t.deepEqual(withQueue.free.map((a) => a.containerId), ['gone']);
  t.deepEqual(withQueue.keep.map((a) => a.containerId), ['kept', 'stuck'], 'an interface still there: kept until the DEL is applied');
  t.deepEqual(withQueue.adopt, []);
  t.is(withQueue.conflicts.length, 2);
});
