/**
 * Runs commands through a few long-lived `sh` processes instead of spawning each one from Node.
 *
 * Why: forking the agent (a Node process with a large heap) costs several milliseconds per command,
 * more than the kernel work of a whole pod ADD; a small shell forks in a fraction of that. ADD and DEL
 * are two commands each, so this roughly halves their latency (hack/bench/datapath-bench.ts).
 *
 * Protocol, one job at a time per shell: the command line (every argument single-quoted), its stdin as
 * a quoted here-document, then an end marker with the exit code on stdout and one on stderr. Everything
 * a stream carries between the previous marker and this job's marker is this job's output. Markers carry
 * a random id, so no output can fake one. The pool grows while all shells are busy (up to `max`), keeps
 * a couple idle, and never keeps the Node process alive on its own when nothing is pending.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ShellResult { stdout: string; stderr: string; code: number }

interface Job {
  id: string;
  script: string;
  resolve: (r: ShellResult) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

class Shell {
  readonly child: ChildProcessWithoutNullStreams;
  readonly jobs: Job[] = [];
  private out = '';
  private err = '';
  dead = false;
  idleTimer?: NodeJS.Timeout;

  constructor(private readonly onExit: (s: Shell) => void, private readonly timeoutMs: number) {
    // Its own process group, so a timed-out job is killed together with whatever it started.
    this.child = spawn('sh', [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => { this.out += d; this.drain(); });
    this.child.stderr.on('data', (d: string) => { this.err += d; this.drain(); });
    this.child.stdin.on('error', () => undefined);
    this.child.on('error', (e) => this.fail(e));
    this.child.on('exit', () => this.fail(new Error('command shell exited')));
    this.setRef(false);
  }

  submit(job: Job): void {
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = undefined; }
    this.jobs.push(job);
    this.setRef(true);
    job.timer = setTimeout(() => this.kill(new Error(`command timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    this.child.stdin.write(job.script);
  }

  private drain(): void {
    for (;;) {
      const job = this.jobs[0];
      if (!job) return;
      const outMark = `\n__PVE_${job.id}_`;
      const errMark = `\n__PVE_${job.id}\n`;
      const oi = this.out.indexOf(outMark);
      const ei = this.err.indexOf(errMark);
      if (oi < 0 || ei < 0) return;
      const lineEnd = this.out.indexOf('\n', oi + outMark.length);
      if (lineEnd < 0) return;
      const code = Number(this.out.slice(oi + outMark.length, lineEnd));
      const result = { stdout: this.out.slice(0, oi), stderr: this.err.slice(0, ei), code };
      this.out = this.out.slice(lineEnd + 1);
      this.err = this.err.slice(ei + errMark.length);
      this.jobs.shift();
      clearTimeout(job.timer);
      if (!this.jobs.length) this.setRef(false);
      job.resolve(result);
    }
  }

  private setRef(on: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as Array<{ ref(): unknown; unref(): unknown }>) {
      if (on) h.ref(); else h.unref();
    }
  }

  kill(reason: Error): void {
    if (this.child.pid && !this.dead) {
      try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    this.fail(reason);
  }

  close(): void {
    this.child.stdin.end();
  }

  private fail(e: Error): void {
    if (!this.dead) { this.dead = true; this.onExit(this); }
    for (const j of this.jobs.splice(0)) { clearTimeout(j.timer); j.reject(e); }
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.setRef(false);
  }
}

export class ShellPool {
  private readonly shells: Shell[] = [];

  constructor(private readonly opts: { max: number; keepIdle: number; idleMs: number; timeoutMs: number }) {}

  run(argv: string[], input?: string): Promise<ShellResult> {
    const id = randomBytes(8).toString('hex');
    const stdin = input === undefined || input === ''
      ? ' </dev/null'
      : ` <<'__PVI_${id}'\n${input}${input.endsWith('\n') ? '' : '\n'}__PVI_${id}`;
    const script = `${argv.map(quote).join(' ')}${stdin}\nprintf '\\n__PVE_${id}_%d\\n' "$?"; printf '\\n__PVE_${id}\\n' >&2\n`;
    return new Promise<ShellResult>((resolve, reject) => {
      const job: Job = {
        id, script, reject,
        resolve: (r) => { resolve(r); this.retire(); },
      };
      this.pick().submit(job);
    });
  }

  private pick(): Shell {
    let best: Shell | undefined;
    for (const s of this.shells) if (!best || s.jobs.length < best.jobs.length) best = s;
    if (best && (best.jobs.length === 0 || this.shells.length >= this.opts.max)) return best;
    const s = new Shell((dead) => {
      const i = this.shells.indexOf(dead);
      if (i >= 0) this.shells.splice(i, 1);
    }, this.opts.timeoutMs);
    this.shells.push(s);
    return s;
  }

  /** Idle shells beyond keepIdle exit after idleMs. */
  private retire(): void {
    const idle = this.shells.filter((s) => s.jobs.length === 0);
    for (const s of idle.slice(this.opts.keepIdle)) {
      if (s.idleTimer) continue;
      s.idleTimer = setTimeout(() => {
        if (s.jobs.length === 0) { s.close(); const i = this.shells.indexOf(s); if (i >= 0) this.shells.splice(i, 1); }
      }, this.opts.idleMs);
      s.idleTimer.unref();
    }
  }

  /** Stops every shell (tests). */
  close(): void {
    for (const s of this.shells.splice(0)) s.close();
  }

  get size(): number {
    return this.shells.length;
  }
}
