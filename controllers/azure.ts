import type { TokenCredential } from '@azure/core-auth';
import { NetworkManagementClient, getContinuationToken, type NetworkInterface, type NetworkInterfaceIPConfiguration } from '@azure/arm-network';
import { ComputeManagementClient, type VirtualMachineScaleSetVM } from '@azure/arm-compute';
import { z } from 'zod';
import { describeIssues } from '../crds/api/validation.js';
import { azureGateway, parseCIDR } from '../crds/ipv4.js';
import { blockHeadroom } from './block-headroom.js';
import { BLOCK_IP_CONFIGS_MARKER, blockPrefixPolicy } from './block-wire.js';
import { AzureCallError, classify, type AzureFailure, type RawAzureError } from './azure-errors.js';
import type { ArmLimiter, CallKind } from './limiter.js';
import type { IpConfigView } from './plan.js';
import { parseArmId, type MachineRef } from './providerid.js';

/**
 * The one interface the controller has to Azure: read a node's NIC, write its ip-configs in one call,
 * read a subnet. Behind it: the real arm-network / arm-compute clients (scale-set instances change
 * their NIC through the scale-set VM update), the per-subscription limiter, and errors sorted into
 * AzureFailure kinds.
 */

export interface NodeNic {
  machine: MachineRef;
  nicId: string;
  /** What the write sends as If-Match: the NIC's ETag, or the scale-set VM's for an instance. */
  etag: string;
  macAddress: string;
  primaryIP: string;
  ipConfigs: IpConfigView[];
  /** The resource as read, sent back on the write with only the ip-configs changed. */
  raw: unknown;
}

export interface SubnetDetails {
  id: string;
  addressPrefix: string;
  gatewayIP: string;
  vnetAddressPrefixes: string[];
  /** Addresses nobody holds: size - 5 reserved - ip-configs in the subnet (Azure lists every one). */
  freeIPs?: number | undefined;
  /** Free aligned /28 blocks (an estimate: block-headroom.ts); our block ip-configs count 16 addresses each in freeIPs. */
  freeBlocks?: number | undefined;
  /** Why freeIPs is unknown: the subnet read was refused (a role without subnets/read). */
  headroomUnknown?: string | undefined;
}

export interface AzureAdapter {
  /** The node's primary NIC. `nicId` is a hint from an earlier read (skips the VM lookup). */
  getNodeNic(machine: MachineRef, nicId?: string): Promise<NodeNic>;
  /** One write: the NIC's ip-configs become `next`, guarded by If-Match on `nic.etag`. Returns the NIC after. */
  writeIpConfigs(nic: NodeNic, next: readonly IpConfigView[]): Promise<NodeNic>;
  /** `blocks`: also count the headroom in /28 blocks (freeBlocks), for a Block pool's subnet. */
  getSubnet(subnetId: string, opts?: { blocks?: boolean }): Promise<SubnetDetails>;
}

/** Calls as they happen, for metrics and logs: operation, kind, outcome, duration. */
export type CallObserver = (call: { operation: string; kind: CallKind; result: string; ms: number; subscriptionId: string }) => void;

export interface ArmClients {
  network: NetworkManagementClient;
  compute: ComputeManagementClient;
}

// ---- Azure responses, checked where they enter ----

const armNic = z.looseObject({
  id: z.string(),
  etag: z.string({ message: 'the NIC came without an etag' }),
  macAddress: z.string().optional(),
  virtualMachine: z.looseObject({ id: z.string() }).optional(),
  ipConfigurations: z.array(z.looseObject({
    name: z.string(),
    privateIPAddress: z.string().optional(),
    privateIPAddressPrefixLength: z.number().int().nullish(),
    primary: z.boolean().optional(),
    subnet: z.looseObject({ id: z.string().optional() }).optional(),
  })).default([]),
});

const armNicRefs = z.looseObject({
  networkProfile: z.looseObject({
    networkInterfaces: z.array(z.looseObject({ id: z.string(), primary: z.boolean().optional() })).min(1, 'the VM has no network interface'),
  }, { message: 'the VM has no networkProfile' }),
});

/** Azure keeps the network address, .1, .2, .3 and the broadcast address of every subnet. */
export const AZURE_RESERVED_PER_SUBNET = 5;

