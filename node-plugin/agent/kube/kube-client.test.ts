import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { inClusterTarget, loadKubeTarget } from './config.js';
import { kubeconfigFileTarget, kubeconfigTarget } from './kubeconfig.js';
import { apiError, KubeApiError, KubeHttp } from './http.js';
import { Informer, type InformerEvent } from './informer.js';
import { emulatorTarget, kubeWithCrds, PODVNET_API } from '../testing/kube.js';
import { until } from '../testing/poll.js';

/**
 * The agent's own API client against the Kubernetes API emulator: configuration (in-cluster with a
 * rotating token file, kubeconfig files, refusals of what it does not support), Status errors, and the
 * informer's list/watch protocol (bookmarks, 410 Gone, dropped and timed-out watches).
 */

const RECORDS = `/apis/${PODVNET_API.group}/${PODVNET_API.version}/nodeipallocations`;
const record = (name: string, poolName = 'p') => ({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPAllocation', metadata: { name }, spec: { poolName } });

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'podvnet-kube-client-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An informer on the records, recording what it delivers. */
function watchRecords(http: KubeHttp, o: { fieldSelector?: string; watchTimeoutSeconds?: () => number } = {}) {
  const events: Array<[InformerEvent, string, unknown]> = [];
  const errors: string[] = [];
  const informer = new Informer({
    http,
    path: RECORDS,
    ...o,
    onEvent: (event, obj) => events.push([event, obj.metadata.name, (obj.spec as { poolName?: string } | undefined)?.poolName]),
    onError: (err) => errors.push(err.message),
  });
  return { informer, events, errors };
}

test('in-cluster: the token file is read again after the kubelet rewrote it (projected tokens rotate)', async (t) => {
  const { emu } = await kubeWithCrds(t);
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'ca.crt'), emu.caPem!);
  await writeFile(path.join(dir, 'token'), 'an-expired-token\n');
  const port = new URL(emu.url).port;
  const target = inClusterTarget({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, dir)!;
  t.is(target.server.href, `https://127.0.0.1:${port}/`);
  const http = new KubeHttp(target);
  t.teardown(() => http.close());
  const get = () => http.request('GET', `${RECORDS}/n1`, { schema: z.unknown() });
  const before = await t.throwsAsync(get(), { instanceOf: KubeApiError });
  t.is(before.code, 401);
  t.is(before.reason, 'Unauthorized');
  // the kubelet writes the new token; the next request carries it (the answer is now the API's 404)
  await writeFile(path.join(dir, 'token'), `${emu.token}\n`);
  const after = await t.throwsAsync(get(), { instanceOf: KubeApiError });
  t.is(after.code, 404);
  t.is(after.reason, 'NotFound');
  t.regex(after.message, /nodeipallocations\.podvnet\.io "n1" not found/);
  t.is(inClusterTarget({}, dir), undefined, 'not in a pod');
  t.throws(() => inClusterTarget({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, path.join(dir, 'missing')), { message: /token/ });
});

test('a Status error body becomes a KubeApiError with its code, reason and message; other bodies are described', (t) => {
  const status = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 409, reason: 'Conflict', message: 'the object has been modified' });
  const e = apiError(409, status, undefined, 'PATCH /x: ');
  t.like(e, { code: 409, reason: 'Conflict', message: 'PATCH /x: 409 Conflict: the object has been modified', retryAfterSeconds: undefined });
  t.like(apiError(429, JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'slow down' }), '3'), { code: 429, reason: 'TooManyRequests', retryAfterSeconds: 3 });
  t.like(apiError(502, '<html>bad gateway</html>'), { code: 502, reason: 'Bad Gateway', message: '502 Bad Gateway: <html>bad gateway</html>' });
  t.like(apiError(500, ''), { code: 500, reason: 'Internal Server Error', message: '500 Internal Server Error: HTTP 500' });
});

