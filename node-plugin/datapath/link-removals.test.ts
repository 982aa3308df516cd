/** link-removals.ts's pure parts: the batch's steps and whose errors are whose (the root tests run them for real). */
import test from 'ava';
import { batchOutcome, linkDelStep, routeDelStep } from './kernel-errors.js';
import { observeCommands, run } from './exec.js';
import { errorsByRemoval, groupDelStep, groupSetStep, LinkRemovals, removalSteps } from './link-removals.js';
import { detachRemoval, detachSteps } from './plan.js';
import type { NodeNetwork } from './types.js';

const net: NodeNetwork = {
  bridgeName: 'podvnet0', hostInterface: 'eth0', nicMAC: '00:0d:3a:00:00:01', primaryIP: '10.1.0.4', podSubnet: '10.1.0.0/24',
  gatewayIP: '10.1.0.1', vnetPrefixes: ['10.0.0.0/8'], snat: { enabled: true, excludeCIDRs: [] }, mtu: 1500,
};
const a = { before: [routeDelStep('10.1.0.10', 'podvnet0', 1010)], hostVeth: 'pvnaaaa' };
const b = { before: [routeDelStep('10.1.0.11', 'podvnet0', 1011)], hostVeth: 'pvnbbbb' };
const c = { before: [], hostVeth: 'pvncccc' };
const lines = (steps: { line: string }[]) => steps.map((s) => s.line);

test('a lone removal is exactly the pod\'s detachSteps: its route, then `link del dev`', (t) => {
  for (const ip of ['10.1.0.10', undefined]) {
    const pod = { containerId: 'c1', ifName: 'eth0' };
    t.deepEqual(lines(removalSteps([detachRemoval(net, pod, ip)], 7)), lines(detachSteps(net, pod, ip)));
  }
});

test('several removals: every route first, then each veth into the group, then the group deleted once', (t) => {
  t.deepEqual(lines(removalSteps([a, b, c], 1234567)), [
    'route del 10.1.0.10/32 dev podvnet0 metric 1010',
    'route del 10.1.0.11/32 dev podvnet0 metric 1011',
    'link set dev pvnaaaa group 1234567',
    'link set dev pvnbbbb group 1234567',
    'link set dev pvncccc group 1234567',
    'link del group 1234567',
  ]);
});

test('a veth already gone is gone for its group line; an empty group is gone for the deletion; nothing else is', (t) => {
  const steps = removalSteps([a, b], 99);
  const stderr = ['Cannot find device "pvnaaaa"', 'Command failed -:3', 'RTNETLINK answers: No such device', 'Command failed -:5'].join('\n');
  t.deepEqual(batchOutcome(steps, stderr, 1).errors, []);
  t.true(groupSetStep('pvnaaaa', 1).gone.some((re) => re.test('Cannot find device "pvnaaaa"')));
  t.false(groupSetStep('pvnaaaa', 1).gone.some((re) => re.test('Cannot find device "pvnbbbb"')));
  t.false(groupDelStep(1).gone.some((re) => re.test('RTNETLINK answers: Operation not permitted')));
  t.deepEqual(linkDelStep('x').gone.map(String), groupSetStep('x', 1).gone.map(String));
});

test('each removal gets the errors of its own lines, and the group deletion\'s and unattributable ones go to all', (t) => {
  const steps = removalSteps([a, b, c], 5);
  const errs = [
    'route del 10.1.0.10/32 dev podvnet0 metric 1010: RTNETLINK answers: Operation not permitted',
    'link set dev pvnbbbb group 5: RTNETLINK answers: Operation not permitted',
    'link del group 5: RTNETLINK answers: Operation not permitted',
    'exit code 2 without a message',
  ];
  t.deepEqual(errorsByRemoval([a, b, c], steps, errs), [
    [errs[0], errs[2], errs[3]],
    [errs[1], errs[2], errs[3]],
    [errs[2], errs[3]],
  ]);
});

test('the same pod twice in one batch (concurrent DELs of it): both get its errors', (t) => {
  const steps = removalSteps([a, a], 5);
  const errs = ['link set dev pvnaaaa group 5: RTNETLINK answers: Operation not permitted'];
  t.deepEqual(errorsByRemoval([a, a], steps, errs), [errs, errs]);
  t.deepEqual(errorsByRemoval([a], removalSteps([a], 5), ['link del dev pvnaaaa: boom']), [['link del dev pvnaaaa: boom']]);
});

test('root: removals asked for together share one group deletion; every veth and route goes, one already gone is fine', async (t) => {
  const ns = `pvlr${process.pid}${Math.random().toString(16).slice(2, 6)}`;
  await run(undefined, ['ip', 'netns', 'add', ns]);
  t.teardown(() => run(undefined, ['ip', 'netns', 'del', ns]).then(() => undefined, () => undefined));
  const n = 12;
  const setup = ['link add pvlrbr type bridge', 'link set pvlrbr up'];
  for (let i = 0; i < n; i++) setup.push(`link add pvlr${i} type veth peer name pvlrp${i}`, `link set pvlr${i} master pvlrbr up`, `route add 10.9.0.${i}/32 dev pvlrbr metric ${100 + i}`);
  await run(ns, ['ip', '-batch', '-'], setup.join('\n') + '\n');
  await run(ns, ['ip', 'link', 'del', 'pvlr3']); // gone before its DEL
  const batches: string[][] = [];
  observeCommands((argv) => { if (argv.includes('-batch')) batches.push([...argv]); });
  t.teardown(() => observeCommands(undefined));
  const removals = new LinkRemovals(ns);
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    removals.remove({ before: [routeDelStep(`10.9.0.${i}`, 'pvlrbr', 100 + i)], hostVeth: `pvlr${i}` })));
  observeCommands(undefined);
  t.deepEqual(results, Array.from({ length: n }, () => []));
  t.is(batches.length, 2, 'the first removal alone, the other eleven in one batch');
  const left = await run(ns, ['ip', '-o', 'link', 'show']);
  t.notRegex(left, /pvlr\d/);
  t.is((await run(ns, ['ip', 'route', 'show', 'dev', 'pvlrbr'])).trim(), '');
  t.regex(left, /pvlrbr/, 'nothing else in the namespace is touched');
});
