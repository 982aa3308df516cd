import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';

/**
 * The handle of a component the sandbox runs as a process of its own (the controller, each node agent):
 * crash it (SIGKILL) and start it again with the same arguments, as a DaemonSet or Deployment would.
 */
export class SandboxProcess {
  private current: ChildProcess;
  private expectingExit = false;
  /** How many times it was started (1 after the sandbox starts). */
  starts = 0;

  constructor(readonly name: string, private readonly spawnIt: () => ChildProcess, private readonly logFile: string, private readonly quiet: () => boolean) {
    this.current = this.launch();
  }

  get child(): ChildProcess { return this.current; }
  get pid(): number | undefined { return this.current.pid; }
  get running(): boolean { return this.current.exitCode === null && this.current.signalCode === null; }

  /** Sends `signal` (SIGKILL: a crash) and resolves once the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    const exited = new Promise<void>((resolve) => this.current.once('exit', () => resolve()));
    this.current.kill(signal);
    await exited;
  }

  /** Starts it again with the same arguments (it must have exited). */
  start(): void {
    if (this.running) throw new Error(`sandbox: ${this.name} is still running (pid ${this.pid})`);
    this.current = this.launch();
  }

  /** SIGTERM, then SIGKILL after 10 s: a graceful stop. */
  stop(): Promise<void> {
    this.expectingExit = true;
    return stopChild(this.current);
  }

  private launch(): ChildProcess {
    const child = this.spawnIt();
    this.starts++;
    this.expectingExit = false;
    child.on('exit', (code, signal) => {
      if (!this.quiet() && !this.expectingExit) process.stderr.write(`sandbox: ${this.name} exited (${signal ?? code}); see ${this.logFile}\n`);
    });
    return child;
  }
}

/**
 * Runs `command args` in `cwd` as a SandboxProcess, its output appended to logDir/<name>.log (one stream
 * for every start, so a restarted process's log follows its predecessor's). `onSpawn` sees each child.
 */
export function startLoggedProcess(o: {
  name: string; command: string; args: string[]; cwd: string; logDir: string;
  quiet: () => boolean; onSpawn?: (child: ChildProcess) => void;
}): SandboxProcess {
  const logFile = path.join(o.logDir, `${o.name}.log`);
  const log = createWriteStream(logFile);
  return new SandboxProcess(o.name, () => {
    const child = spawn(o.command, o.args, {
      cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PODVNET_LOG_LEVEL: process.env.PODVNET_LOG_LEVEL ?? 'info' },
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    o.onSpawn?.(child);
    return child;
  }, logFile, o.quiet);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => { clearTimeout(hard); resolve(); });
    child.kill('SIGTERM');
  });
}
