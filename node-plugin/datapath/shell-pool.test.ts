import test from 'ava';
import { ShellPool } from './shell-pool.js';

const pool = () => new ShellPool({ max: 4, keepIdle: 1, idleMs: 200, timeoutMs: 2_000 });

test('stdout, stderr and exit code are kept apart, with or without a trailing newline', async (t) => {
  const p = pool();
  t.teardown(() => p.close());
  t.deepEqual(await p.run(['sh', '-c', 'printf out; printf err >&2; exit 3']), { stdout: 'out', stderr: 'err', code: 3 });
  t.deepEqual(await p.run(['sh', '-c', 'echo a; echo b; echo c >&2']), { stdout: 'a\nb\n', stderr: 'c\n', code: 0 });
  t.deepEqual(await p.run(['true']), { stdout: '', stderr: '', code: 0 });
  const missing = await p.run(['/nonexistent/podvnet-cmd']);
  t.is(missing.code, 127);
  t.regex(missing.stderr, /not found/);
});

test('arguments and stdin pass through untouched: quotes, $, backslashes, here-doc look-alikes', async (t) => {
  const p = pool();
  t.teardown(() => p.close());
  const nasty = `it's "$HOME" \`id\` \\n $(echo x) ; rm -rf / #`;
  t.is((await p.run(['printf', '%s', nasty])).stdout, nasty);
  const input = `line 1\n__PVI_fake\n__PVE_fake_0\n'quoted' $VAR\nno newline at end`;
  t.is((await p.run(['cat'], input)).stdout, `${input}\n`, 'input gets exactly one newline added');
  t.is((await p.run(['cat'], 'x\n')).stdout, 'x\n');
  t.is((await p.run(['cat'])).stdout, '', 'no input: stdin is /dev/null');
});

test('concurrent jobs each get their own output; the pool grows to its maximum and no further', async (t) => {
  const p = pool();
  t.teardown(() => p.close());
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => p.run(['sh', '-c', `sleep 0.0$((${i} % 3)); echo ${i}; echo e${i} >&2`])));
  results.forEach((r, i) => { t.is(r.stdout, `${i}\n`); t.is(r.stderr, `e${i}\n`); });
  t.true(p.size <= 4);
});

test('a job that hangs is killed after the timeout; the pool keeps working', async (t) => {
  const p = new ShellPool({ max: 2, keepIdle: 1, idleMs: 200, timeoutMs: 300 });
  t.teardown(() => p.close());
  await t.throwsAsync(p.run(['sleep', '30']), { message: /timed out after 300 ms/ });
  t.is((await p.run(['echo', 'ok'])).stdout, 'ok\n');
});

test('large outputs arrive whole', async (t) => {
  const p = pool();
  t.teardown(() => p.close());
  const r = await p.run(['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done']);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 20000);
  t.is(lines[19999], 'line 19999');
});
