import { parseCIDR } from '../../crds/ipv4.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import type { ScalingPolicy } from '../../crds/scaling.js';
import type { NodeNetwork } from '../datapath/index.js';
import { NoFreeAddressError, PoolNotReadyError } from '../errors.js';
import { availableIPs, chooseReleases, pickAddress, pruneCooldown, pruneReleased, type PoolView } from './ipam/policy.js';
import { blockAddresses, blockOf, chooseBlockReleases, pickBlockAddress, pruneReleasedBlocks, type BlockView } from './ipam/block-policy.js';
import { PendingDemand } from './ipam/pending.js';
import { GroupCommitter, type Allocation, type Store, type StoreState } from './ipam/store.js';

/**
 * The agent's address service: hands out the node's VNet IPs to pods (CNI) and containers (CNM).
 * Allocation is serialized in-process (one synchronous pick-and-record step), so concurrent callers
 * never share an IP; each change is durable (group-committed to the Store) before it is returned.
 */

export interface AddressOwner {
  containerId: string;
  ifName: string;
  runtime: 'cni' | 'cnm';
  netnsPath?: string;
  /** The pod (namespace/name) when the runtime says it: its retries with new sandboxes are one demand. */
  pod?: string;
}
export interface AssignedAddress {
  ip: string;
  prefixLength: number;
  gateway: string;
}

// The service's errors live in ../errors.ts (shared with the CNM driver); re-exported for its callers.
export { NoFreeAddressError, PoolNotReadyError };

export interface PodAddressService {
  acquire(owner: AddressOwner): Promise<AssignedAddress>;
  release(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): Promise<void>;
  lookup(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): AssignedAddress | undefined;
  nodeNetwork(): NodeNetwork | undefined;
  /** For taking pods down: the current node network, else the last one known (the record may be gone). */
  teardownNetwork(): NodeNetwork | undefined;
}

/** What the agent reads from the NodeIPPool its record names. */
export interface PoolSettings {
  snat: { enabled: boolean; excludeCIDRs: string[] };
  ipsPerNode: { min: number; max: number };
  scaling: ScalingPolicy;
  /** The pool's allocation mode; absent means Individual. */
  allocation?: 'Individual' | 'Block';
}

/** Node facts that come from the agent's configuration, not from the API. */
export interface NodeSettings {
  nodeName: string;
  bridgeName: string;
  hostInterface: string;
  mtu: number;
  hostNetns?: string | undefined;
}

export interface AddressServiceOptions {
  store: Store;
  node: NodeSettings;
  /** How long a freed IP rests before it is handed out again. */
  cooldownMs: number;
  /** How long a pod that found no free IP counts as pending demand. */
  pendingWindowMs?: number;
  /** How long a container DELeted without an IP still counts as demand (its pod's retry is on its way). */
  pendingRetryGraceMs?: number;
  /**
   * What to tell a pod or container that found no free IP, after the numbers (default: the controller
   * is adding a batch; check the NodeIPPool). Standalone mode says what applies there.
   */
  noFreeIPAdvice?: string;
  now?: () => number;
}

/**
 * Whether the node's NodeIPAllocation exists: 'waiting' until the source has told (first list),
 * 'absent' when it does not exist (no NodeIPPool selects the node, or it was deleted), else 'present'.
 */
export type RecordPresence = 'waiting' | 'absent' | 'present';

export const ownerKey = (o: Pick<AddressOwner, 'containerId' | 'ifName'>): string => `${o.containerId}/${o.ifName}`;

export class AgentAddressService implements PodAddressService {
  private allocations = new Map<string, Allocation>();
  private byIP = new Map<string, string>();
  private released = new Set<string>();
  /** Block mode: /28s promised never to be handed out from again, until the controller removes them. */
  private releasedBlocks = new Set<string>();
  private cooldown = new Map<string, number>();
  private readonly pending: PendingDemand;
  private record: NodeIPAllocation | undefined;
  private presence: RecordPresence = 'waiting';
  private lastNetwork: NodeNetwork | undefined;
  private pool: PoolSettings | undefined;
  private readonly committer: GroupCommitter;
  private readonly now: () => number;
  private readonly listeners: Array<(change: { demandRaised: boolean }) => void> = [];

