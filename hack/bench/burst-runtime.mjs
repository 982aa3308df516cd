// The container runtime of the cold-burst benchmark (cold-burst.ts), in its own small process: it execs the
// CNI executable (ADD, or DEL) for every pod at once and retries each ADD answered "try again" (code 11)
// after a pause, as a kubelet does. Its own process, because a fork from the benchmark's process (which holds the
// controller and both API emulators, hundreds of MiB) costs tens of milliseconds under load and blocks
// their event loop meanwhile: 250 of them delayed the controller by seconds, which no node would see.
// Plain JavaScript: no loader, quick start.
//
// Input (stdin, JSON): { command, forwarder, conf, retryMs, timeoutMs, pods: [{ id, netns }] }. It starts when the
// input is read. Output (stdout, one JSON object a line): { start } (epoch ms), { wired, at } per pod
// (at: ms from start; `wired` also for a DEL done), then { done: true, tryAgains, reasons } or { error }.
import { spawn } from 'node:child_process';
import path from 'node:path';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);
const start = Date.now();
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
emit({ start });

function add(pod) {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: job.command, CNI_CONTAINERID: pod.id, CNI_NETNS: pod.netns, CNI_IFNAME: 'eth0', CNI_PATH: path.dirname(job.forwarder) };
    const child = spawn(job.forwarder, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      let json;
      try {
        json = JSON.parse(out);
      } catch {
        json = undefined;
      }
      resolve({ code, out, json });
    });
    child.stdin.end(job.conf);
  });
}

let tryAgains = 0;
const reasons = {}; // "try again" answers by their message's first words
const sample = {}; // one whole message of each
async function wire(pod) {
  for (;;) {
    const r = await add(pod);
    if (r.code === 0) return emit({ wired: pod.id, at: Date.now() - start });
    if (job.command !== 'ADD' || r.json?.code !== 11) throw new Error(`${job.command} of ${pod.id} failed: ${r.out}`);
    tryAgains++;
    const reason = String(r.json?.msg ?? '').split(/[:;,]/)[0];
    reasons[reason] = (reasons[reason] ?? 0) + 1;
    sample[reason] ??= `${((Date.now() - start) / 1000).toFixed(2)} s: ${r.json?.msg}`;
    if (Date.now() - start > job.timeoutMs) throw new Error(`${pod.id} had no IP after ${job.timeoutMs} ms: ${r.json?.msg}`);
    await new Promise((res) => setTimeout(res, job.retryMs));
  }
}

try {
  await Promise.all(job.pods.map(wire));
  emit({ done: true, tryAgains, reasons });
  if (process.env.BURST_SAMPLES) process.stderr.write(`${JSON.stringify(sample, null, 1)}\n`);
} catch (err) {
  emit({ error: err.message });
  process.exitCode = 1;
}
