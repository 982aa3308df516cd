/**
 * Traffic probes for datapath tests, the bench and the sandbox: ping and "which source address does the
 * other side see", between namespaces (busybox ping, socat). Never touches anything outside the given
 * namespaces.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { netnsPath, runRaw } from '../exec.js';

/** One ICMP echo from `ns` to `ip`; true if answered within `timeoutSec`. */
export async function ping(ns: string, ip: string, timeoutSec = 1): Promise<boolean> {
  const r = await runRaw(ns, ['busybox', 'ping', '-c', '1', '-W', String(timeoutSec), ip]);
  return r.code === 0;
}

/**
 * Like ping, but retries until about `timeoutMs` has passed: ARP across the fabric and the first packet
 * can lose a race with set-up elsewhere, and on a loaded machine a reply can take longer than one
 * ping's wait. False only if no echo was answered by the deadline. For "is NOT reachable" use `ping`.
 */
export async function pingEventually(ns: string, ip: string, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(ns, ip, 2)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export interface PeerServer { port: number; stop(): void }

/**
 * A TCP server in `ns` that answers each connection with the peer address it sees, i.e. the source IP
 * after any NAT on the way.
 */
export function startPeerServer(ns: string, port: number, bind = '0.0.0.0'): PeerServer {
  const child: ChildProcess = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', 'socat', '-T', '5',
    `TCP-LISTEN:${port},bind=${bind},reuseaddr,fork`, 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
  child.on('error', () => undefined);
  return { port, stop: () => { child.kill('SIGTERM'); } };
}

/**
 * Connects from `ns` to ip:port and returns what the server reported as our address. Retries until about
 * `timeoutMs` has passed: the server may still be starting (refused), and on a loaded machine the first
 * SYN can be lost to set-up elsewhere (ARP on three hops, a route being installed), which shows as a
 * timeout. If no attempt succeeds, returns a string naming the last failure, so an assertion on the
 * address fails with the reason rather than with `undefined`.
 */
export async function peerAddressSeen(ns: string, ip: string, port: number, timeoutMs = 8000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runRaw(ns, ['socat', '-t', '2', '-T', '2', '-', `TCP:${ip}:${port},connect-timeout=2`]);
    const seen = r.stdout.trim();
    if (r.code === 0 && seen) return seen;
    if (Date.now() > deadline) {
      const why = r.stderr.trim().split('\n').pop() || `socat exited ${r.code} without output`;
      return `no answer from ${ip}:${port} within ${timeoutMs} ms (last: ${why})`;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}
