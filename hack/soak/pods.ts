/**
 * The soak's container runtime: it ADDs and DELs pods through `Sandbox.cni` (the real forwarder) as
 * containerd does, retrying a code-11 ADD with a new sandbox, and keeps what the invariants and the
 * summary need: the pods and their states, the counts, every ADD's duration, every wait for an IP.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Sandbox, SandboxNode } from '../sandbox/sandbox.js';
import { hostVethName, podMACs } from '../../node-plugin/datapath/names.js';
import { cniOutcome, type LivePod, type ViolationKind } from './invariants.js';
import { ipOwners } from './observe.js';
import type { IpWait } from './waits.js';

const execFileP = promisify(execFile);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type PodState = 'adding' | 'up' | 'deleting' | 'gone';

export interface PodRun {
  name: string;
  node: SandboxNode;
  netns?: string;
  state: PodState;
  /** Bumped on every change of state: a check skips pods that changed while it looked. */
  epoch: number;
  live?: LivePod;
}

/** What the soak did, as the summary counts it (the checker counts its checks and pings here too). */
export interface SoakOps { adds: number; addsOk: number; addsTryAgain: number; dels: number; delsOk: number; pods: number; pings: number; checks: number }

export const newOps = (): SoakOps => ({ adds: 0, addsOk: 0, addsTryAgain: 0, dels: 0, delsOk: 0, pods: 0, pings: 0, checks: 0 });

export interface AddCall { start: number; end: number; ok: boolean }

export type Violate = (kind: ViolationKind, detail: string) => void;

export class PodRuntime {
  readonly pods = new Map<string, PodRun>();
  readonly addCalls: AddCall[] = [];
  readonly ipWaits: IpWait[] = [];
  private readonly tasks = new Set<Promise<void>>();

  constructor(
    private readonly sandbox: Sandbox,
    readonly ops: SoakOps,
    private readonly violate: Violate,
    private readonly o: { cniDeadlineMs: number; addGiveUpMs: number },
  ) {}

  /** Pods up (with an IP, not being deleted). */
  live(): PodRun[] { return [...this.pods.values()].filter((p) => p.state === 'up'); }
  /** Pods on the node that are not gone. */
  onNode(n: SandboxNode): number { return [...this.pods.values()].filter((p) => p.node === n && p.state !== 'gone').length; }
  /** Pods adding or up: the population the churn steers. */
  present(): number { return [...this.pods.values()].filter((p) => p.state === 'adding' || p.state === 'up').length; }
  /** Pods with a CNI call under way. */
  busy(): number { return [...this.pods.values()].filter((p) => p.state === 'adding' || p.state === 'deleting').length; }

  /** Starts an add or a delete without waiting for it; drain() waits for all of them. */
  track(p: Promise<void>): void { this.tasks.add(p); void p.finally(() => this.tasks.delete(p)); }

  async drain(): Promise<void> { while (this.tasks.size) await Promise.all([...this.tasks]); }

  /** ADD until the pod has an IP, as a runtime does: a code-11 answer is torn down (DEL) and tried again with a new sandbox. */
  async add(node: SandboxNode): Promise<void> {
    const name = `p${++this.ops.pods}`;
    const p: PodRun = { name, node, state: 'adding', epoch: 0 };
    this.pods.set(name, p);
    p.netns = await this.sandbox.fabric.addNetns(`${name}`);
    const began = Date.now();
    let waitStart: { at: number; pods: number; nic: number } | undefined;
    let tryAgains = 0;
    for (let attempt = 0; ; attempt++) {
      const containerId = `${name}-s${attempt}`;
      const start = Date.now();
      this.ops.adds++;
      const r = await this.sandbox.cni(node, 'ADD', containerId, `/run/netns/${p.netns}`, { podName: name, deadlineMs: this.o.cniDeadlineMs });
      const out = cniOutcome(r);
      this.addCalls.push({ start, end: Date.now(), ok: out.kind === 'ok' && !!out.ip });
      if (out.kind === 'ok' && out.ip) {
        this.ops.addsOk++;
        if (waitStart) {
          this.ipWaits.push({
            pod: name, node: node.name, startedAt: waitStart.at, gotAt: Date.now(), tryAgains,
            podsOnNode: [waitStart.pods, this.onNode(node)], nicIPs: [waitStart.nic, ipOwners(this.sandbox).secondaryCount(node.name)],
          });
        }
        p.live = { name, containerId, node: node.name, ip: out.ip, veth: hostVethName(containerId, 'eth0'), mac: podMACs(containerId, 'eth0').container };
        setState(p, 'up');
        return;
      }
      if (out.kind === 'try-again') {
        this.ops.addsTryAgain++;
        tryAgains++;
        waitStart ??= { at: start, pods: this.onNode(node), nic: ipOwners(this.sandbox).secondaryCount(node.name) };
      }
      else if (out.kind === 'hang') this.violate('add-hang', `ADD of ${name} (${containerId}) on ${node.name} ran past ${this.o.cniDeadlineMs} ms`);
      else if (out.kind === 'ok') this.violate('add-bad-failure', `ADD of ${name} on ${node.name} succeeded without an IP: ${r.stdout.trim()}`);
      else this.violate('add-bad-failure', `ADD of ${name} (${containerId}) on ${node.name} failed with ${out.code === undefined ? 'no code' : `code ${out.code}`}, not 11: ${out.msg}`);
      // the runtime tears the failed sandbox down, then tries again with a new one
      await this.del(p, containerId);
      if (Date.now() - began > this.o.addGiveUpMs) {
        this.violate('add-never-succeeded', `${name} on ${node.name} got no IP in ${this.o.addGiveUpMs} ms (${attempt + 1} ADDs)`);
        await dropNetns(p);
        setState(p, 'gone');
        return;
      }
      await sleep(250 + Math.floor(Math.random() * 250));
    }
  }

  async delete(p: PodRun): Promise<void> {
    setState(p, 'deleting');
    await this.del(p, p.live!.containerId);
    await dropNetns(p);
    setState(p, 'gone');
    this.pods.delete(p.name);
  }

  /** DEL until it succeeds, as a runtime retries it; every failure is a violation. */
  private async del(p: PodRun, containerId: string): Promise<void> {
    const began = Date.now();
    for (;;) {
      this.ops.dels++;
      const r = await this.sandbox.cni(p.node, 'DEL', containerId, `/run/netns/${p.netns}`, { podName: p.name, deadlineMs: this.o.cniDeadlineMs });
      const out = cniOutcome(r);
      if (out.kind === 'ok') { this.ops.delsOk++; return; }
      if (out.kind === 'hang') this.violate('del-hang', `DEL of ${p.name} (${containerId}) on ${p.node.name} ran past ${this.o.cniDeadlineMs} ms`);
      else this.violate('del-failed', `DEL of ${p.name} (${containerId}) on ${p.node.name}: ${'code' in out && out.code !== undefined ? `code ${out.code}: ` : ''}${out.msg}`);
      if (Date.now() - began > this.o.addGiveUpMs) return;
      await sleep(1000);
    }
  }
}

function setState(p: PodRun, s: PodState): void { p.state = s; p.epoch++; }

async function dropNetns(p: PodRun): Promise<void> {
  if (p.netns) await execFileP('ip', ['netns', 'del', p.netns]).catch(() => undefined);
}