  constructor(private readonly opts: AddressServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.committer = new GroupCommitter(opts.store, () => this.snapshot());
    // An expired entry lowers the demand: publish it without waiting for another CNI call.
    this.pending = new PendingDemand({ windowMs: opts.pendingWindowMs ?? 30_000, now: this.now, onExpired: () => this.changed() });
  }

  /** Loads the committed state (after Store.lock()). */
  restore(state: StoreState): void {
    this.allocations.clear();
    this.byIP.clear();
    for (const a of state.allocations) {
      this.allocations.set(ownerKey(a), a);
      this.byIP.set(a.ip, ownerKey(a));
    }
    this.released = new Set(state.released);
    this.releasedBlocks = new Set(state.releasedBlocks ?? []);
    this.cooldown = new Map(Object.entries(state.cooldown));
    this.lastNetwork = state.nodeNetwork;
  }

  snapshot(): StoreState {
    return {
      version: 1,
      allocations: [...this.allocations.values()],
      released: [...this.released],
      ...(this.releasedBlocks.size ? { releasedBlocks: [...this.releasedBlocks] } : {}),
      cooldown: Object.fromEntries(this.cooldown),
      ...(this.lastNetwork ? { nodeNetwork: this.lastNetwork } : {}),
    };
  }

  /**
   * Called whenever allocations, pending demand or releases change; `demandRaised` when a pod just found
   * no free IP (the controller should hear of it now: a pod is waiting).
   */
  onChange(listener: (change: { demandRaised: boolean }) => void): void {
    this.listeners.push(listener);
  }

  private changed(demandRaised = false): void {
    for (const l of this.listeners) l({ demandRaised });
  }

  /** A new version of the node's record (and its pool's settings) arrived. */
  setRecord(record: NodeIPAllocation | undefined, pool: PoolSettings | undefined): void {
    this.record = record;
    this.presence = record ? 'present' : 'absent';
    const net = this.nodeNetwork();
    const networkChanged = net !== undefined && JSON.stringify(net) !== JSON.stringify(this.lastNetwork);
    if (net) this.lastNetwork = net;
    if (pool) this.pool = pool;
    const ips = this.poolIPs();
    // What the record already lists as released stays released even if our state lost it (a release is
    // never retracted: the controller may remove those IPs at any moment). A held IP cannot be, though.
    const recorded = (record?.spec.releasedIPs ?? []).filter((ip) => !this.byIP.has(ip) && !this.released.has(ip));
    const prunedReleased = pruneReleased(new Set([...this.released, ...recorded]), ips);
    const releasedChanged = recorded.length > 0 || prunedReleased.size !== this.released.size;
    this.released = prunedReleased;
    // The same per block: a listed block stays released; one the NIC no longer holds is forgotten.
    const blocks = this.blocks();
    const recordedBlocks = (record?.spec.releasedBlocks ?? []).filter((b) => !this.releasedBlocks.has(b) && ![...this.byIP.keys()].some((ip) => blockOf(ip, [b])));
    const prunedBlocks = pruneReleasedBlocks(new Set([...this.releasedBlocks, ...recordedBlocks]), blocks);
    const blocksChanged = recordedBlocks.length > 0 || prunedBlocks.size !== this.releasedBlocks.size;
    this.releasedBlocks = prunedBlocks;
    if (releasedChanged || blocksChanged || networkChanged) void this.committer.commit().catch(() => undefined);
    this.changed();
  }

  poolIPs(): string[] {
    const status = this.record?.status;
    const primary = status?.nic?.primaryIP;
    return (status?.ips ?? []).map((i) => i.ip).filter((ip) => ip !== primary);
  }

  /** Every address a pod on this node may hold: the single IPs and, in Block mode, the addresses of the blocks. */
  podAddresses(): string[] {
    const primary = this.record?.status?.nic?.primaryIP;
    return [...this.poolIPs(), ...blockAddresses(this.blocks()).filter((ip) => ip !== primary)];
  }

  /** The node's /28 blocks (status.blocks), lowest first. */
  blocks(): string[] {
    return (this.record?.status?.blocks ?? []).map((b) => b.prefix);
  }

  /** Block mode: the pool says so, or the record holds blocks. */
  blockMode(): boolean {
    return this.pool?.allocation === 'Block' || this.blocks().length > 0;
  }

  releasedBlockList(): string[] {
    return [...this.releasedBlocks].sort();
  }