const armSubnet = z.looseObject({
  id: z.string(),
  addressPrefix: z.string({ message: 'the subnet has no IPv4 addressPrefix' }),
  // Tens of thousands of entries in a big subnet: only counted, so not checked one by one.
  ipConfigurations: z.array(z.unknown()).default([]),
});
const armVnet = z.looseObject({
  addressSpace: z.looseObject({ addressPrefixes: z.array(z.string()).default([]) }).optional(),
  subnets: z.array(z.looseObject({ name: z.string().optional() })).default([]),
});

function parseArm<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new AzureCallError({ kind: 'Other', code: 'UnexpectedResponse', message: `${what}: ${describeIssues(r.error)}`, retryable: true }, what);
  return r.data;
}

/** Whatever the SDK threw, as the fields classify() reads. */
export function rawAzureError(e: unknown): RawAzureError {
  const err = e as {
    statusCode?: number; code?: string; message?: string;
    details?: { error?: { code?: string; message?: string; details?: RawAzureError['details'] } };
    response?: { status?: number; headers?: { get(n: string): string | undefined } };
  };
  const header = (n: string): string | undefined => {
    const h = err.response?.headers;
    return h && typeof h.get === 'function' ? h.get(n) ?? undefined : undefined;
  };
  const inner = err.details?.error;
  let code = inner?.code ?? err.code;
  // A failed long-running operation has no status: core-lro puts "failed. <code>. <message>" in the text.
  const lro = err.message ? /long-running operation has failed\.\s*([A-Za-z]+)\./.exec(err.message) : null;
  if (lro && (code === undefined || code === 'RestError')) code = lro[1];
  return {
    status: err.statusCode ?? err.response?.status,
    code,
    message: inner?.message ?? err.message ?? String(e),
    details: inner?.details,
    retryAfter: header('retry-after'),
    retryAfterMs: header('retry-after-ms') ?? header('x-ms-retry-after-ms'),
  };
}

const IF_MATCH_MARKER = 'x-podvnet-if-match';

/**
 * arm-network's NIC createOrUpdate has no ifMatch option, and custom headers would also ride on the
 * long-running operation's polls (where an old ETag would fail the final GET). So the caller sets a
 * marker header and this policy turns it into If-Match on the PUT only.
 */
function ifMatchPolicy() {
  return {
    name: 'podvnetIfMatch',
    async sendRequest(request: { method: string; headers: { get(n: string): string | undefined; set(n: string, v: string): void; delete(n: string): void } }, next: (r: never) => Promise<unknown>) {
      const etag = request.headers.get(IF_MATCH_MARKER);
      if (etag !== undefined) {
        request.headers.delete(IF_MATCH_MARKER);
        if (request.method === 'PUT') request.headers.set('If-Match', etag);
      }
      return next(request as never);
    },
  };
}

export interface ClientOptions {
  /** ARM endpoint, e.g. https://management.azure.com (or the emulator's URL). */
  endpoint?: string;
  /** Extra options merged into both clients (TLS trust for the emulator, for instance). */
  extra?: Record<string, unknown>;
}

/** Per-subscription SDK clients with the SDK's own retries off: the controller retries on purpose. */
export function armClientFactory(credential: TokenCredential, opts: ClientOptions = {}): (subscriptionId: string) => ArmClients {
  const cache = new Map<string, ArmClients>();
  return (subscriptionId) => {
    const k = subscriptionId.toLowerCase();
    let c = cache.get(k);
    if (!c) {
      const common = {
        ...(opts.endpoint ? { endpoint: opts.endpoint, $host: opts.endpoint } : {}),
        ...(opts.extra ?? {}),
        retryOptions: { maxRetries: 0 },
        userAgentOptions: { userAgentPrefix: 'podvnet-controller' },
      };
      const network = new NetworkManagementClient(credential, subscriptionId, common);
      network.pipeline.addPolicy(ifMatchPolicy() as never);
      const compute = new ComputeManagementClient(credential, subscriptionId, common);
      compute.pipeline.addPolicy(blockPrefixPolicy() as never);
      c = { network, compute };
      cache.set(k, c);
    }
    return c;
  };
}

const sameId = (a: string | undefined, b: string | undefined) => !!a && !!b && a.toLowerCase() === b.toLowerCase();
const sameNames = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

function viewOf(c: { name: string; privateIPAddress?: string | undefined; privateIPAddressPrefixLength?: number | null | undefined; primary?: boolean | undefined; subnet?: { id?: string | undefined } | undefined }): IpConfigView {
  const view: IpConfigView = { name: c.name, privateIPAddress: c.privateIPAddress, primary: c.primary === true, subnetId: c.subnet?.id };
  if (typeof c.privateIPAddressPrefixLength === 'number') view.prefixLength = c.privateIPAddressPrefixLength;
  return view;
}

