/**
 * Whether a pod can send with a source address that is not its own, observed at the receiver (a UDP
 * sink printing what it got): a spoofed packet's reply goes to the owner of the spoofed IP, so a ping
 * or TCP connect from the spoofer would fail either way. Used by the anti-spoofing tests.
 */
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { netnsPath, runRaw } from '../exec.js';

export interface Sink { got(): string; stop(): void }

/** A UDP receiver in `ns` on `port`: everything it receives, concatenated. */
export function udpSink(t: ExecutionContext, ns: string, port: number): Sink {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', 'socat', '-u', `UDP-RECV:${port},reuseaddr`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  child.on('error', () => undefined);
  const s = { got: () => out, stop: () => { child.kill('SIGTERM'); } };
  t.teardown(() => s.stop());
  return s;
}

/** One UDP datagram from `ns`, source address `from`. */
export async function sendUdp(ns: string, from: string, to: string, port: number, payload: string): Promise<void> {
  await runRaw(ns, ['socat', '-u', 'STDIN', `UDP-SENDTO:${to}:${port},bind=${from}`], payload);
}

/**
 * Sends `spoofed` tokens from the spoofed source, then own-IP tokens until the sink has one (so the
 * path is up and anything sent before had time to arrive). Returns whether a spoofed token arrived.
 */
export async function spoofArrives(ns: string, spoofFrom: string, ownIP: string, sink: Sink, to: string, port: number, tag: string): Promise<{ spoofed: boolean; own: boolean }> {
  for (let i = 0; i < 3; i++) await sendUdp(ns, spoofFrom, to, port, `SPOOF-${tag}\n`);
  let own = false;
  for (const deadline = Date.now() + 8000; !own && Date.now() < deadline;) {
    await sendUdp(ns, ownIP, to, port, `OWN-${tag}\n`);
    await new Promise((r) => setTimeout(r, 150));
    own = sink.got().includes(`OWN-${tag}`);
  }
  // One more round of spoofed packets after the path is proven up.
  for (let i = 0; i < 3; i++) await sendUdp(ns, spoofFrom, to, port, `SPOOF-${tag}\n`);
  await sendUdp(ns, ownIP, to, port, `LAST-${tag}\n`);
  for (const deadline = Date.now() + 3000; !sink.got().includes(`LAST-${tag}`) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 50));
  return { spoofed: sink.got().includes(`SPOOF-${tag}`), own };
}
