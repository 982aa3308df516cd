import type { Logger } from 'pino';
import { DatapathCheckError, type NodeNetwork } from '../datapath/index.js';
import type * as DatapathModule from '../datapath/index.js';
import {
  EMPTY_SUCCESS,
  errorResponse,
  mergeIntoPrevResult,
  parseRequest,
  successResponse,
  versionForError,
  versionResponse,
  type AddRequest,
  type CheckRequest,
  type CniRequest,
  type CniResponse,
  type DelRequest,
  type GcRequest,
  type StatusRequest,
} from '../cni/protocol.js';
import { CniError, CniErrorCode, type Result } from '../cni/types.js';
import { NoFreeAddressError, PoolNotReadyError } from '../errors.js';
import { KeyedSerial } from '../keyed-serial.js';
import { ownerKey, type AddressOwner, type AgentAddressService, type AssignedAddress } from './address-service.js';
import { FreeIPWaiters } from './free-ip-waiters.js';

/**
 * Serves CNI requests forwarded by the per-pod executable: protocol parsing (node-plugin/cni), address
 * allocation (address service) and kernel work (datapath), glued with per-pod serialization.
 */

export type Datapath = Pick<typeof DatapathModule, 'ensureNode' | 'attachPod' | 'detachPod' | 'checkPod' | 'listAttachments'> &
  Partial<Pick<typeof DatapathModule, 'pruneOrphanRoutes' | 'nodeDiagnostics'>>;

export interface CniHandlerDeps {
  addresses: AgentAddressService;
  datapath: Datapath;
  logger: Logger;
  /**
   * How long an ADD that finds no free IP is held, waiting for the IPs its demand asked for, before it is
   * answered "try again" (code 11); 0 (default): answered at once. A runtime pauses before it retries a
   * failed sandbox (the kubelet about 10 s), far longer than the controller usually needs for a batch.
   */
  addWaitMs?: number;
}

export class CniHandler {
  private readonly perPod = new KeyedSerial();
  readonly counts = new Map<string, number>();
  private readonly waiters = new FreeIPWaiters();

  constructor(private readonly deps: CniHandlerDeps) {
    // New IPs (or freed ones): wake as many held ADDs as could now get one.
    deps.addresses.onChange(() => {
      if (this.waiters.size > 0) this.waiters.wake(deps.addresses.freeCount());
    });
  }

  /** Held ADDs are answered at once ("try again"), and no later one is held (shutdown). */
  stopHolding(): void {
    this.waiters.close();
  }

  /**
   * reserve(), holding the ADD for up to `addWaitMs` while no IP is free: it retries whenever IPs arrive
   * (and at least every second, for an IP whose cooldown ended). Each failed attempt renews the pod's
   * pending demand, so the demand stands while the ADD waits. Throws the last NoFreeAddressError after the wait.
   */
  private async reserveOrWait(owner: AddressOwner): Promise<{ address: AssignedAddress; durable: Promise<void> }> {
    const deadline = Date.now() + (this.deps.addWaitMs ?? 0);
    for (;;) {
      try {
        return this.deps.addresses.reserve(owner);
      } catch (err) {
        const left = deadline - Date.now();
        if (!(err instanceof NoFreeAddressError) || left <= 0) throw err;
        if (this.waiters.closed) throw err;
        await this.waiters.wait(Math.min(left, 1000));
      }
    }
  }

  /** One forwarded invocation: environment and stdin in, stdout and exit code out. Never throws. */
  async handle(env: Record<string, string | undefined>, stdin: string): Promise<CniResponse> {
    let req: CniRequest | undefined;
    try {
      req = parseRequest(env, stdin);
      const res = await this.dispatch(req);
      return res;
    } catch (err) {
      const cniErr = this.toCniError(err);
      this.deps.logger.warn({ command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, ifName: env.CNI_IFNAME, code: cniErr.code, err: cniErr.message }, 'CNI request failed');
      return errorResponse(cniErr, req?.version ?? versionForError(stdin));
    }
  }

  private toCniError(err: unknown): CniError {
    if (err instanceof CniError) return err;
    if (err instanceof NoFreeAddressError || err instanceof PoolNotReadyError) return new CniError(CniErrorCode.TryAgainLater, err.message);
    if (err instanceof DatapathCheckError) return new CniError(CniErrorCode.CheckFailed, err.message);
    const e = err as Error & { stderr?: string };
    return new CniError(CniErrorCode.DatapathFailed, e?.message ?? String(err), e?.stderr);
  }

