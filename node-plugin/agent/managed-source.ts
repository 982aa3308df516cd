import type { Logger } from 'pino';
import type { NodeIPPoolSpec } from '../../crds/api/nodeippool.js';
import type { AzureAdapter, NodeNic, SubnetDetails } from '../../controllers/azure.js';
import { AzureCallError } from '../../controllers/azure-errors.js';
import { hasChanges, nextIpConfigs, planNode, poolIpConfigs, type Plan } from '../../controllers/plan.js';
import type { MachineRef } from '../../controllers/providerid.js';
import type { NodeIPAllocation } from '../../crds/api/nodeipallocation.js';
import type { PoolSettings } from './address-service.js';
import { standaloneRecord } from './standalone-record.js';
import type { RecordSource, SpecWrite } from './sync.js';

/**
 * Standalone managed mode: the agent is its own controller for one NIC, with the VM's managed identity.
 * Each round reads the NIC (and, at most every resync, the subnet), decides with the controller's planner
 * (controllers/plan.ts: the same scaling math, foreign and primary ip-configs never touched, removes only
 * what the agent released, no adds in a round that removes), makes at most one NIC write (the
 * controller's ARM adapter: If-Match on the ETag), and hands the agent the record that write produced.
 * The release handshake is the same as with a cluster, only inside one process: the agent's spec write
 * (demand, releasedIPs) starts a round; the round's record tells the agent which IPs are gone.
 */

export interface ManagedSourceOptions {
  azure: AzureAdapter;
  machine: MachineRef;
  nodeName: string;
  /** The pool subnet; default: the subnet of the NIC's primary ip-config. */
  subnetID?: string | undefined;
  ipsPerNode: NodeIPPoolSpec['ipsPerNode'];
  scaling: NodeIPPoolSpec['scaling'];
  snat: PoolSettings['snat'];
  /** Re-read the NIC this often without any change of demand (drift, changes made in the portal). */
  resyncMs: number;
  /** Re-read the subnet (its free addresses) at most this often. */
  subnetCacheMs?: number;
  logger: Logger;
}

type OnUpdate = (record: NodeIPAllocation | undefined, pool: PoolSettings | undefined) => void;

export class ManagedNicSource implements RecordSource {
  private onUpdate: OnUpdate | undefined;
  private write: SpecWrite | undefined;
  private nicId: string | undefined;
  private subnet: { at: number; details: SubnetDetails } | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** NIC writes made (for tests and logs). */
  writes = 0;
  lastPlan: Plan | undefined;

  constructor(private readonly o: ManagedSourceOptions) {}

  private get pool(): PoolSettings {
    return { snat: this.o.snat, ipsPerNode: { ...this.o.ipsPerNode }, scaling: { ...this.o.scaling } };
  }

  async start(onUpdate: OnUpdate): Promise<void> {
    this.onUpdate = onUpdate;
    this.poke();
    await this.running;
  }

  /** The agent's demand and releases: start a round (rounds never overlap; one asked for meanwhile runs after). */
  async writeSpec(write: SpecWrite): Promise<void> {
    this.write = write;
    this.poke();
  }

  private poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.round()
      .then((nextMs) => this.schedule(nextMs))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.poke();
    }, ms);
    this.timer.unref();
  }

  private async subnetDetails(id: string): Promise<SubnetDetails> {
    const maxAge = this.o.subnetCacheMs ?? this.o.resyncMs;
    if (this.subnet && this.subnet.details.id.toLowerCase() === id.toLowerCase() && Date.now() - this.subnet.at < maxAge) return this.subnet.details;
    const details = await this.o.azure.getSubnet(id);
    this.subnet = { at: Date.now(), details };
    return details;
  }

  /** One round; resolves with when to run the next one. */
  private async round(): Promise<number> {
    const { azure, logger } = this.o;
    let nic: NodeNic;
    try {
      nic = await azure.getNodeNic(this.o.machine, this.nicId);
      this.nicId = nic.nicId;
      const subnetID = this.o.subnetID ?? nic.ipConfigs.find((c) => c.primary)?.subnetId;
      if (!subnetID) throw new Error(`NIC ${nic.nicId} has no primary ip-config with a subnet; give --subnet-id`);
      const subnet = await this.subnetDetails(subnetID);
      const spec = { subnetID, ipsPerNode: this.o.ipsPerNode, scaling: this.o.scaling };
      const plan = planNode({ spec, nic: nic.ipConfigs, released: this.write?.releasedIPs ?? [], demand: this.write?.demand, subnetFree: subnet.freeIPs });
      this.lastPlan = plan;
      let after = nic;
      if (hasChanges(plan)) {
        after = await azure.writeIpConfigs(nic, nextIpConfigs(nic.ipConfigs, plan, subnetID));
        this.writes++;
        if (subnet.freeIPs !== undefined && this.subnet) this.subnet.details = { ...subnet, freeIPs: subnet.freeIPs - plan.add.length + plan.remove.length };
        logger.info({ nic: nic.nicId, added: plan.add.length, removed: plan.remove.length, target: plan.target, reason: plan.reason }, 'updated the NIC');
      }
      if (this.stopped) return this.o.resyncMs;
      this.onUpdate?.(standaloneRecord({
        nodeName: this.o.nodeName,
        nic: { id: after.nicId, macAddress: after.macAddress || nic.macAddress, primaryIP: after.primaryIP || nic.primaryIP, vmID: this.o.machine.id },
        subnet: { id: subnet.id, addressPrefix: subnet.addressPrefix },
        vnetAddressPrefixes: subnet.vnetAddressPrefixes,
        ips: poolIpConfigs(after.ipConfigs, subnetID).filter((c) => c.privateIPAddress).map((c) => ({ ip: c.privateIPAddress!, ipConfigName: c.name })),
        targetIPs: plan.target,
      }), this.pool);
      if (plan.deferred > 0) {
        logger.warn({ deferred: plan.deferred, subnetFree: subnet.freeIPs }, 'the subnet has no room for more IPs; trying again later');
        return Math.min(this.o.resyncMs, 5000);
      }
      return this.o.resyncMs;
    } catch (err) {
      if (err instanceof AzureCallError) {
        const f = err.failure;
        logger.warn({ kind: f.kind, code: f.code, err: f.message }, 'Azure call did not go through; will retry');
        switch (f.kind) {
          case 'PreconditionFailed': return 50 + Math.floor(Math.random() * 100); // someone else changed the NIC: read it again
          case 'Throttled':
          case 'Conflict': return f.retryAfterMs;
          case 'SubnetFull': this.subnet = undefined; return Math.min(this.o.resyncMs, 30_000);
          default: return Math.min(this.o.resyncMs, 5000);
        }
      }
      logger.warn({ err: (err as Error).message }, 'managing the NIC failed; will retry');
      return Math.min(this.o.resyncMs, 5000);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
