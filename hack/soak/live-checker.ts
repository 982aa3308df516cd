/**
 * The invariants while the soak runs: every `intervalMs`, the world is read (agents' state, each VM's
 * kernel, Azure's IP owners) and checkLive judges the pods that stayed up, untouched, while it was read;
 * then two sampled pod pairs on different nodes ping each other.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { ping } from '../../node-plugin/datapath/testing/testkit.js';
import { checkLive } from './invariants.js';
import { agentState, ipOwners, kernelView } from './observe.js';
import { sleep, type PodRuntime, type Violate } from './pods.js';
import type { Prng } from './prng.js';

export class LiveChecker {
  private waiters: Array<() => void> = [];
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly runtime: PodRuntime,
    /** The workload's stream: which pods ping whom. */
    private readonly rng: Prng,
    private readonly violate: Violate,
    private readonly log: (line: string) => void,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopping) {
        await this.check().catch((e: Error) => this.log(`check failed to read the world: ${e.message}`));
        await sleep(this.intervalMs);
      }
    })();
  }

  /** Ends the loop after the check under way. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** Resolves after the next completed check. */
  nextCheck(): Promise<void> {
    return new Promise<void>((r) => this.waiters.push(r));
  }

  private async check(): Promise<void> {
    const { sandbox, runtime } = this;
    const before = new Map(runtime.live().map((p) => [p.name, p.epoch]));
    const [agents, kernel] = await Promise.all([
      Promise.all(sandbox.nodes.map((n) => agentState(n))),
      Promise.all(sandbox.nodes.map((n) => kernelView(sandbox, n))),
    ]);
    const owners = ipOwners(sandbox);
    // only pods that stayed up, untouched, while the world was read
    const stable = runtime.live().filter((p) => before.get(p.name) === p.epoch).map((p) => p.live!);
    for (const v of checkLive({ pods: stable, agents, ipOwner: owners.ownerOf, kernel })) this.violate(v.kind, v.detail);
    await this.pingSample();
    runtime.ops.checks++;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async pingSample(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const up = this.runtime.live();
      const a = up.length ? this.rng.pick(up) : undefined;
      const others = up.filter((x) => a && x.node !== a.node);
      if (!a || !others.length) return;
      const b = this.rng.pick(others);
      const [ea, eb] = [a.epoch, b.epoch];
      this.runtime.ops.pings++;
      let ok = false;
      for (let k = 0; k < 4 && !ok; k++) {
        ok = await ping(a.netns!, b.live!.ip, 1);
        if (!ok) await sleep(500);
      }
      if (!ok && a.epoch === ea && b.epoch === eb && a.state === 'up' && b.state === 'up') {
        this.violate('ping-failed', `${a.name} on ${a.node.name} (${a.live!.ip}) cannot reach ${b.name} on ${b.node.name} (${b.live!.ip})`);
      }
    }
  }
}