  private dispatch(req: CniRequest): Promise<CniResponse> {
    this.counts.set(req.command, (this.counts.get(req.command) ?? 0) + 1);
    switch (req.command) {
      case 'VERSION':
        return Promise.resolve(versionResponse(req.version));
      case 'ADD':
        return this.perPod.run(ownerKey(req), () => this.add(req));
      case 'DEL':
        return this.perPod.run(ownerKey(req), () => this.del(req));
      case 'CHECK':
        return this.perPod.run(ownerKey(req), () => this.check(req));
      case 'GC':
        return this.gc(req);
      case 'STATUS':
        return this.status(req);
    }
  }

  private network(): NodeNetwork {
    const net = this.deps.addresses.nodeNetwork();
    if (!net) throw new CniError(CniErrorCode.TryAgainLater, this.deps.addresses.notReadyReason());
    return net;
  }

  /**
   * Sets the node network up. The datapath remembers what it applied (and shares a run in flight), so an
   * ADD pays nothing once the node is up; `force` re-applies it (the periodic resync: chains flushed by
   * other software come back).
   */
  ensureNode(net: NodeNetwork, opts: { force?: boolean } = {}): Promise<void> {
    return this.deps.datapath.ensureNode(net, opts.force ? { force: true } : {});
  }

  private async add(req: AddRequest): Promise<CniResponse> {
    const net = this.network();
    const { addresses, datapath, logger } = this.deps;
    const pod = req.args.K8S_POD_NAME ? `${req.args.K8S_POD_NAMESPACE ?? ''}/${req.args.K8S_POD_NAME}` : undefined;
    const owner = { containerId: req.containerId, ifName: req.ifName, runtime: 'cni' as const, netnsPath: req.netns, ...(pod ? { pod } : {}) };
    // The allocation's commit (an fsync) runs alongside the kernel work; the ADD succeeds only once both
    // are done. A crash in between leaves a veth labelled with the IP, which start-up reconciliation adopts.
    const { address: addr, durable } = await this.reserveOrWait(owner);
    durable.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
    let attached;
    try {
      await this.ensureNode(net);
      const mtu = req.config.mtu ?? net.mtu;
      attached = await datapath.attachPod({ ...net, mtu }, { containerId: req.containerId, netnsPath: req.netns, ifName: req.ifName, ip: addr.ip, prefixLength: addr.prefixLength });
      await durable;
    } catch (err) {
      logger.warn({ containerId: req.containerId, ip: addr.ip, err: (err as Error).message }, 'ADD failed; undoing');
      await datapath.detachPod(net, { containerId: req.containerId, ifName: req.ifName, netnsPath: req.netns, ip: addr.ip }).catch(() => undefined);
      await addresses.release(owner);
      throw err;
    }
    const ours: Result = {
      interfaces: [
        { name: attached.hostVeth.name, mac: attached.hostVeth.mac },
        { name: attached.container.name, mac: attached.container.mac, sandbox: attached.container.sandbox },
      ],
      ips: [{ address: `${attached.ip}/${attached.prefixLength}`, gateway: attached.gateway, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: attached.gateway }],
      dns: req.config.dns ?? {},
    };
    logger.info({ containerId: req.containerId, ifName: req.ifName, ip: attached.ip, pod: req.args.K8S_POD_NAME, namespace: req.args.K8S_POD_NAMESPACE }, 'pod attached');
    return successResponse(mergeIntoPrevResult(req.prevResult, ours), req.version);
  }

  private async del(req: DelRequest): Promise<CniResponse> {
    const { addresses, datapath, logger } = this.deps;
    const alloc = addresses.allocation(req);
    // A sandbox that never got an IP (its ADDs found none) is gone; its pod usually comes back with a new
    // one at once (containerd, the kubelet), so it stops counting as demand only after a short grace.
    if (!alloc) addresses.abandonPending(req);
    // The last known network when the record is gone (node left every pool): the pod's DEL must still work.
    const net = addresses.teardownNetwork();
    if (!net) {
      if (!alloc) return EMPTY_SUCCESS; // nothing of ours: gone already
      throw new CniError(CniErrorCode.TryAgainLater, `cannot tear down safely (the node network is not known yet): ${addresses.notReadyReason()}`);
    }
    const netnsPath = req.netns ?? alloc?.netnsPath;
    const detach = () => datapath.detachPod(net, { containerId: req.containerId, ifName: req.ifName, ...(netnsPath ? { netnsPath } : {}), ...(alloc ? { ip: alloc.ip } : {}) });
    if (!alloc) {
      await detach();
      return EMPTY_SUCCESS;
    }
    // The release is committed while the kernel work runs; the IP is free for others only once it is done.
    await addresses.releaseWith(req, detach);
    logger.info({ containerId: req.containerId, ifName: req.ifName, ip: alloc.ip }, 'pod detached');
    return EMPTY_SUCCESS;
  }