test('a request the API server refuses carries its Status; an answer of the wrong shape is an error naming the field', async (t) => {
  const { emu } = await kubeWithCrds(t);
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  emu.injectFault({ method: 'GET', path: RECORDS, code: 429, retryAfterSeconds: 2, message: 'too many requests, try later' });
  const throttled = await t.throwsAsync(http.request('GET', RECORDS, { schema: z.unknown() }), { instanceOf: KubeApiError });
  t.like(throttled, { code: 429, reason: 'TooManyRequests', retryAfterSeconds: 2 });
  t.regex(throttled.message, /too many requests, try later/);
  await t.throwsAsync(http.request('GET', RECORDS, { schema: z.object({ items: z.array(z.string()), metadata: z.object({ resourceVersion: z.number() }) }) }), {
    message: /^GET \/apis\/podvnet\.io\/v1alpha1\/nodeipallocations: unexpected answer: metadata\.resourceVersion: /,
  });
  // a merge patch with a field manager, as the agent writes its spec
  await http.request('POST', RECORDS, { body: record('n1'), schema: z.unknown() });
  const patched = await http.request('PATCH', `${RECORDS}/n1`, {
    query: { fieldManager: 'podvnet-agent' }, body: { spec: { demand: { usedIPs: 2, pendingIPs: 0 } } }, contentType: 'application/merge-patch+json',
    schema: z.looseObject({ spec: z.looseObject({ poolName: z.string(), demand: z.object({ usedIPs: z.number(), pendingIPs: z.number() }) }), metadata: z.looseObject({ managedFields: z.array(z.looseObject({ manager: z.string() })) }) }),
  });
  t.deepEqual(patched.spec.demand, { usedIPs: 2, pendingIPs: 0 });
  t.is(patched.spec.poolName, 'p', 'a merge patch keeps the rest of the spec');
  t.true(patched.metadata.managedFields.some((m) => m.manager === 'podvnet-agent'));
});