  private blockView(): BlockView {
    return {
      blocks: this.blocks(), releasedBlocks: this.releasedBlocks, allocated: new Set(this.byIP.keys()), cooldown: this.cooldown,
      now: this.now(), primaryIP: this.record?.status?.nic?.primaryIP,
    };
  }

  /** Block addresses a pod may be given now (usable blocks, not held, not the primary, not cooling). */
  private freeBlockAddresses(): string[] {
    const v = this.blockView();
    const usable = v.blocks.filter((b) => !v.releasedBlocks.has(b));
    return blockAddresses(usable).filter((ip) => ip !== v.primaryIP && !v.allocated.has(ip) && (v.cooldown.get(ip) ?? 0) <= v.now);
  }

  /** The next address: in Block mode the fullest block first, then any fallback single ip-config. */
  private pick(): string | undefined {
    if (this.blockMode()) return pickBlockAddress(this.blockView()) ?? pickAddress(this.view());
    return pickAddress(this.view());
  }

  private view(): PoolView {
    const now = this.now();
    return { poolIPs: this.poolIPs(), allocated: new Set(this.byIP.keys()), released: this.released, cooldown: this.cooldown, now };
  }

  private subnetFacts(): { prefixLength: number; gateway: string } | undefined {
    const subnet = this.record?.status?.subnet;
    if (!subnet) return undefined;
    return { prefixLength: parseCIDR(subnet.addressPrefix).prefixLength, gateway: subnet.gatewayIP };
  }

  private toAssigned(a: Allocation): AssignedAddress | undefined {
    const facts = this.subnetFacts();
    return facts ? { ip: a.ip, ...facts } : undefined;
  }

  isReady(): boolean {
    return this.subnetFacts() !== undefined && this.record?.status?.nic !== undefined;
  }

  freeCount(): number {
    return availableIPs(this.view()).length + (this.blockMode() ? this.freeBlockAddresses().length : 0);
  }

  async acquire(owner: AddressOwner): Promise<AssignedAddress> {
    const { address, durable } = this.reserve(owner);
    await durable;
    return address;
  }

  /**
   * Picks and records an IP at once (in memory: no other caller can get it) and returns it with
   * `durable`, which settles when the allocation is committed. For a caller that does the kernel work
   * meanwhile and reports success only once both are done (CNI ADD): the fsync is then off the critical
   * path, and a crash in between leaves an attachment labelled with the IP, which start-up reconciliation
   * adopts (reconcile.ts), so the IP is never handed out twice. If the commit fails, the allocation is
   * undone (unless changed meanwhile) and `durable` rejects. Throws as acquire does when there is no IP.
   */
  reserve(owner: AddressOwner): { address: AssignedAddress; durable: Promise<void> } {
    const key = ownerKey(owner);
    const facts = this.subnetFacts();
    const existing = this.allocations.get(key);
    if (existing) {
      if (!facts) throw new PoolNotReadyError(this.notReadyReason());
      // it may have been recorded by a call still writing
      return { address: { ip: existing.ip, ...facts }, durable: this.committer.commit() };
    }
    if (!facts || !this.record?.status?.nic) throw new PoolNotReadyError(this.notReadyReason());
    // Pick and record in one synchronous step: no other acquire can run in between.
    const ip = this.pick();
    if (!ip) {
      this.changed(this.pending.note(key, owner.pod));
      throw this.noFreeAddress();
    }
    const alloc: Allocation = {
      containerId: owner.containerId,
      ifName: owner.ifName,
      runtime: owner.runtime,
      ip,
      assignedAt: this.now(),
      ...(owner.netnsPath ? { netnsPath: owner.netnsPath } : {}),
    };
    this.allocations.set(key, alloc);
    this.byIP.set(ip, key);
    this.pending.clear(key);
    this.cooldown.delete(ip);
    this.changed();
    const durable = this.committer.commit().catch((err: unknown) => {
      // Not durable: do not hand it out. Undo only if nobody changed it meanwhile.
      if (this.allocations.get(key) === alloc) {
        this.allocations.delete(key);
        this.byIP.delete(ip);
        this.changed();
      }
      throw err;
    });
    return { address: { ip, ...facts }, durable };
  }