export class ArmAdapter implements AzureAdapter {
  constructor(
    private readonly clients: (subscriptionId: string) => ArmClients,
    private readonly limiter: ArmLimiter,
    private readonly observe: CallObserver = () => {},
    /** LRO poll interval: Azure sends Retry-After; the emulator's operations are quick. */
    private readonly pollIntervalMs = 1000,
    private readonly nicIndexTtlMs = 60_000,
  ) {}

  private readonly nicIndexes = new Map<string, { at: number; byVm: Map<string, string>; loading: Promise<Map<string, string>> | undefined }>();
  private readonly scaleSetNics = new Map<string, { startedAt: number; byNic: Map<string, z.output<typeof armNic>>; loading: Promise<unknown> | undefined }>();
  /** When this adapter last wrote each scale-set NIC (lower-case id). */
  private readonly lastWrite = new Map<string, number>();

  /** One Azure call: waits for the budget, times it, classifies a failure, pauses the subscription on 429. */
  private async call<T>(subscriptionId: string, kind: CallKind, operation: string, fn: () => Promise<T>): Promise<T> {
    return this.limiter.run(subscriptionId, kind, async () => {
      const start = performance.now();
      try {
        const out = await fn();
        this.observe({ operation, kind, result: 'ok', ms: performance.now() - start, subscriptionId });
        return out;
      } catch (e) {
        const failure: AzureFailure = e instanceof AzureCallError ? e.failure : classify(rawAzureError(e));
        this.observe({ operation, kind, result: failure.kind, ms: performance.now() - start, subscriptionId });
        if (failure.kind === 'Throttled') this.limiter.pause(subscriptionId, failure.retryAfterMs);
        throw new AzureCallError(failure, operation);
      }
    }, { networkWrite: kind === 'write' && operation.startsWith('nic.') });
  }

  async getNodeNic(machine: MachineRef, nicId?: string): Promise<NodeNic> {
    if (machine.kind === 'vmss') return this.getScaleSetNic(machine);
    if (nicId) {
      try {
        const nic = await this.readNic(machine, nicId);
        if (sameId(nic.virtualMachine?.id, machine.id)) return this.toNodeNic(machine, nic, nic.etag, nic);
      } catch (e) {
        if (!(e instanceof AzureCallError && e.failure.kind === 'NotFound')) throw e;
      }
      // the hint is stale (NIC replaced or moved): look it up again
    }
    // Many nodes in one resource group: one paged list finds every VM's NIC, instead of a VM read each.
    const indexed = (await this.nicIndex(machine)).get(machine.id.toLowerCase());
    if (indexed && indexed !== nicId) {
      try {
        const nic = await this.readNic(machine, indexed);
        if (sameId(nic.virtualMachine?.id, machine.id)) return this.toNodeNic(machine, nic, nic.etag, nic);
      } catch (e) {
        if (!(e instanceof AzureCallError && e.failure.kind === 'NotFound')) throw e;
      }
    }
    const { compute } = this.clients(machine.subscriptionId);
    const vm = await this.call(machine.subscriptionId, 'read', 'vm.get', () => compute.virtualMachines.get(machine.resourceGroup, machine.name));
    const refs = parseArm(armNicRefs, vm, `virtual machine ${machine.id}`);
    const ref = refs.networkProfile.networkInterfaces.find((n) => n.primary) ?? refs.networkProfile.networkInterfaces[0]!;
    const nic = await this.readNic(machine, ref.id);
    return this.toNodeNic(machine, nic, nic.etag, nic);
  }

