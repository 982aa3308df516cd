/**
 * Where the time of one CNI ADD and one DEL goes, step by step, measured inside the agent: every command
 * the datapath runs (exec.ts observeCommands) and every IPAM state write (group commit + fsync), placed on
 * the request's own timeline. Sequential requests through the real C forwarder; the agent runs in this
 * process (ts-node), so absolute figures are a little higher than the compiled agent's in bench:cni.
 *
 *   node --loader ts-node/esm --no-warnings hack/bench/cni-steps.ts [--pods 40]
 */
import { pino } from 'pino';
import { observeCommands } from '../../node-plugin/datapath/exec.js';
import { startAgent } from '../../node-plugin/agent/agent.js';
import { FileStore, type StoreState } from '../../node-plugin/agent/ipam/store.js';
import { startTestNode } from '../../node-plugin/agent/testing/test-node.js';

const pods = Number(/--pods[= ](\d+)/.exec(process.argv.slice(2).join(' '))?.[1] ?? 40);

interface Span { what: string; start: number; ms: number }
let spans: Span[] = [];

/** A short name for a command: the tool and its first words that say what it does. */
function stepName(argv: readonly string[]): string {
  const a = argv.filter((x) => !x.startsWith('-') || x === '-S' || x === '-C' || x === '-batch');
  if (a[0] === 'ip') return argv.includes('-batch') ? (argv.includes('-force') ? 'ip -force -batch (remove)' : 'ip -batch') : `ip ${a.slice(1, 3).join(' ')}`;
  if (a[0]?.startsWith('iptables')) return `${a[0]} ${argv.includes('-S') ? '-S' : argv.includes('-C') ? '-C' : ''}`.trim();
  return a.slice(0, 2).join(' ');
}

class TimedStore extends FileStore {
  override async write(state: StoreState): Promise<void> {
    const t0 = performance.now();
    await super.write(state);
    spans.push({ what: 'IPAM state write (fsync)', start: t0, ms: performance.now() - t0 });
  }
}

const pct = (v: number[], p: number) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN; };

const node = await startTestNode({ podIPCount: 250, startAgent: false });
try {
  const agent = await startAgent(node.config, { logger: pino({ level: 'silent' }), store: new TimedStore(node.config.stateDir) });
  node.agent = agent;
  await agent.reconciled;
  observeCommands((argv, start, ms) => spans.push({ what: stepName(argv), start, ms }));
  const netns = await Promise.all(Array.from({ length: pods + 2 }, (_, i) => node.pod(`st${i}-`)));
  // warm-up
  for (const i of [pods, pods + 1]) { await node.cni('ADD', { containerId: `w-${i}`, netns: netns[i] }); await node.cni('DEL', { containerId: `w-${i}`, netns: netns[i] }); }
  const per: Record<'ADD' | 'DEL', { total: number[]; steps: Map<string, { ms: number[]; startOffset: number[] }> }> = {
    ADD: { total: [], steps: new Map() }, DEL: { total: [], steps: new Map() },
  };
  for (const cmd of ['ADD', 'DEL'] as const) {
    for (let i = 0; i < pods; i++) {
      spans = [];
      const t0 = performance.now();
      const r = await node.cni(cmd, { containerId: `s-${i}`, netns: netns[i] });
      if (r.code !== 0) throw new Error(`${cmd} failed: ${r.stdout}`);
      per[cmd].total.push(r.ms);
      const seen = new Map<string, number>();
      for (const s of spans) {
        // a step that runs more than once per request (two `ip -batch`) is counted by its order: #1, #2
        const n = (seen.get(s.what) ?? 0) + 1;
        seen.set(s.what, n);
        const what = n > 1 || spans.filter((x) => x.what === s.what).length > 1 ? `${s.what} #${n}` : s.what;
        const e = per[cmd].steps.get(what) ?? { ms: [], startOffset: [] };
        e.ms.push(s.ms); e.startOffset.push(s.start - t0);
        per[cmd].steps.set(what, e);
      }
    }
  }
  observeCommands(undefined);
  for (const cmd of ['ADD', 'DEL'] as const) {
    const p = per[cmd];
    console.log(`\n${cmd}: forwarder round trip p50 ${pct(p.total, 50).toFixed(1)} ms, p99 ${pct(p.total, 99).toFixed(1)} ms (${pods} sequential)`);
    console.log(`${'step'.padEnd(34)}${'per req'.padStart(8)}${'p50 ms'.padStart(9)}${'p90 ms'.padStart(9)}${'starts at'.padStart(11)}`);
    for (const [what, e] of [...p.steps].sort((a, b) => pct(a[1].startOffset, 50) - pct(b[1].startOffset, 50))) {
      console.log(`${what.padEnd(34)}${(e.ms.length / pods).toFixed(2).padStart(8)}${pct(e.ms, 50).toFixed(1).padStart(9)}${pct(e.ms, 90).toFixed(1).padStart(9)}${pct(e.startOffset, 50).toFixed(1).padStart(11)}`);
    }
  }
} finally {
  await node.close();
}
