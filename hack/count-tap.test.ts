import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * hack/count-tap.sh, the last line of hack/test.sh: "N passed, M failed, K skipped" from AVA's TAP, and
 * under CI=true a skip is a failure unless its title matches a reason registered as one CI cannot have.
 * The TAP lines are AVA's own format (`ok 1 - title # SKIP`, `not ok 3 - title`).
 */

const SCRIPT = fileURLToPath(new URL('./count-tap.sh', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'podvnet-count-tap-'));
const TAP = [
  'TAP version 13',
  'ok 1 - gadget.test › works (skipped: no /dev/gadget here) # SKIP',
  'ok 2 - a.test › a',
  'ok 3 - b.test › b',
  'not ok 4 - c.test › c',
  '  ---',
  '    message: Test failed via `t.fail()`',
  '  ...',
  'ok 5 - kubectl.test › kubectl apply # SKIP',
  '1..5',
  '# tests 5',
].join('\n');

function count(tap: string, opts: { status?: number; extra?: number; ci?: boolean; allowed?: string } = {}) {
  const tapFile = path.join(dir, `tap-${Math.random().toString(36).slice(2)}`);
  writeFileSync(tapFile, tap);
  const env: NodeJS.ProcessEnv = { ...process.env, CI: opts.ci ? 'true' : '' };
  if (opts.allowed !== undefined) {
    env.ALLOWED_SKIPS = `${tapFile}.allowed`;
    writeFileSync(env.ALLOWED_SKIPS, opts.allowed);
  }
  const r = spawnSync('bash', [SCRIPT, tapFile, String(opts.status ?? 0), String(opts.extra ?? 0)], { env, encoding: 'utf8' });
  return { code: r.status, last: r.stdout.trim().split('\n').at(-1), stderr: r.stderr };
}

test('outside CI: passes, failures and skips are counted apart; a skip fails nothing', (t) => {
  t.deepEqual(count(TAP, { status: 1 }).last, '2 passed, 1 failed, 2 skipped');
  const clean = count(TAP.replace(/^not ok 4.*$/m, 'ok 4 - c.test › c'));
  t.is(clean.last, '3 passed, 0 failed, 2 skipped');
  t.is(clean.code, 0);
});

test('AVA failing with no failed test (a crash, a timeout) is one failure; typecheck/build failures add up', (t) => {
  const noFail = TAP.replace(/^not ok 4.*$/m, 'ok 4 - c.test › c');
  t.like(count(noFail, { status: 1 }), { last: '3 passed, 1 failed, 2 skipped', code: 1 });
  t.like(count(noFail, { extra: 2 }), { last: '3 passed, 2 failed, 2 skipped', code: 1 });
});

test('CI=true: every skip whose reason is not registered is a failure, named on stderr', (t) => {
  const noFail = TAP.replace(/^not ok 4.*$/m, 'ok 4 - c.test › c');
  const r = count(noFail, { ci: true, allowed: '# nothing registered\n' });
  t.like(r, { last: '3 passed, 2 failed, 2 skipped', code: 1 });
  t.regex(r.stderr, /gadget\.test › works \(skipped: no \/dev\/gadget here\)/);
  t.regex(r.stderr, /kubectl\.test › kubectl apply/);
});

test('CI=true: a skip whose title names a registered reason is allowed; others still fail', (t) => {
  const noFail = TAP.replace(/^not ok 4.*$/m, 'ok 4 - c.test › c');
  const allowed = '# comment\n\\(skipped: no /dev/gadget here\\) -- CI runners have no gadget\n';
  const r = count(noFail, { ci: true, allowed });
  t.like(r, { last: '3 passed, 1 failed, 2 skipped', code: 1 });
  t.notRegex(r.stderr, /gadget/);
  const onlyGadget = noFail.replace(/^ok 5 .*$/m, 'ok 5 - d.test › d');
  t.like(count(onlyGadget, { ci: true, allowed }), { last: '4 passed, 0 failed, 1 skipped', code: 0 });
});

test('CI=true with no skips and the real registry: nothing is added', (t) => {
  const none = TAP.replace(/^not ok 4.*$/m, 'ok 4 - c.test › c').replace(/ # SKIP$/gm, '');
  t.like(count(none, { ci: true }), { last: '5 passed, 0 failed, 0 skipped', code: 0 });
});