  private async check(req: CheckRequest): Promise<CniResponse> {
    const { addresses, datapath } = this.deps;
    const addr = addresses.lookup(req);
    if (!addr) throw new CniError(CniErrorCode.UnknownContainer, `no address is allocated to container ${req.containerId} interface ${req.ifName}`);
    const expected = `${addr.ip}/${addr.prefixLength}`;
    if (!(req.prevResult.ips ?? []).some((ip) => ip.address === expected)) {
      throw new CniError(CniErrorCode.CheckFailed, `prevResult does not list ${expected}, the address the agent holds for this interface`);
    }
    const net = this.network();
    await datapath.checkPod(net, { containerId: req.containerId, netnsPath: req.netns, ifName: req.ifName, ip: addr.ip, prefixLength: addr.prefixLength });
    return EMPTY_SUCCESS;
  }

  /** Removes every CNI attachment the runtime no longer lists; CNM-owned ones and in-flight ADDs are left alone. */
  private async gc(req: GcRequest): Promise<CniResponse> {
    const { addresses, datapath, logger } = this.deps;
    const valid = new Set(req.validAttachments.map((a) => `${a.containerID}/${a.ifname}`));
    const net = this.network();
    const stale = addresses.listAllocations().filter((a) => a.runtime === 'cni' && !valid.has(ownerKey(a)));
    const staleKeys = new Set(stale.map(ownerKey));
    const attachments = await datapath.listAttachments(net);
    let removed = 0;
    for (const a of stale) {
      if (this.perPod.busy(ownerKey(a))) continue; // an ADD/DEL for it is running: the runtime is not done with it
      await this.perPod.run(ownerKey(a), async () => {
        const current = addresses.allocation(a);
        if (!current || current.assignedAt !== a.assignedAt) return; // changed meanwhile
        await datapath.detachPod(net, { containerId: a.containerId, ifName: a.ifName, ip: a.ip, ...(a.netnsPath ? { netnsPath: a.netnsPath } : {}) });
        await addresses.release(a);
        removed++;
      });
    }
    // Interfaces nobody holds an IP for. An ADD allocates before it attaches, so an attachment listed
    // above whose allocation exists *now* belongs to a pod (possibly one added while we were listing).
    for (const o of attachments) {
      if (valid.has(ownerKey(o)) || staleKeys.has(ownerKey(o)) || addresses.allocation(o) || this.perPod.busy(ownerKey(o))) continue;
      await this.perPod.run(ownerKey(o), async () => {
        if (addresses.allocation(o)) return; // an ADD for it got in first
        await datapath.detachPod(net, { containerId: o.containerId, ifName: o.ifName, ...(o.ip ? { ip: o.ip } : {}) });
        removed++;
      });
    }
    // Containers waiting for an IP that the runtime no longer lists are gone: no longer pending demand.
    for (const key of addresses.pendingKeys()) {
      if (valid.has(key) || this.perPod.busy(key)) continue;
      const slash = key.lastIndexOf('/');
      addresses.forgetPending({ containerId: key.slice(0, slash), ifName: key.slice(slash + 1) });
    }
    // /32 routes to pods whose veth vanished without a DEL (the namespace was destroyed under us). Safe
    // while ADDs run: a pod's route is made after its veth (which names it) and removed before it.
    const prunedRoutes = datapath.pruneOrphanRoutes ? await datapath.pruneOrphanRoutes(net) : [];
    logger.info({ valid: valid.size, removed, prunedRoutes }, 'GC done');
    return EMPTY_SUCCESS;
  }

  private async status(_req: StatusRequest): Promise<CniResponse> {
    const { addresses } = this.deps;
    const net = addresses.nodeNetwork();
    if (!net) throw new CniError(CniErrorCode.NotAvailable, `not ready: ${addresses.notReadyReason()}`);
    try {
      await this.ensureNode(net);
    } catch (err) {
      throw new CniError(CniErrorCode.NotAvailableLimitedConnectivity, `node network is broken, existing pods may have limited connectivity: ${(err as Error).message}`);
    }
    if (addresses.freeCount() === 0) {
      throw new CniError(CniErrorCode.NotAvailable, `not ready: no free VNet IP on this node (${addresses.demand().usedIPs} in use); more have been requested`);
    }
    return EMPTY_SUCCESS;
  }
}
