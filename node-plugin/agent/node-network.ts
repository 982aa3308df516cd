import type { Logger } from 'pino';
import type { NodeNetwork } from '../datapath/index.js';
import type { AgentAddressService } from './address-service.js';
import type { CniHandler, Datapath } from './cni-handler.js';

/**
 * Keeps the node network (bridge, routes, chains) in place: sets it up as soon as the record says what it
 * is, re-applies it on every resync (force), so chains flushed by other software (a firewall reload,
 * `iptables -F`) come back without a pod event, and remembers why the last attempt failed for /readyz.
 */
export class NodeNetworkKeeper {
  private running: Promise<void> | undefined;
  private diagnosing: ReturnType<NonNullable<Datapath['nodeDiagnostics']>> | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly deps: {
      addresses: Pick<AgentAddressService, 'nodeNetwork'>;
      /** Applies the network; the CNI handler's, which ADDs share (one ensureNode per network). */
      handler: Pick<CniHandler, 'ensureNode'>;
      datapath: Pick<Datapath, 'nodeDiagnostics'>;
      logger: Logger;
    },
  ) {}

  /**
   * Sets the node network up (force: re-applies it even if done, after logging any drift). Calls while
   * one runs share it; never rejects: a failure is logged and kept as `setupError` until one succeeds.
   */
  ensure(force: boolean): Promise<void> {
    const net = this.deps.addresses.nodeNetwork();
    if (!net) return Promise.resolve();
    this.running ??= this.apply(net, force).finally(() => (this.running = undefined));
    return this.running;
  }

  private async apply(net: NodeNetwork, force: boolean): Promise<void> {
    const { datapath, handler, logger } = this.deps;
    try {
      if (force && datapath.nodeDiagnostics) {
        const { problems } = await datapath.nodeDiagnostics(net);
        if (problems.length) logger.warn({ problems }, 'node network drifted; re-applying it');
      }
      await handler.ensureNode(net, { force });
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      logger.error({ err: (err as Error).message }, 'setting up the node network failed; will retry');
    }
  }

  /** Why the last attempt to set up the node network failed; undefined after a success. */
  get setupError(): string | undefined {
    return this.lastError;
  }

  /**
   * The node network's current problems (undefined when it is not known yet or the datapath cannot
   * tell). Concurrent readers (probes, scrapes) share one run of the diagnostics.
   */
  async problems(): Promise<string[] | undefined> {
    const net = this.deps.addresses.nodeNetwork();
    const diagnose = this.deps.datapath.nodeDiagnostics;
    if (!net || !diagnose) return undefined;
    this.diagnosing ??= diagnose(net).finally(() => (this.diagnosing = undefined));
    return (await this.diagnosing).problems;
  }

  /** Resolves once no set-up is running (shutdown waits for it). */
  async settled(): Promise<void> {
    await this.running;
  }
}

/** Re-applies the node network every `intervalMs` (0: never), until stopped. */
export class ResyncLoop {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly resync: () => Promise<void>,
  ) {}

  start(): void {
    if (this.intervalMs > 0 && !this.timer) this.timer = setInterval(() => void this.resync(), this.intervalMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