  /** VM id -> NIC id for a resource group, from a paged NIC list; listed again for an unknown VM at most every nicIndexTtlMs. */
  private async nicIndex(machine: MachineRef): Promise<Map<string, string>> {
    const k = `${machine.subscriptionId}/${machine.resourceGroup}`.toLowerCase();
    const hit = this.nicIndexes.get(k);
    if (hit && (hit.loading || hit.byVm.has(machine.id.toLowerCase()) || Date.now() - hit.at < this.nicIndexTtlMs)) return hit.loading ?? hit.byVm;
    const { network } = this.clients(machine.subscriptionId);
    const load = (async () => {
      const byVm = new Map<string, string>();
      const pages = network.networkInterfaces.list(machine.resourceGroup).byPage();
      for (;;) {
        const page = await this.call(machine.subscriptionId, 'read', 'nic.list', () => pages.next());
        if (page.done) break;
        const list = page.value as NetworkInterface[];
        for (const nic of list) {
          // The primary NIC of a VM wins over any secondary one.
          if (nic.id && nic.virtualMachine?.id && (nic.primary !== false || !byVm.has(nic.virtualMachine.id.toLowerCase()))) {
            byVm.set(nic.virtualMachine.id.toLowerCase(), nic.id);
          }
        }
        if (!getContinuationToken(list)) break;
      }
      return byVm;
    })();
    const entry = { at: Date.now(), byVm: hit?.byVm ?? new Map<string, string>(), loading: load as Promise<Map<string, string>> | undefined };
    this.nicIndexes.set(k, entry);
    try {
      entry.byVm = await load;
      entry.at = Date.now();
      return entry.byVm;
    } catch {
      return entry.byVm; // fall back to per-VM reads
    } finally {
      entry.loading = undefined;
    }
  }

  private async readNic(machine: MachineRef, nicId: string): Promise<z.output<typeof armNic>> {
    const { network } = this.clients(machine.subscriptionId);
    const id = parseArmId(nicId);
    const nicName = id.names[id.names.length - 1]!;
    const raw = await this.call(machine.subscriptionId, 'read', 'nic.get', () => network.networkInterfaces.get(id.resourceGroup, nicName));
    return parseArm(armNic, raw, `network interface ${nicId}`);
  }

  private async getScaleSetNic(machine: Extract<MachineRef, { kind: 'vmss' }>): Promise<NodeNic> {
    const { compute, network } = this.clients(machine.subscriptionId);
    const vm = await this.call(machine.subscriptionId, 'read', 'vmssvm.get', () =>
      compute.virtualMachineScaleSetVMs.get(machine.resourceGroup, machine.scaleSet, machine.instanceId));
    const refs = parseArm(armNicRefs, vm, `scale-set instance ${machine.id}`);
    if (!vm.etag) throw new AzureCallError({ kind: 'Other', code: 'UnexpectedResponse', message: `scale-set instance ${machine.id} came without an etag`, retryable: true }, 'vmssvm.get');
    const ref = refs.networkProfile.networkInterfaces.find((n) => n.primary) ?? refs.networkProfile.networkInterfaces[0]!;
    const nicName = parseArmId(ref.id).names.at(-1)!;
    // The instance model names the ip-configs (fresh, and its ETag guards the write); the addresses can
    // come from the scale set's NIC list when that copy names exactly the same ip-configs.
    const modelNames = (vm.networkProfileConfiguration?.networkInterfaceConfigurations ?? [])
      .find((c) => c.name.toLowerCase() === nicName.toLowerCase())?.ipConfigurations?.map((c) => c.name.toLowerCase());
    const listed = modelNames ? await this.scaleSetNicFromList(machine, ref.id) : undefined;
    if (listed && sameNames(listed.ipConfigurations.map((c) => c.name.toLowerCase()), modelNames!)) {
      return this.toNodeNic(machine, listed, vm.etag, vm);
    }
    const raw = await this.call(machine.subscriptionId, 'read', 'vmssnic.get', () =>
      network.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(machine.resourceGroup, machine.scaleSet, machine.instanceId, nicName));
    const nic = parseArm(armNic, raw, `network interface ${ref.id}`);
    return this.toNodeNic(machine, nic, vm.etag, vm);
  }

