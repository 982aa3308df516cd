import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { NodeNetwork } from '../datapath/index.js';
import type { AgentAddressService } from './address-service.js';
import type { Datapath } from './cni-handler.js';
import type { DelQueue } from './del-queue.js';
import { awaitingVethTeardown, planReconcile, type ReconcileInput } from './reconcile.js';

/**
 * Start-up reconciliation, run once when the record first arrives with enough status to build the node
 * network: apply the DELs queued while the agent was down, then compare the store with the kernel
 * (reconcile.ts decides) and free, adopt or report. CNI requests that touch allocations wait for it
 * (`gate`), so no ADD is given an IP or name a queued DEL or a vanished pod still holds.
 */
export class StartupReconciliation {
  private started = false;
  private finish!: () => void;
  /** Resolves once the reconciliation has run (successfully or not: it never rejects). */
  readonly done = new Promise<void>((resolve) => (this.finish = resolve));

  constructor(
    private readonly deps: {
      addresses: AgentAddressService;
      datapath: Pick<Datapath, 'listAttachments' | 'detachPod'>;
      delQueue: Pick<DelQueue, 'applyAll'>;
      logger: Logger;
    },
  ) {}

  /**
   * Starts it the first time the node network is known (later calls do nothing): `prepare` (setting the
   * node network up: readiness checks it once reconciled) first, then the reconciliation.
   */
  startOnce(prepare: () => Promise<void>): void {
    if (this.started || !this.deps.addresses.nodeNetwork()) return;
    this.started = true;
    void prepare().then(() => this.run());
  }

  /** Waits for the reconciliation before a request that touches allocations; before any record, none waits (they get "try again"). */
  async gate(command: string): Promise<void> {
    if (this.started && command !== 'VERSION' && command !== 'STATUS') await this.done;
  }

  private async run(): Promise<void> {
    const { addresses, datapath, delQueue, logger } = this.deps;
    const net = addresses.nodeNetwork()!;
    try {
      // Queued DELs first: they are the runtime telling us those pods are gone, and must land before
      // any ADD (which waits for this reconciliation) could be given their IPs or names.
      const queue = await delQueue.applyAll();
      if (queue.applied || queue.retrying.length || queue.rejected) logger.info({ ...queue }, 'applied the DELs queued while the agent was down');
      const queuedDels = new Set(queue.retrying);
      let input = { ...(await this.observe(net)), queuedDels };
      // Namespaces deleted a moment ago may still have their veth: give the kernel up to ~2 s.
      for (let i = 0; i < 20 && awaitingVethTeardown(input).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        input = { ...(await this.observe(net)), queuedDels };
      }
      const plan = planReconcile(input);
      for (const a of plan.free) {
        // Its veth died with its namespace, but the node's /32 route to it did not: remove it (by IP).
        await datapath.detachPod(net, { containerId: a.containerId, ifName: a.ifName, ip: a.ip }).catch((err: Error) =>
          logger.warn({ containerId: a.containerId, ip: a.ip, err: err.message }, 'removing the route of a pod gone while the agent was down failed; GC will'),
        );
        await addresses.release(a);
      }
      for (const a of plan.adopt) await addresses.adopt(a);
      for (const c of plan.conflicts) logger.warn({ conflict: c }, 'reconciliation conflict');
      logger.info({ kept: plan.keep.length, freed: plan.free.map((a) => a.ip), adopted: plan.adopt.map((a) => a.ip), attachments: input.attachments.length }, 'reconciled with the kernel');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'start-up reconciliation failed; keeping every stored allocation');
    }
    this.finish();
  }

  /** The kernel's attachments and the runtime's namespaces, beside the store's allocations. */
  private async observe(net: NodeNetwork): Promise<ReconcileInput> {
    const { addresses, datapath } = this.deps;
    const attachments = await datapath.listAttachments(net);
    const allocations = addresses.listAllocations();
    return {
      allocations,
      attachments,
      netnsExists: new Map(allocations.filter((a) => a.netnsPath).map((a) => [a.netnsPath!, existsSync(a.netnsPath!)])),
      // Block mode: an attachment with an address of one of the node's blocks is adopted too.
      poolIPs: addresses.podAddresses(),
      now: Date.now(),
    };
  }
}