  /** The pool is empty: how many are in use and cooling, the demand now raised (pending included), what to do. */
  private noFreeAddress(): NoFreeAddressError {
    const view = this.view();
    const cooling = [...view.cooldown.values()].filter((t) => t > view.now).length;
    return new NoFreeAddressError(
      `no free VNet IP on node ${this.opts.node.nodeName}: ${this.byIP.size} of ${this.capacity()} in use` +
        (cooling ? `, ${cooling} cooling down after release` : '') +
        `; demand raised to ${this.demand().usedIPs + this.demand().pendingIPs}, ` +
        (this.opts.noFreeIPAdvice ??
          'the controller will add a batch of secondary IPs to the NIC. Retry shortly; if this persists, check the NodeIPPool (ipsPerNode.max) and the free space of its subnet.'),
    );
  }

  async release(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): Promise<void> {
    const key = ownerKey(owner);
    const hadPending = this.pending.clear(key);
    const a = this.allocations.get(key);
    if (!a) {
      if (hadPending) this.changed();
      return;
    }
    this.allocations.delete(key);
    this.byIP.delete(a.ip);
    if (this.opts.cooldownMs > 0) this.cooldown.set(a.ip, this.now() + this.opts.cooldownMs);
    this.changed();
    await this.committer.commit();
  }

  /**
   * Releases the owner's IP once `teardown` (the kernel work of a DEL) has succeeded, committing the
   * release while the teardown runs instead of after it. Until the teardown is done the IP stays taken
   * in memory (nobody gets it while its veth and route may still exist); a crash in between leaves at
   * worst an attachment the store no longer lists, which start-up reconciliation adopts and a retried DEL
   * or GC removes. If the teardown fails the allocation is put back (and committed) and its error thrown.
   */
  async releaseWith(owner: Pick<AddressOwner, 'containerId' | 'ifName'>, teardown: () => Promise<void>): Promise<void> {
    const key = ownerKey(owner);
    const a = this.allocations.get(key);
    if (!a) {
      await teardown();
      await this.release(owner); // clears pending demand, as release does
      return;
    }
    this.pending.clear(key);
    this.allocations.delete(key); // out of the committed state; byIP keeps the IP taken until the teardown is done
    const committed = this.committer.commit();
    const [work, commit] = await Promise.allSettled([teardown(), committed]);
    if (work.status === 'rejected') {
      if (!this.allocations.has(key) && this.byIP.get(a.ip) === key) {
        this.allocations.set(key, a);
        await this.committer.commit().catch(() => undefined);
      }
      throw work.reason;
    }
    if (this.byIP.get(a.ip) === key && !this.allocations.has(key)) {
      this.byIP.delete(a.ip);
      if (this.opts.cooldownMs > 0) this.cooldown.set(a.ip, this.now() + this.opts.cooldownMs);
    }
    this.changed();
    if (commit.status === 'rejected') {
      await this.committer.commit(); // the release must be durable before the DEL is acknowledged
    }
  }

  lookup(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): AssignedAddress | undefined {
    const a = this.allocations.get(ownerKey(owner));
    return a ? this.toAssigned(a) : undefined;
  }

  /** The stored allocation, with owner details (runtime, netns). */
  allocation(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): Allocation | undefined {
    return this.allocations.get(ownerKey(owner));
  }

  listAllocations(): Allocation[] {
    return [...this.allocations.values()];
  }

  /** Records an allocation found in the kernel but missing from the store (start-up reconciliation). */
  async adopt(alloc: Allocation): Promise<boolean> {
    const key = ownerKey(alloc);
    if (this.allocations.has(key) || this.byIP.has(alloc.ip)) return false;
    this.allocations.set(key, alloc);
    this.byIP.set(alloc.ip, key);
    this.released.delete(alloc.ip);
    this.changed();
    await this.committer.commit();
    return true;
  }

  /** Why no IP can be handed out yet (the record is missing or has no status); says what to check. */
  notReadyReason(): string {
    const node = this.opts.node.nodeName;
    switch (this.presence) {
      case 'absent':
        return `node ${node} has no NodeIPAllocation: no NodeIPPool selects it (check the pools' nodeSelector against the node's labels); pods on this node get no VNet IP until one does`;
      case 'waiting':
        return `node ${node}: its NodeIPAllocation has not been read yet; try again shortly`;
      default:
        return `node ${node}: its NodeIPAllocation has no status yet (the controller has not attached IPs to the NIC); try again shortly`;
    }
  }

  recordPresence(): RecordPresence {
    return this.presence;
  }