  /**
   * A scale set's NICs from one paged list (one read per page instead of one per instance). Each listed
   * copy serves once, and never for a NIC this adapter wrote after the list started: a copy must not
   * outlive a change we made (a removed ip-config name could have come back with another address).
   */
  private async scaleSetNicFromList(m: Extract<MachineRef, { kind: 'vmss' }>, nicId: string): Promise<z.output<typeof armNic> | undefined> {
    const k = `${m.subscriptionId}/${m.resourceGroup}/${m.scaleSet}`.toLowerCase();
    const nk = nicId.toLowerCase();
    let entry = this.scaleSetNics.get(k);
    if (!entry || (!entry.loading && !entry.byNic.has(nk) && Date.now() - entry.startedAt > this.nicIndexTtlMs / 6)) {
      const { network } = this.clients(m.subscriptionId);
      const startedAt = Date.now();
      const load = (async () => {
        const byNic = new Map<string, z.output<typeof armNic>>();
        const pages = network.networkInterfaces.listVirtualMachineScaleSetNetworkInterfaces(m.resourceGroup, m.scaleSet).byPage();
        for (;;) {
          const page = await this.call(m.subscriptionId, 'read', 'vmssnic.list', () => pages.next());
          if (page.done) break;
          for (const raw of page.value as NetworkInterface[]) {
            const parsed = armNic.safeParse(raw);
            if (parsed.success) byNic.set(parsed.data.id.toLowerCase(), parsed.data);
          }
          if (!getContinuationToken(page.value)) break;
        }
        return byNic;
      })();
      const fresh: { startedAt: number; byNic: Map<string, z.output<typeof armNic>>; loading: Promise<unknown> | undefined } = { startedAt, byNic: new Map(), loading: load };
      entry = fresh;
      this.scaleSetNics.set(k, fresh);
      try {
        fresh.byNic = await load;
      } catch {
        fresh.byNic = new Map();
      } finally {
        fresh.loading = undefined;
      }
    } else if (entry.loading) {
      await entry.loading.catch(() => {});
    }
    const hit = entry.byNic.get(nk);
    if (!hit) return undefined;
    entry.byNic.delete(nk);
    const written = this.lastWrite.get(nk);
    return written !== undefined && written >= entry.startedAt ? undefined : hit;
  }

  private toNodeNic(machine: MachineRef, nic: z.output<typeof armNic>, etag: string, raw: unknown): NodeNic {
    const ipConfigs = nic.ipConfigurations.map(viewOf);
    const primary = ipConfigs.find((c) => c.primary) ?? ipConfigs[0];
    return {
      machine,
      nicId: nic.id,
      etag,
      macAddress: (nic.macAddress ?? '').replace(/[-:]/g, '').replace(/(..)(?!$)/g, '$1:').toLowerCase(),
      primaryIP: primary?.privateIPAddress ?? '',
      ipConfigs,
      raw,
    };
  }

  async writeIpConfigs(nic: NodeNic, next: readonly IpConfigView[]): Promise<NodeNic> {
    const m = nic.machine;
    if (m.kind === 'vmss') return this.writeScaleSetInstance(nic, next);
    const { network } = this.clients(m.subscriptionId);
    const current = nic.raw as NetworkInterface;
    const byName = new Map((current.ipConfigurations ?? []).map((c) => [c.name?.toLowerCase(), c]));
    const ipConfigurations: NetworkInterfaceIPConfiguration[] = next.map((c) =>
      byName.get(c.name.toLowerCase()) ?? {
        name: c.name,
        primary: false,
        privateIPAllocationMethod: 'Dynamic',
        privateIPAddressVersion: 'IPv4',
        subnet: { id: c.subnetId },
        ...(c.prefixLength === undefined ? {} : { privateIPAddressPrefixLength: c.prefixLength }),
      });
    const id = parseArmId(nic.nicId);
    const body: NetworkInterface = { ...current, ipConfigurations };
    const after = await this.call(m.subscriptionId, 'write', 'nic.put', async () => {
      const poller = await network.networkInterfaces.beginCreateOrUpdate(id.resourceGroup, id.names.at(-1)!, body, {
        requestOptions: { customHeaders: { [IF_MATCH_MARKER]: nic.etag } },
        updateIntervalInMs: this.pollIntervalMs,
      });
      return poller.pollUntilDone();
    });
    const parsed = parseArm(armNic, after, `network interface ${nic.nicId}`);
    return this.toNodeNic(m, parsed, parsed.etag, parsed);
  }