test('kubeconfig: what the agent cannot use is a clear error naming it', async (t) => {
  const dir = await tempDir(t);
  const cfg = (user: Record<string, unknown>, extra: Record<string, unknown> = {}) => JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: 'https://10.0.0.1:6443' } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    ...extra,
  });
  const load = (text: string) => () => kubeconfigTarget(text, 'test.yaml', dir);
  t.throws(load(cfg({ exec: { command: 'kubelogin', apiVersion: 'client.authentication.k8s.io/v1' } })), { message: /^kubeconfig test\.yaml: user "u" uses exec, which the node agent does not support/ });
  t.throws(load(cfg({ 'auth-provider': { name: 'oidc' } })), { message: /user "u" uses auth-provider, which the node agent does not support/ });
  t.throws(load(cfg({ username: 'a', password: 'b' })), { message: /uses username, password/ });
  t.throws(load(cfg({ 'client-certificate-data': 'eA==' })), { message: /client certificate without its key/ });
  t.throws(load(cfg({ token: 't' }, { 'current-context': 'other' })), { message: /context "other" \(current-context\) is not defined/ });
  t.throws(load(cfg({ token: 't' }, { 'current-context': undefined })), { message: /current-context/ });
  t.throws(load(cfg({ token: 't' }, { clusters: [{ name: 'k', cluster: { server: 'not a url' } }] })), { message: /clusters\.0\.cluster\.server/ });
  t.throws(load(cfg({ token: 't' }, { contexts: [{ name: 'c', context: { cluster: 'nowhere', user: 'u' } }] })), { message: /cluster "nowhere" of context "c" is not defined/ });
  t.throws(load('{ not: yaml: at all'), { message: /^kubeconfig test\.yaml: not YAML/ });
  t.throws(() => kubeconfigFileTarget(path.join(dir, 'absent')), { message: /absent: cannot read it/ });
  await t.throwsAsync(loadKubeTarget(undefined, {}), { message: /no --kubeconfig given and not in a pod/ });

  // what it does support: token file (relative to the kubeconfig), CA and client certificate from files or data
  await writeFile(path.join(dir, 'token'), 'from-file\n');
  await writeFile(path.join(dir, 'ca.pem'), 'CA PEM');
  await writeFile(path.join(dir, 'key.pem'), 'KEY PEM');
  const ok = kubeconfigTarget(cfg({ tokenFile: 'token', 'client-certificate-data': Buffer.from('CERT PEM').toString('base64'), 'client-key': 'key.pem' },
    { clusters: [{ name: 'k', cluster: { server: 'https://10.0.0.1:6443', 'certificate-authority': path.join(dir, 'ca.pem'), 'insecure-skip-tls-verify': false } }] }), 'test.yaml', dir);
  t.like(ok, { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', insecureSkipTLSVerify: false });
  t.is(ok.token(), 'from-file');
  await writeFile(path.join(dir, 'token'), 'rotated-token\n');
  t.is(ok.token(), 'rotated-token', 'a token file is read again when it changed');
  const plain = kubeconfigTarget(cfg({ token: 'fixed' }, { clusters: [{ name: 'k', cluster: { server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': true } }] }), 'test.yaml', dir);
  t.like(plain, { insecureSkipTLSVerify: true, ca: undefined });
  t.is(plain.token(), 'fixed');
});

test('informer: initial list, then events; a dropped watch resumes from where it was, without listing again', async (t) => {
  const { emu } = await kubeWithCrds(t);
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  await http.request('POST', RECORDS, { body: record('a'), schema: z.unknown() });
  const { informer, events } = watchRecords(http);
  t.teardown(() => informer.stop());
  await informer.start();
  t.deepEqual(events, [['add', 'a', 'p']]);
  await http.request('POST', RECORDS, { body: record('b'), schema: z.unknown() });
  t.true(await until(() => events.length === 2));
  emu.dropWatches();
  await http.request('PATCH', `${RECORDS}/a`, { body: { spec: { poolName: 'q' } }, contentType: 'application/merge-patch+json', schema: z.unknown() });
  await http.request('DELETE', `${RECORDS}/b`, { schema: z.unknown() });
  t.true(await until(() => events.length === 4), JSON.stringify(events));
  t.deepEqual(events.slice(1), [['add', 'b', 'p'], ['update', 'a', 'q'], ['delete', 'b', 'p']]);
  t.is(informer.lists, 1, 'resumed from its resourceVersion: the events in between came through the watch');
  t.true(informer.watches >= 2);
});

test('informer: a resourceVersion too old (410, as an ERROR event or as the answer) means a new list, whose difference is delivered', async (t) => {
  const { emu } = await kubeWithCrds(t);
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  for (const name of ['a', 'b']) await http.request('POST', RECORDS, { body: record(name), schema: z.unknown() });
  const { informer, events, errors } = watchRecords(http);
  t.teardown(() => informer.stop());
  await informer.start();
  // the watch is cut while the informer cannot reach the collection; meanwhile things change and the history is compacted
  emu.injectFault({ method: 'GET', path: RECORDS, code: 503, forMs: 1000 });
  emu.dropWatches();
  await http.request('DELETE', `${RECORDS}/a`, { schema: z.unknown() });
  await http.request('PATCH', `${RECORDS}/b`, { body: { spec: { poolName: 'q' } }, contentType: 'application/merge-patch+json', schema: z.unknown() });
  await http.request('POST', RECORDS, { body: record('c'), schema: z.unknown() });
  emu.store.compact(emu.store.currentRV());
  t.true(await until(() => informer.lists === 2, 20_000), `listed again: ${informer.lists}; errors: ${errors.join(' | ')}`);
  t.true(await until(() => events.length === 5));
  t.deepEqual(events.slice(2).sort(), [['add', 'c', 'p'], ['delete', 'a', undefined], ['update', 'b', 'q']]);
  t.true(errors.some((e) => /503/.test(e)), 'the outage was reported');

  // the same as the watch request's answer (HTTP 410 Gone): listed again, nothing new to deliver
  emu.injectFault({ method: 'GET', path: RECORDS, code: 410, reason: 'Expired', message: 'too old resource version' });
  emu.dropWatches();
  t.true(await until(() => informer.lists === 3, 20_000), `listed again: ${informer.lists}`);
  await http.request('POST', RECORDS, { body: record('d'), schema: z.unknown() });
  t.true(await until(() => events.length === 6));
  t.deepEqual(events.at(-1), ['add', 'd', 'p']);
});

test('informer: bookmarks move the resourceVersion on while nothing it watches changes, so a watch resumes after compaction', async (t) => {
  const { emu } = await kubeWithCrds(t, { bookmarkIntervalMs: 100 });
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  await http.request('POST', RECORDS, { body: record('n1'), schema: z.unknown() });
  const { informer, events } = watchRecords(http, { fieldSelector: 'metadata.name=n1' });
  t.teardown(() => informer.stop());
  await informer.start();
  const listedAt = Number(informer.resourceVersion);
  // other objects change: nothing for this informer, but the collection's resourceVersion moves on
  for (const name of ['x', 'y', 'z']) await http.request('POST', RECORDS, { body: record(name), schema: z.unknown() });
  const latest = emu.store.currentRV();
  t.true(latest > listedAt);
  t.true(await until(() => Number(informer.resourceVersion) >= latest), `bookmarked ${informer.resourceVersion}, latest ${latest}`);
  t.deepEqual(events, [['add', 'n1', 'p']], 'a bookmark is not an event');
  // history up to now is gone: resuming from the bookmark needs no list
  emu.store.compact(latest);
  emu.dropWatches();
  await http.request('PATCH', `${RECORDS}/n1`, { body: { spec: { poolName: 'q' } }, contentType: 'application/merge-patch+json', schema: z.unknown() });
  t.true(await until(() => events.length === 2));
  t.deepEqual(events[1], ['update', 'n1', 'q']);
  t.is(informer.lists, 1, 'resumed from the bookmark, not listed again');
});

test('informer: each watch asks the server to end it after timeoutSeconds, and then resumes at once', async (t) => {
  t.timeout(60_000);
  const { emu } = await kubeWithCrds(t);
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  const { informer, events, errors } = watchRecords(http, { watchTimeoutSeconds: () => 1 });
  t.teardown(() => informer.stop());
  await informer.start();
  t.true(await until(() => informer.watches >= 3, 20_000), `watches: ${informer.watches}`);
  await http.request('POST', RECORDS, { body: record('late'), schema: z.unknown() });
  t.true(await until(() => events.length === 1));
  t.deepEqual(events, [['add', 'late', 'p']]);
  t.is(informer.lists, 1);
  t.deepEqual(errors, [], 'a watch the server ended on time is not a failure');
});

test('informer: the first list failing does not fail start; it keeps trying and lists once the API server answers', async (t) => {
  const { emu } = await kubeWithCrds(t);
  const http = new KubeHttp(emulatorTarget(emu));
  t.teardown(() => http.close());
  await http.request('POST', RECORDS, { body: record('a'), schema: z.unknown() });
  emu.injectFault({ method: 'GET', path: RECORDS, code: 500, forMs: 800 });
  const { informer, events, errors } = watchRecords(http);
  t.teardown(() => informer.stop());
  await informer.start();
  t.deepEqual(events, []);
  t.true(errors.length >= 1);
  t.true(await until(() => events.length === 1, 20_000), errors.join(' | '));
  t.deepEqual(events, [['add', 'a', 'p']]);
  await informer.stop();
  const watches = informer.watches;
  await new Promise((r) => setTimeout(r, 300));
  t.is(informer.watches, watches, 'stopped for good');
});

test('informer: stop ends a request in flight at once, even to an API server that never answers', async (t) => {
  const silent = net.createServer(() => undefined); // accepts connections, never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => silent.close(() => r())));
  silent.on('connection', (s) => t.teardown(() => void s.destroy()));
  const { port } = silent.address() as net.AddressInfo;
  const http = new KubeHttp(emulatorTarget({ url: `http://127.0.0.1:${port}`, token: 't', caPem: undefined }));
  t.teardown(() => http.close());
  const { informer, events } = watchRecords(http);
  const started = informer.start();
  await new Promise((r) => setTimeout(r, 200));
  const stopAt = Date.now();
  await informer.stop();
  await started;
  t.true(Date.now() - stopAt < 2000, `stopped in ${Date.now() - stopAt} ms (the list's own timeout is 30 s)`);
  t.deepEqual(events, []);
});