  /**
   * The node network to tear pods down with: the current one, else the last one known (the record may
   * be gone, e.g. the node left every pool, while pods still hold IPs and their DELs must succeed).
   */
  teardownNetwork(): NodeNetwork | undefined {
    return this.nodeNetwork() ?? this.lastNetwork;
  }

  nodeNetwork(): NodeNetwork | undefined {
    const status = this.record?.status;
    if (!status?.nic || !status.subnet) return undefined;
    const n = this.opts.node;
    return {
      bridgeName: n.bridgeName,
      hostInterface: n.hostInterface,
      nicMAC: status.nic.macAddress,
      primaryIP: status.nic.primaryIP,
      podSubnet: status.subnet.addressPrefix,
      gatewayIP: status.subnet.gatewayIP,
      vnetPrefixes: status.vnetAddressPrefixes ?? [status.subnet.addressPrefix],
      snat: this.pool?.snat ?? { enabled: true, excludeCIDRs: [] },
      mtu: n.mtu,
      ...(n.hostNetns ? { hostNetns: n.hostNetns } : {}),
    };
  }

  /** What the agent reports in spec.demand. */
  demand(): { usedIPs: number; pendingIPs: number } {
    return { usedIPs: this.byIP.size, pendingIPs: Math.min(this.pending.count(), 250) };
  }

  /** Containers that found no free IP and still count as pending demand (`containerId/ifName`). */
  pendingKeys(): string[] {
    return this.pending.keys();
  }

  /**
   * The container is gone (DEL, GC) without ever getting an IP: it no longer counts as demand. release()
   * does this too; this is for callers with no allocation to release.
   */
  forgetPending(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): void {
    if (this.pending.clear(ownerKey(owner))) this.changed();
  }

  /** Addresses pods could hold now: single IPs not released, plus the addresses of blocks not released. */
  private capacity(): number {
    const singles = this.poolIPs().length - this.released.size;
    if (!this.blockMode()) return singles;
    const primary = this.record?.status?.nic?.primaryIP;
    const usable = this.blocks().filter((b) => !this.releasedBlocks.has(b));
    return singles + blockAddresses(usable).filter((ip) => ip !== primary).length;
  }

  /**
   * A DEL of a container that never got an IP: its pod (when known) is likely to retry with a new sandbox
   * at once, so it keeps counting as demand for `pendingRetryGraceMs` at most (not a full window: a pod
   * that is really gone stops counting soon); a retry of the same pod takes its place. Without a known
   * pod it stops counting at once, as forgetPending.
   */
  abandonPending(owner: Pick<AddressOwner, 'containerId' | 'ifName'>): void {
    if (this.pending.abandon(ownerKey(owner), this.opts.pendingRetryGraceMs ?? 10_000)) this.changed();
  }

  releasedIPs(): string[] {
    return [...this.released].sort();
  }

  /**
   * Decides which free IPs to give back (the same scaling math as the controller), records them as
   * released durably, and returns the new releasedIPs list. Must be durable before it is published.
   */
  async planReleases(): Promise<string[]> {
    this.cooldown = pruneCooldown(this.cooldown, [...this.poolIPs(), ...blockAddresses(this.blocks())], this.now());
    const pool = this.pool;
    if (pool && this.isReady()) {
      const scaling = { pending: this.demand().pendingIPs, min: pool.ipsPerNode.min, max: pool.ipsPerNode.max, policy: pool.scaling };
      // Block mode gives back whole blocks no pod holds an address of (the controller's math in blocks);
      // otherwise single IPs. Either way what is released stops cooling down: it is never handed out again.
      const { chosen, released, addressesOf } = this.blockMode()
        ? { chosen: chooseBlockReleases({ ...this.blockView(), ...scaling }), released: this.releasedBlocks, addressesOf: (b: string) => blockAddresses([b]) }
        : { chosen: chooseReleases({ ...this.view(), ...scaling }), released: this.released, addressesOf: (ip: string) => [ip] };
      for (const item of chosen) {
        released.add(item);
        for (const ip of addressesOf(item)) this.cooldown.delete(ip);
      }
      if (chosen.length) await this.committer.commit();
    }
    return this.releasedIPs();
  }

  /** Waits until everything changed so far is durable (graceful shutdown); stops the expiry timer. */
  async flush(): Promise<void> {
    this.pending.close();
    await this.committer.commit();
  }
}