  private async writeScaleSetInstance(nic: NodeNic, next: readonly IpConfigView[]): Promise<NodeNic> {
    const m = nic.machine as Extract<MachineRef, { kind: 'vmss' }>;
    const { compute } = this.clients(m.subscriptionId);
    const vm = structuredClone(nic.raw) as VirtualMachineScaleSetVM;
    const configs = vm.networkProfileConfiguration?.networkInterfaceConfigurations ?? [];
    const nicName = parseArmId(nic.nicId).names.at(-1)!.toLowerCase();
    const target = configs.find((c) => c.name.toLowerCase() === nicName) ?? configs.find((c) => c.primary) ?? configs[0];
    if (!target) {
      throw new AzureCallError({ kind: 'Other', code: 'UnexpectedResponse', message: `scale-set instance ${m.id} has no networkProfileConfiguration`, retryable: false }, 'vmssvm.put');
    }
    const byName = new Map((target.ipConfigurations ?? []).map((c) => [c.name.toLowerCase(), c]));
    target.ipConfigurations = next.map((c) =>
      byName.get(c.name.toLowerCase()) ?? { name: c.name, primary: false, privateIPAddressVersion: 'IPv4', subnet: { id: c.subnetId } });
    this.lastWrite.set(nic.nicId.toLowerCase(), Date.now());
    // arm-compute drops privateIPAddressPrefixLength: blockPrefixPolicy puts it back for the names listed.
    const blockNames = next.filter((c) => c.prefixLength !== undefined).map((c) => c.name);
    const requestOptions = blockNames.length > 0 ? { requestOptions: { headers: { [BLOCK_IP_CONFIGS_MARKER]: blockNames.join(',') } } } : {};
    await this.call(m.subscriptionId, 'write', 'vmssvm.put', () =>
      compute.virtualMachineScaleSetVMs.update(m.resourceGroup, m.scaleSet, m.instanceId, vm, { ifMatch: nic.etag, updateIntervalInMs: this.pollIntervalMs, ...requestOptions }) as unknown as Promise<VirtualMachineScaleSetVM>);
    // The instance model carries no addresses: read the NIC back. The instance's new ETag is read with
    // the model at the next round, so the object returned here is for status, not for another write.
    const { network } = this.clients(m.subscriptionId);
    const raw = await this.call(m.subscriptionId, 'read', 'vmssnic.get', () =>
      network.networkInterfaces.getVirtualMachineScaleSetNetworkInterface(m.resourceGroup, m.scaleSet, m.instanceId, parseArmId(nic.nicId).names.at(-1)!));
    const after = parseArm(armNic, raw, `network interface ${nic.nicId}`);
    return this.toNodeNic(m, after, '', undefined);
  }

  async getSubnet(subnetId: string, opts: { blocks?: boolean } = {}): Promise<SubnetDetails> {
    const id = parseArmId(subnetId);
    const [vnetName, subnetName] = id.names;
    const { network } = this.clients(id.subscriptionId);
    // The subnet GET lists every ip-config in it (its headroom); the VNet GET gives the address space.
    const [subnetRead, rawVnet] = await Promise.all([
      this.call(id.subscriptionId, 'read', 'subnet.get', () => network.subnets.get(id.resourceGroup, vnetName!, subnetName!)).then(
        (raw) => ({ raw }),
        (e: unknown) => ({ error: e }),
      ),
      this.call(id.subscriptionId, 'read', 'vnet.get', () => network.virtualNetworks.get(id.resourceGroup, vnetName!)),
    ]);
    const vnet = parseArm(armVnet, rawVnet, `virtual network of ${subnetId}`);
    const vnetAddressPrefixes = vnet.addressSpace?.addressPrefixes ?? [];
    if ('error' in subnetRead) {
      const e = subnetRead.error;
      // A role from before subnets/read was needed: keep serving from the VNet's copy of the subnet, without headroom.
      if (!(e instanceof AzureCallError && e.failure.code === 'AuthorizationFailed')) throw e;
      const found = vnet.subnets.find((x) => x.name?.toLowerCase() === subnetName!.toLowerCase());
      if (!found) throw new AzureCallError({ kind: 'NotFound', code: 'NotFound', message: `subnet ${subnetId} does not exist` }, 'vnet.get');
      const subnet = parseArm(armSubnet, found, `subnet ${subnetId}`);
      return {
        id: subnet.id, addressPrefix: subnet.addressPrefix, gatewayIP: azureGateway(parseCIDR(subnet.addressPrefix)), vnetAddressPrefixes,
        headroomUnknown: `cannot read subnet ${subnetId} (${e.failure.message}); the role needs Microsoft.Network/virtualNetworks/subnets/read`,
      };
    }
    const subnet = parseArm(armSubnet, subnetRead.raw, `subnet ${subnetId}`);
    const cidr = parseCIDR(subnet.addressPrefix);
    return {
      id: subnet.id,
      addressPrefix: subnet.addressPrefix,
      gatewayIP: azureGateway(cidr),
      vnetAddressPrefixes,
      ...(opts.blocks
        ? blockHeadroom(cidr.size, subnet.ipConfigurations.map((c) => String((c as { id?: unknown } | null)?.id ?? '')))
        : { freeIPs: Math.max(0, cidr.size - AZURE_RESERVED_PER_SUBNET - subnet.ipConfigurations.length) }),
    };
  }

}
