/** link-removals.ts's pure parts: the batch's steps and whose errors are whose (the root tests run them for real). */
import test from 'ava';
import { batchOutcome, linkDelStep, routeDelStep } from './kernel-errors.js';
import { observeCommands, run } from './exec.js';
import { errorsByRemoval, groupDelStep, groupSetStep, LinkRemovals, removalSteps, retireSteps } from './link-removals.js';
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

test('a retirement is the route, the veth down and into the retired group; a vanished veth is gone for each line', (t) => {
  t.deepEqual(lines(retireSteps(a, 536870913)), [
    'route del 10.1.0.10/32 dev podvnet0 metric 1010',
    'link set dev pvnaaaa down',
    'link set dev pvnaaaa group 536870913',
  ]);
  t.deepEqual(lines(retireSteps(c, 536870913)), ['link set dev pvncccc down', 'link set dev pvncccc group 536870913']);
  const stderr = ['Cannot find device "pvnaaaa"', 'Command failed -:2', 'Cannot find device "pvnaaaa"', 'Command failed -:3'].join('\n');
  t.deepEqual(batchOutcome(retireSteps(a, 7), stderr, 1).errors, []);
  t.deepEqual(removalSteps([], 7), [], 'no removals: no group deletion either');
});

test('a retirement batched with removals gets the errors of its own lines, not those of the removals\' group deletion', (t) => {
  const steps = [...retireSteps(a, 536870913), ...removalSteps([b, c], 5)];
  const errs = ['link set dev pvnaaaa down: RTNETLINK answers: Operation not permitted', 'link del group 5: RTNETLINK answers: Operation not permitted'];
  const split = errorsByRemoval([a, b, c], steps, errs);
  t.deepEqual(split[0], errs, 'errorsByRemoval gives the shared line to all; LinkRemovals drops it for retirements');
  t.deepEqual(split[1], [errs[1]]);
  t.deepEqual(split[2], [errs[1]]);
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
  const removals = new LinkRemovals(ns, 2 ** 29 + 1);
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

test('root: retirements and removals asked for together: one batch; retired veths stay, down and grouped; the others go', async (t) => {
  const ns = `pvlq${process.pid}${Math.random().toString(16).slice(2, 6)}`;
  await run(undefined, ['ip', 'netns', 'add', ns]);
  t.teardown(() => run(undefined, ['ip', 'netns', 'del', ns]).then(() => undefined, () => undefined));
  const setup = ['link add pvlqbr type bridge', 'link set pvlqbr up'];
  for (let i = 0; i < 6; i++) setup.push(`link add pvlq${i} type veth peer name pvlqp${i}`, `link set pvlq${i} master pvlqbr up`, `route add 10.9.0.${i}/32 dev pvlqbr metric ${100 + i}`);
  await run(ns, ['ip', '-batch', '-'], setup.join('\n') + '\n');
  const group = 2 ** 29 + 5;
  const removals = new LinkRemovals(ns, group);
  const step = (i: number) => ({ before: [routeDelStep(`10.9.0.${i}`, 'pvlqbr', 100 + i)], hostVeth: `pvlq${i}` });
  const results = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => (i % 2 ? removals.remove(step(i)) : removals.retire(step(i)))));
  t.deepEqual(results, [[], [], [], [], [], []]);
  const links = JSON.parse(await run(ns, ['ip', '-j', 'link', 'show', 'type', 'veth'])) as Array<{ ifname: string; group: string; flags: string[] }>;
  const ours = links.filter((l) => /^pvlq\d$/.test(l.ifname)).sort((x, y) => x.ifname.localeCompare(y.ifname));
  t.deepEqual(ours.map((l) => [l.ifname, l.group, l.flags.includes('UP')]), [['pvlq0', String(group), false], ['pvlq2', String(group), false], ['pvlq4', String(group), false]]);
  t.is((await run(ns, ['ip', 'route', 'show', 'dev', 'pvlqbr'])).trim(), '', 'every route gone');
});
