/** host-batches.ts: whose line a failing batch stopped at (pure), and coalesced batches against a real namespace. */
import test from 'ava';
import { observeCommands, run } from './exec.js';
import { HostBatches, ownerOfLine } from './host-batches.js';
import { DatapathError } from './types.js';

test('ownerOfLine: the pod whose lines hold the failing line number', (t) => {
  t.is(ownerOfLine([5, 5, 3], 1), 0);
  t.is(ownerOfLine([5, 5, 3], 5), 0);
  t.is(ownerOfLine([5, 5, 3], 6), 1);
  t.is(ownerOfLine([5, 5, 3], 13), 2);
  t.is(ownerOfLine([5, 5, 3], 14), undefined);
  t.is(ownerOfLine([5, 5, 3], 0), undefined);
});

async function namespace(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const ns = `pvhb${process.pid}${Math.random().toString(16).slice(2, 6)}`;
  await run(undefined, ['ip', 'netns', 'add', ns]);
  t.teardown(() => run(undefined, ['ip', 'netns', 'del', ns]).then(() => undefined, () => undefined));
  return ns;
}
const links = async (ns: string) => (await run(ns, ['ip', '-o', 'link', 'show'])).split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter(Boolean);
const lines = (i: number) => [`link add pvhb${i} type bridge`, `link set dev pvhb${i} up`];

test.serial('root: requests that come together share one ip process; a failing one gets its own error, the ones after it still run', async (t) => {
  const ns = await namespace(t);
  await run(ns, ['ip', 'link', 'add', 'pvhb5', 'type', 'bridge']); // request 5's first line will find it: "File exists"
  let processes = 0;
  observeCommands((argv) => { if (argv.includes('-batch')) processes++; });
  t.teardown(() => observeCommands(undefined));
  const hb = new HostBatches(ns);
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => hb.run(lines(i))));
  observeCommands(undefined);
  t.deepEqual(results.map((r) => r.status), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => (i === 5 ? 'rejected' : 'fulfilled')));
  const err = (results[5] as PromiseRejectedResult).reason as DatapathError;
  t.true(err instanceof DatapathError);
  t.regex(err.message, /^ip -batch - \(in netns pvhb\w+\): RTNETLINK answers: File exists\nCommand failed -:\d+$/);
  t.true(processes <= 3, `10 requests in ${processes} ip processes (the first alone, the rest together, the ones after the failure again)`);
  t.deepEqual((await links(ns)).filter((l) => l!.startsWith('pvhb')).sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `pvhb${i}`).sort());
  const up = await run(ns, ['ip', '-o', 'link', 'show', 'up']);
  for (const i of [0, 1, 2, 3, 4, 6, 7, 8, 9]) t.regex(up, new RegExp(`: pvhb${i}:`), `pvhb${i} ran its second line`);
  t.notRegex(up, /: pvhb5:/, 'the failing request stopped at its first line');
});

test.serial('root: a failure ip does not number (it exits) runs every request of the batch again alone', async (t) => {
  const ns = await namespace(t);
  const hb = new HostBatches(ns);
  const bad = ['link add pvhbx type veth peer name pvhby netns /nonexistent/netns'];
  const first = hb.run(lines(0)); // runs alone; the rest queue behind it and go together
  const rest = [hb.run(lines(1)), hb.run(bad), hb.run(lines(2))];
  const results = await Promise.allSettled([first, ...rest]);
  t.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  // Request 1 had run before the unnumbered failure: alone again it finds its own link (attachPod's retry path).
  t.regex(((results[1] as PromiseRejectedResult).reason as Error).message, /File exists/);
  t.regex(((results[2] as PromiseRejectedResult).reason as Error).message, /netns/);
  t.deepEqual((await links(ns)).filter((l) => l!.startsWith('pvhb')).sort(), ['pvhb0', 'pvhb1', 'pvhb2']);
});
