import { execFile, spawn } from 'node:child_process';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * Listening sockets inside another network namespace, served by this process: a short-lived child
 * entered into the namespace binds them and passes them back over IPC (a socket keeps the namespace it
 * was made in). So the emulator can answer at 169.254.169.254 inside one simulated VM and nowhere else,
 * with no forwarder left running.
 */

const execFileP = promisify(execFile);
const CHILD = fileURLToPath(new URL('./netns-listen-child.mjs', import.meta.url));

export interface Bind { host: string; port: number }

/** Runs `ip ...` inside the namespace. */
export async function ipInNetns(netnsPath: string, args: string[]): Promise<void> {
  await execFileP('nsenter', [`--net=${netnsPath}`, '--', 'ip', ...args]);
}

/** One listening net.Server per bind, in the order given; close them to stop listening. */
export function listenInNetns(netnsPath: string, binds: readonly Bind[], timeoutMs = 15_000): Promise<Server[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, CHILD, JSON.stringify(binds)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const servers: Server[] = [];
    const fail = (err: Error) => {
      clearTimeout(timer);
      for (const s of servers) s.close();
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`binding ${JSON.stringify(binds)} in ${netnsPath} took more than ${timeoutMs} ms`)), timeoutMs);
    child.on('message', (msg: { index?: number; done?: boolean; error?: string }, handle?: Server) => {
      if (msg.error) fail(new Error(`cannot listen in ${netnsPath}: ${msg.error}`));
      else if (msg.index !== undefined && handle) servers[msg.index] = handle;
      else if (msg.done) {
        clearTimeout(timer);
        resolve(servers);
      }
    });
    child.on('error', fail);
    child.on('exit', (code) => {
      if (servers.length < binds.length) fail(new Error(`the listener in ${netnsPath} exited (code ${code}) before binding ${JSON.stringify(binds)}`));
    });
  });
}
