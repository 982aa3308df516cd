import test from 'ava';
import fc from 'fast-check';
import {
  batchOutcome, iptablesChainMissing, iptablesInterrupted, linkDelStep, neighDelStep, type RemovalStep, routeDelStep,
} from './kernel-errors.js';

const route = routeDelStep('10.0.1.10', 'podvnet0', 4242);
const link = linkDelStep('pvn0123456789a');
const neigh = neighDelStep('10.0.1.10', 'podvnet0');

test('each step is gone exactly on its own "already gone" messages', (t) => {
  const ok = (s: RemovalStep, msg: string) => batchOutcome([s], `${msg}\nCommand failed -:1\n`, 1).errors;
  t.deepEqual(ok(link, 'Cannot find device "pvn0123456789a"'), []);
  t.deepEqual(ok(link, 'RTNETLINK answers: No such device'), [], 'vanished between the lookup and the delete');
  t.deepEqual(ok(route, 'RTNETLINK answers: No such process'), []);
  t.deepEqual(ok(route, 'Error: FIB table does not exist.'), []);
  t.deepEqual(ok(route, 'Cannot find device "podvnet0"'), [], 'no bridge, no route on it');
  // Another device's name, another kind's message, or a real error are errors.
  t.deepEqual(ok(link, 'Cannot find device "podvnet0"'), ['link del dev pvn0123456789a: Cannot find device "podvnet0"']);
  t.deepEqual(ok(route, 'RTNETLINK answers: No such file or directory'), ['route del 10.0.1.10/32 dev podvnet0 metric 4242: RTNETLINK answers: No such file or directory']);
  t.deepEqual(ok(link, 'RTNETLINK answers: Operation not permitted'), ['link del dev pvn0123456789a: RTNETLINK answers: Operation not permitted']);
  // A neigh line ends the process without "Command failed".
  t.deepEqual(batchOutcome([neigh], 'RTNETLINK answers: No such file or directory\n', 2), { errors: [] });
  t.deepEqual(batchOutcome([neigh], 'RTNETLINK answers: Operation not permitted\n', 2).errors, ['neigh del 10.0.1.10 dev podvnet0: RTNETLINK answers: Operation not permitted']);
});

test('an aborting neigh line is attributed to the first neigh step after the last reported failure, and the rest is resumed', (t) => {
  const steps = [route, link, neigh, linkDelStep('pvnffffffffff0')];
  const stderr = 'RTNETLINK answers: No such process\nCommand failed -:1\nRTNETLINK answers: No such file or directory\n';
  t.deepEqual(batchOutcome(steps, stderr, 2), { errors: [], resumeAt: 3 });
  // A trailing message with no neigh step to own it is an error.
  t.deepEqual(batchOutcome([route, link], 'something odd\n', 1).errors, ['something odd']);
  // A non-zero exit with nothing said is an error too; "Dump was interrupted" is only a warning.
  t.deepEqual(batchOutcome([link], '', 1).errors, ['exit code 1 without a message']);
  t.deepEqual(batchOutcome([link], 'Dump was interrupted and may be inconsistent.\n', 0).errors, []);
});

/**
 * A model of the kernel and of `ip -force -batch` (6.1): each step's object is present (removed now),
 * absent (its "gone" message) or forbidden (a real error); a failing `neigh` line ends the process.
 */
type State = 'present' | 'absent' | 'forbidden';
const goneText = (s: RemovalStep, pick: number): string => {
  const [kind, , , dev] = s.line.split(' ');
  const options: Record<string, string[]> = {
    link: [`Cannot find device "${dev}"`, 'RTNETLINK answers: No such device'],
    route: ['RTNETLINK answers: No such process', 'Error: FIB table does not exist.', 'Cannot find device "podvnet0"'],
    neigh: ['RTNETLINK answers: No such file or directory', 'Cannot find device "podvnet0"'],
  };
  const o = options[kind!]!;
  return o[pick % o.length]!;
};

function runModel(steps: RemovalStep[], state: State[], offset: number, pick: number): { stderr: string; code: number } {
  let stderr = '';
  let code = 0;
  for (const [i, s] of steps.entries()) {
    const k = offset + i;
    if (state[k] === 'present') { state[k] = 'absent'; continue; }
    stderr += `${state[k] === 'absent' ? goneText(s, pick + k) : 'RTNETLINK answers: Permission denied'}\n`;
    if (s.line.startsWith('neigh ')) return { stderr, code: 2 };
    stderr += `Command failed -:${i + 1}\n`;
    code = 1;
  }
  return { stderr, code };
}

test('property: run to completion as ipRemove does, every real failure is reported once and nothing else', (t) => {
  const stepArb = fc.oneof(
    fc.constant(route), fc.constant(neigh), fc.constant(neighDelStep('10.0.1.11', 'podvnet0')),
    fc.integer({ min: 0, max: 0xffff }).map((n) => linkDelStep(`pvn${n.toString(16).padStart(11, '0')}`)),
  );
  const stateArb = fc.constantFrom<State>('present', 'absent', 'forbidden');
  fc.assert(fc.property(fc.array(fc.tuple(stepArb, stateArb), { minLength: 1, maxLength: 8 }), fc.nat(7), (pairs, pick) => {
    const steps = pairs.map((p) => p[0]);
    const state = pairs.map((p) => p[1]);
    const initial = [...state];
    const errors: string[] = [];
    let offset = 0;
    for (let rounds = 0; offset < steps.length; rounds++) {
      if (rounds > steps.length) return t.fail('did not terminate');
      const rest = steps.slice(offset);
      const r = runModel(rest, state, offset, pick);
      const out = batchOutcome(rest, r.stderr, r.code);
      errors.push(...out.errors);
      if (out.resumeAt === undefined) break;
      offset += out.resumeAt;
    }
    // Expected: every step up to the first forbidden neigh line (which ends the process for good) ran;
    // the forbidden ones among them are the errors, each once.
    const stop = initial.findIndex((st, i) => st === 'forbidden' && steps[i]!.line.startsWith('neigh '));
    const ran = stop < 0 ? steps.length : stop + 1;
    t.is(errors.length, initial.slice(0, ran).filter((st) => st === 'forbidden').length, JSON.stringify({ pairs: pairs.map((p) => [p[0].line, p[1]]), errors }));
    t.true(errors.every((e) => /Permission denied/.test(e)));
    for (let i = 0; i < ran; i++) if (initial[i] === 'present') t.is(state[i], 'absent');
  }));
});

test('iptables: a missing chain (nft and legacy wording) and an interrupted listing are recognised, other errors are not', (t) => {
  t.true(iptablesChainMissing("iptables v1.8.9 (nf_tables): chain `PODVNET-SRC' in table `raw' is incompatible, use 'nft' tool.\n"));
  t.true(iptablesChainMissing('iptables: No chain/target/match by that name.\n'));
  t.true(iptablesChainMissing("iptables v1.8.9 (legacy): can't initialize iptables table `raw': Table does not exist (do you need to insmod?)\n"));
  t.false(iptablesChainMissing('Another app is currently holding the xtables lock. Stopped waiting after 5s.\n'));
  t.false(iptablesChainMissing('iptables v1.8.9 (legacy): can\'t initialize iptables table `raw\': Permission denied (you must be root)\n'));
  t.true(iptablesInterrupted('iptables v1.8.9 (nf_tables): Interrupted system call\n'));
  t.false(iptablesInterrupted('Another app is currently holding the xtables lock. Stopped waiting after 5s.\n'));
});
