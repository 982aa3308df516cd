// The emulated Azure resources and the rules for changing them. No HTTP here: the server
// parses requests, calls these methods, and renders the result.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { AddressPool, cidrContains, formatIPv4, parseCidr, parseIPv4 } from './address-pool.js';
import { AzureError, errors } from './errors.js';

export interface ResourceGroup { subscriptionId: string; name: string; location: string }

export interface Vnet {
  id: string; key: string; name: string; subscriptionId: string; resourceGroup: string; location: string;
  addressPrefixes: string[]; subnets: Map<string, Subnet>; etag: string; resourceGuid: string;
  /** Private IPs counted against the VNet's limit: an ip-config counts once, a /28 block too. */
  privateIps: number;
}

export interface Subnet {
  id: string; key: string; name: string; vnet: Vnet; addressPrefix: string; pool: AddressPool; etag: string;
}

export type AllocationMethod = 'Static' | 'Dynamic';

export interface IpConfig {
  readonly name: string;
  /** The address, or for a block its prefix as Azure shows it: "10.1.2.16/28". */
  readonly privateIPAddress: string;
  /** The address, or a block's first address. */
  readonly ip: number;
  /** Addresses held: 1, or 16 for a /28 block. */
  readonly size: number;
  /** Set for a block ip-config (privateIPAddressPrefixLength). */
  readonly prefixLength?: number;
  readonly allocation: AllocationMethod;
  readonly subnet: Subnet;
  readonly primary: boolean;
}

export interface VmssRef { scaleSet: ScaleSet; instance: ScaleSetInstance }

export interface Nic {
  id: string; key: string; name: string; subscriptionId: string; resourceGroup: string; location: string;
  etag: string; resourceGuid: string; macAddress: string; tags: Record<string, string>;
  ipConfigs: readonly IpConfig[];
  provisioningState: 'Succeeded' | 'Updating' | 'Failed' | 'Deleting';
  /** ARM id of the VM or scale-set instance using this NIC. */
  virtualMachineId?: string;
  /** Set for scale-set NICs: read-only in the network API, changed through the scale-set VM update. */
  vmss?: VmssRef;
  nodeName?: string;
  enableAcceleratedNetworking: boolean;
  enableIPForwarding: boolean;
  /** In-flight long-running operation on this NIC, if any. */
  busy?: { operationId: string; operationName: string; until: number };
}

export interface Vm {
  id: string; key: string; name: string; subscriptionId: string; resourceGroup: string; location: string;
  vmId: string; computerName: string; vmSize: string; nics: Nic[]; etag: number;
}

export interface ScaleSet {
  id: string; key: string; name: string; subscriptionId: string; resourceGroup: string; location: string;
  uniqueId: string; vmSize: string; computerNamePrefix: string; subnet: Subnet; nicConfigName: string;
  instances: Map<string, ScaleSetInstance>; nextInstanceId: number; etag: number;
}

export interface ScaleSetInstance {
  id: string; key: string; instanceId: string; scaleSet: ScaleSet; vmId: string; computerName: string;
  nics: Nic[]; etag: number; provisioningState: 'Succeeded' | 'Updating' | 'Failed';
  busy?: { operationId: string; operationName: string; until: number };
}

/** What a PUT asks for, one ip-config. */
export interface DesiredIpConfig {
  name: string;
  allocation: AllocationMethod;
  privateIPAddress?: string;
  subnetId?: string;
  primary?: boolean;
  version?: string;
  /** privateIPAddressPrefixLength: ask for a block instead of one address. */
  prefixLength?: number;
  /** The ip-config names a public IP address. */
  publicIp?: boolean;
}

export interface IpChangeEvent {
  nicId: string; macAddress: string; nodeName?: string;
  added: string[]; removed: string[];
}

export interface IpOwner {
  ip: string; nicId: string; macAddress: string; nodeName?: string; ipConfigName: string; primary: boolean; subnetId: string;
}

export interface StateOptions {
  maxIpConfigsPerNic: number;
  allowMultipleSubnetsPerNic: boolean;
  /** Azure: 65,536 private IP addresses per virtual network; a /28 block counts once. */
  maxPrivateIpsPerVnet?: number;
}

export const AZURE_MAX_PRIVATE_IPS_PER_VNET = 65_536;
/** The prefix lengths Azure accepts in privateIPAddressPrefixLength for IPv4 (block allocation uses /28). */
export const SUPPORTED_BLOCK_PREFIX_LENGTHS: readonly number[] = [28];

const releaseCfg = (c: IpConfig): void => { c.subnet.pool.releaseRange(c.ip, c.size); };
const takeCfg = (c: IpConfig): boolean => c.subnet.pool.takeRange(c.ip, c.size);

export const key = (id: string): string => id.toLowerCase().replace(/\/+$/, '');

export const ids = {
  rg: (sub: string, rg: string) => `/subscriptions/${sub}/resourceGroups/${rg}`,
  vnet: (sub: string, rg: string, name: string) => `${ids.rg(sub, rg)}/providers/Microsoft.Network/virtualNetworks/${name}`,
  nic: (sub: string, rg: string, name: string) => `${ids.rg(sub, rg)}/providers/Microsoft.Network/networkInterfaces/${name}`,
  vm: (sub: string, rg: string, name: string) => `${ids.rg(sub, rg)}/providers/Microsoft.Compute/virtualMachines/${name}`,
  vmss: (sub: string, rg: string, name: string) => `${ids.rg(sub, rg)}/providers/Microsoft.Compute/virtualMachineScaleSets/${name}`,
};

export const newNetworkEtag = (): string => `W/"${randomUUID()}"`;

/** Scale-set computer names: prefix plus the instance id in base 36, six digits (as AKS node names). */
export function scaleSetComputerName(prefix: string, instanceId: number): string {
  return `${prefix}${instanceId.toString(36).padStart(6, '0')}`;
}

export class EmulatorState extends EventEmitter {
  readonly resourceGroups = new Map<string, ResourceGroup>();
  readonly vnets = new Map<string, Vnet>();
  readonly subnets = new Map<string, Subnet>();
  readonly nics = new Map<string, Nic>();
  readonly vms = new Map<string, Vm>();
  readonly scaleSets = new Map<string, ScaleSet>();
  readonly instances = new Map<string, ScaleSetInstance>();
  private readonly ipIndex = new Map<string, { nic: Nic; cfg: IpConfig }>();
  /** Block ip-configs by their first address, so every address of a block finds its NIC. */
  private readonly blockIndex = new Map<number, { nic: Nic; cfg: IpConfig }>();
  private macCounter = 0;

  constructor(readonly options: StateOptions) { super(); }

  // ---- creation (scenario loader, admin API) ----

  ensureResourceGroup(subscriptionId: string, name: string, location: string): ResourceGroup {
    const k = key(ids.rg(subscriptionId, name));
    let rg = this.resourceGroups.get(k);
    if (!rg) { rg = { subscriptionId, name, location }; this.resourceGroups.set(k, rg); }
    return rg;
  }

  hasResourceGroup(subscriptionId: string, name: string): boolean {
    return this.resourceGroups.has(key(ids.rg(subscriptionId, name)));
  }

  hasSubscription(subscriptionId: string): boolean {
    const prefix = `/subscriptions/${subscriptionId.toLowerCase()}/`;
    for (const k of this.resourceGroups.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  createVnet(subscriptionId: string, rg: string, name: string, location: string, addressPrefixes: string[],
    subnets: Array<{ name: string; addressPrefix: string }>): Vnet {
    this.ensureResourceGroup(subscriptionId, rg, location);
    const id = ids.vnet(subscriptionId, rg, name);
    if (this.vnets.has(key(id))) throw new Error(`virtual network ${id} already exists`);
    const spaces = addressPrefixes.map((p) => {
      const c = parseCidr(p);
      if (!c) throw new Error(`invalid address prefix ${p} for ${id}`);
      return c;
    });
    const vnet: Vnet = {
      id, key: key(id), name, subscriptionId, resourceGroup: rg, location, addressPrefixes,
      subnets: new Map(), etag: newNetworkEtag(), resourceGuid: randomUUID(), privateIps: 0,
    };
    for (const s of subnets) {
      const c = parseCidr(s.addressPrefix);
      if (!c || !spaces.some((space) => cidrContains(space, c))) {
        throw new Error(`subnet ${s.name} prefix ${s.addressPrefix} is not inside ${addressPrefixes.join(', ')}`);
      }
      const subnetId = `${id}/subnets/${s.name}`;
      const subnet: Subnet = {
        id: subnetId, key: key(subnetId), name: s.name, vnet, addressPrefix: s.addressPrefix,
        pool: new AddressPool(s.addressPrefix), etag: vnet.etag,
      };
      vnet.subnets.set(s.name.toLowerCase(), subnet);
      this.subnets.set(subnet.key, subnet);
    }
    this.vnets.set(vnet.key, vnet);
    return vnet;
  }

  nextMacAddress(): string {
    const n = ++this.macCounter;
    const bytes = [0x00, 0x0d, 0x3a, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
    return bytes.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('-');
  }

  /** Creates a standalone VM with one NIC whose primary ip-config takes the lowest free address. */
  createVm(subscriptionId: string, rg: string, name: string, location: string, subnet: Subnet, opts: { vmSize?: string; secondaryIpConfigs?: number; nicName?: string } = {}): Vm {
    this.ensureResourceGroup(subscriptionId, rg, location);
    const id = ids.vm(subscriptionId, rg, name);
    if (this.vms.has(key(id))) throw new Error(`virtual machine ${id} already exists`);
    const nic = this.putNic(ids.nic(subscriptionId, rg, opts.nicName ?? `${name}-nic`), {
      location, ipConfigs: ipConfigList(subnet.id, opts.secondaryIpConfigs ?? 0),
    }).nic;
    const vm: Vm = {
      id, key: key(id), name, subscriptionId, resourceGroup: rg, location, vmId: randomUUID(),
      computerName: name, vmSize: opts.vmSize ?? 'Standard_D4s_v5', nics: [nic], etag: 1,
    };
    nic.virtualMachineId = id;
    nic.nodeName = vm.computerName;
    this.vms.set(vm.key, vm);
    return vm;
  }

  createScaleSet(subscriptionId: string, rg: string, name: string, location: string, subnet: Subnet, opts: { vmSize?: string; computerNamePrefix?: string; nicConfigName?: string } = {}): ScaleSet {
    this.ensureResourceGroup(subscriptionId, rg, location);
    const id = ids.vmss(subscriptionId, rg, name);
    if (this.scaleSets.has(key(id))) throw new Error(`scale set ${id} already exists`);
    const ss: ScaleSet = {
      id, key: key(id), name, subscriptionId, resourceGroup: rg, location, uniqueId: randomUUID(),
      vmSize: opts.vmSize ?? 'Standard_D4s_v5', computerNamePrefix: opts.computerNamePrefix ?? name,
      subnet, nicConfigName: opts.nicConfigName ?? `${name}-nic`, instances: new Map(), nextInstanceId: 0, etag: 1,
    };
    this.scaleSets.set(ss.key, ss);
    return ss;
  }

  addScaleSetInstance(ss: ScaleSet, opts: { secondaryIpConfigs?: number } = {}): ScaleSetInstance {
    const n = ss.nextInstanceId++;
    const instanceId = String(n);
    const id = `${ss.id}/virtualMachines/${instanceId}`;
    const instance: ScaleSetInstance = {
      id, key: key(id), instanceId, scaleSet: ss, vmId: randomUUID(),
      computerName: scaleSetComputerName(ss.computerNamePrefix, n), nics: [], etag: 1, provisioningState: 'Succeeded',
    };
    const nic = this.putNic(`${id}/networkInterfaces/${ss.nicConfigName}`, {
      location: ss.location, ipConfigs: ipConfigList(ss.subnet.id, opts.secondaryIpConfigs ?? 0),
    }).nic;
    nic.vmss = { scaleSet: ss, instance };
    nic.virtualMachineId = id;
    nic.nodeName = instance.computerName;
    instance.nics.push(nic);
    ss.instances.set(instanceId, instance);
    this.instances.set(instance.key, instance);
    return instance;
  }

  // ---- network interface writes ----

  /**
   * Creates the NIC or replaces its whole ipConfigurations list. Dynamic addresses stay with
   * their ip-config name; new Dynamic ones take the lowest free address. All or nothing.
   * Returns the ip-configs that were there before, for rolling back a failed operation.
   */
  putNic(id: string, spec: { location: string; ipConfigs: DesiredIpConfig[]; tags?: Record<string, string>; enableAcceleratedNetworking?: boolean; enableIPForwarding?: boolean }):
    { nic: Nic; created: boolean; previous: readonly IpConfig[] } {
    const k = key(id);
    let nic = this.nics.get(k);
    const created = !nic;
    const next = this.planIpConfigs(nic, id, spec.ipConfigs);
    if (!nic) {
      const segments = id.split('/');
      nic = {
        id, key: k, name: segments[segments.length - 1]!, subscriptionId: segments[2]!, resourceGroup: segments[4]!,
        location: spec.location, etag: newNetworkEtag(), resourceGuid: randomUUID(), macAddress: this.nextMacAddress(),
        tags: spec.tags ?? {}, ipConfigs: [], provisioningState: 'Succeeded',
        enableAcceleratedNetworking: spec.enableAcceleratedNetworking ?? false,
        enableIPForwarding: spec.enableIPForwarding ?? false,
      };
      this.nics.set(k, nic);
    } else {
      if (spec.tags) nic.tags = spec.tags;
      if (spec.enableAcceleratedNetworking !== undefined) nic.enableAcceleratedNetworking = spec.enableAcceleratedNetworking;
      if (spec.enableIPForwarding !== undefined) nic.enableIPForwarding = spec.enableIPForwarding;
    }
    const previous = nic.ipConfigs;
    this.commitIpConfigs(nic, next);
    return { nic, created, previous };
  }

  /** Puts back ip-configs saved before a write (a failed long-running operation). */
  restoreIpConfigs(nic: Nic, previous: readonly IpConfig[]): void {
    const keep = new Set(previous.map((c) => c.ip));
    for (const c of nic.ipConfigs) if (!keep.has(c.ip)) releaseCfg(c);
    const restored: IpConfig[] = [];
    const current = new Set(nic.ipConfigs.map((c) => c.ip));
    for (const c of previous) {
      if (current.has(c.ip) || takeCfg(c)) restored.push(c);
      // else: someone else took the address meanwhile; that ip-config is lost, as a failed NIC would be.
    }
    this.commitIpConfigs(nic, restored);
  }

  deleteNic(nic: Nic): void {
    if (nic.virtualMachineId) throw errors.nicInUse(nic.id, nic.virtualMachineId);
    for (const c of nic.ipConfigs) releaseCfg(c);
    this.commitIpConfigs(nic, []);
    this.nics.delete(nic.key);
  }

  /**
   * The ip-configs a NIC PUT asks for, with their addresses: validated, kept where the name (and subnet and
   * kind) stays, Static ones taken, Dynamic ones the lowest free (blocks first). All or nothing: on a
   * refusal every address taken or released here is put back.
   */
  private planIpConfigs(nic: Nic | undefined, nicId: string, desired: DesiredIpConfig[]): IpConfig[] {
    const { subnets, implicitPrimary } = this.validateIpConfigs(nicId, desired);
    this.checkVnetLimit(nic, nicId, subnets);
    const old = nic?.ipConfigs ?? [];
    const keptAddress = keptAddresses(old, desired, subnets);
    const kept = new Set(keptAddress.filter((ip): ip is number => ip !== undefined));
    const undo: Array<() => void> = [];
    const fail = (e: AzureError): never => {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      throw e;
    };
    for (const o of old) {
      if (!kept.has(o.ip)) { releaseCfg(o); undo.push(() => takeCfg(o)); }
    }
    const result: Array<number | undefined> = [...keptAddress];
    desired.forEach((d, i) => {
      if (result[i] !== undefined || d.allocation !== 'Static') return;
      const subnet = subnets[i]!;
      const cfgId = `${nicId}/ipConfigurations/${d.name}`;
      const ip = d.privateIPAddress === undefined ? undefined : parseIPv4(d.privateIPAddress);
      if (ip === undefined) return fail(errors.invalidParameter(`IP configuration ${cfgId} is Static but has no valid privateIPAddress.`));
      if (!subnet.pool.contains(ip)) return fail(errors.privateIpNotInSubnet(d.privateIPAddress!, subnet.id, subnet.addressPrefix));
      if (subnet.pool.isReserved(ip)) return fail(errors.privateIpInReservedRange(d.privateIPAddress!, subnet.addressPrefix));
      if (!subnet.pool.take(ip)) {
        const owner = this.ipIndex.get(formatIPv4(ip));
        return fail(errors.privateIpIsAllocated(cfgId, d.privateIPAddress!, owner && owner.nic !== nic ? owner.nic.id : nicId));
      }
      undo.push(() => subnet.pool.release(ip));
      result[i] = ip;
    });
    // Blocks first: they need aligned room, single addresses fit anywhere. Azure refuses a subnet with
    // free addresses but no free aligned block as it refuses a full one (SubnetIsFull).
    let stillNeeded = desired.reduce((n, d, i) => n + (result[i] === undefined && d.allocation === 'Dynamic' ? ipConfigSize(d) : 0), 0);
    const order = desired.map((_, i) => i).sort((a, b) => ipConfigSize(desired[b]!) - ipConfigSize(desired[a]!));
    for (const i of order) {
      const d = desired[i]!;
      if (result[i] !== undefined) continue;
      const subnet = subnets[i]!;
      const size = ipConfigSize(d);
      const ip = size === 1 ? subnet.pool.takeLowest() : subnet.pool.takeLowestBlock(size);
      if (ip === undefined) fail(errors.subnetIsFull(subnet.name, subnet.addressPrefix, stillNeeded));
      undo.push(() => subnet.pool.releaseRange(ip!, size));
      result[i] = ip;
      stillNeeded -= size;
    }
    return desired.map((d, i) => toIpConfig(d, result[i]!, subnets[i]!, d.primary ?? implicitPrimary));
  }

  /** The checks of a NIC's desired ip-configs that need no address: count, names, primary, subnets, blocks. */
  private validateIpConfigs(nicId: string, desired: DesiredIpConfig[]): { subnets: Subnet[]; implicitPrimary: boolean } {
    if (desired.length > this.options.maxIpConfigsPerNic) {
      throw errors.tooManyIpConfigs(nicId, desired.length, this.options.maxIpConfigsPerNic);
    }
    const names = new Set<string>();
    for (const d of desired) {
      const n = d.name.toLowerCase();
      if (names.has(n)) throw errors.duplicateName(nicId, d.name);
      names.add(n);
    }
    const primaries = desired.filter((d) => d.primary === true).length;
    const implicitPrimary = desired.length === 1 && desired[0]!.primary === undefined;
    if (!(primaries === 1 || implicitPrimary)) throw errors.onePrimary(nicId);

    const subnets = desired.map((d) => {
      if (!d.subnetId) throw errors.badRequest(`IP configuration '${d.name}' of ${nicId} has no subnet.`);
      const subnet = this.subnets.get(key(d.subnetId));
      if (!subnet) throw errors.invalidResourceReference(d.subnetId, `${nicId}/ipConfigurations/${d.name}`);
      if (d.version && d.version.toLowerCase() !== 'ipv4') {
        throw errors.invalidParameter(`IP configuration '${d.name}': only IPv4 private addresses are emulated.`);
      }
      return subnet;
    });
    const wantsBlock = desired.some((d) => d.prefixLength !== undefined);
    // Block ip-configs: never the primary, never with a public IP, and the whole NIC in one subnet.
    desired.forEach((d, i) => {
      if (d.prefixLength === undefined) return;
      const cfgId = `${nicId}/ipConfigurations/${d.name}`;
      if (!SUPPORTED_BLOCK_PREFIX_LENGTHS.includes(d.prefixLength)) throw errors.unsupportedPrefixLength(cfgId, d.prefixLength);
      if (d.primary === true || (implicitPrimary && i === 0)) throw errors.prefixOnPrimary(cfgId);
      if (d.publicIp) throw errors.prefixWithPublicIp(cfgId);
      if (d.allocation !== 'Dynamic') throw errors.prefixNotDynamic(cfgId);
    });
    if ((wantsBlock || !this.options.allowMultipleSubnetsPerNic) && new Set(subnets).size > 1) throw errors.differentSubnets(nicId);
    return { subnets, implicitPrimary };
  }

  /** The VNet's private-IP limit: every ip-config counts once, a /28 block as one. */
  private checkVnetLimit(nic: Nic | undefined, nicId: string, subnets: readonly Subnet[]): void {
    const limit = this.options.maxPrivateIpsPerVnet ?? AZURE_MAX_PRIVATE_IPS_PER_VNET;
    const delta = new Map<Vnet, number>();
    for (const c of nic?.ipConfigs ?? []) delta.set(c.subnet.vnet, (delta.get(c.subnet.vnet) ?? 0) - 1);
    for (const sn of subnets) delta.set(sn.vnet, (delta.get(sn.vnet) ?? 0) + 1);
    for (const [vnet, d] of delta) {
      if (d > 0 && vnet.privateIps + d > limit) throw errors.vnetPrivateIpLimit(vnet.id, nicId, vnet.privateIps, d, limit);
    }
  }

  private commitIpConfigs(nic: Nic, next: IpConfig[]): void {
    const before = new Set(nic.ipConfigs.map((c) => c.privateIPAddress));
    const after = new Set(next.map((c) => c.privateIPAddress));
    for (const c of nic.ipConfigs) {
      c.subnet.vnet.privateIps--;
      if (after.has(c.privateIPAddress)) continue;
      if (this.ipIndex.get(c.privateIPAddress)?.nic === nic) this.ipIndex.delete(c.privateIPAddress);
      if (c.size > 1 && this.blockIndex.get(c.ip)?.nic === nic) this.blockIndex.delete(c.ip);
    }
    for (const c of next) {
      c.subnet.vnet.privateIps++;
      this.ipIndex.set(c.privateIPAddress, { nic, cfg: c });
      if (c.size > 1) this.blockIndex.set(c.ip, { nic, cfg: c });
    }
    nic.ipConfigs = next;
    nic.etag = newNetworkEtag();
    const added = [...after].filter((ip) => !before.has(ip));
    const removed = [...before].filter((ip) => !after.has(ip));
    if (added.length || removed.length) {
      const ev: IpChangeEvent = { nicId: nic.id, macAddress: nic.macAddress, added, removed };
      if (nic.nodeName !== undefined) ev.nodeName = nic.nodeName;
      this.emit('ipchange', ev);
    }
  }

  // ---- queries ----

  /** The NIC holding `ip`: as an address of its own, or as one of the 16 of a block (the fabric delivers both). */
  ipOwner(ip: string): IpOwner | undefined {
    const hit = this.ipIndex.get(ip) ?? this.blockOf(ip);
    if (!hit) return undefined;
    return ownerOf(hit.nic, hit.cfg);
  }

  private blockOf(ip: string): { nic: Nic; cfg: IpConfig } | undefined {
    if (this.blockIndex.size === 0) return undefined;
    const n = parseIPv4(ip);
    if (n === undefined) return undefined;
    for (const len of SUPPORTED_BLOCK_PREFIX_LENGTHS) {
      const size = 2 ** (32 - len);
      const hit = this.blockIndex.get(n - (n % size));
      if (hit) return hit;
    }
    return undefined;
  }

  /**
   * The ids of every ip-config holding an address of the subnet (Azure's subnet `ipConfigurations`), lowest
   * address first. Built from the subnet's bitmap and the IP index on each call: nothing is stored per
   * ip-config for it, and writes pay nothing.
   */
  subnetIpConfigIds(subnet: Subnet): string[] {
    const out: string[] = [];
    subnet.pool.forEachAllocated((ip) => {
      // A block is one ip-config, listed once at its first address.
      const hit = this.ipIndex.get(formatIPv4(ip)) ?? this.blockIndex.get(ip);
      if (hit && hit.cfg.subnet === subnet) out.push(`${hit.nic.id}/ipConfigurations/${hit.cfg.name}`);
    });
    return out;
  }

  ipOwners(): IpOwner[] {
    return [...this.ipIndex.values()].map(({ nic, cfg }) => ownerOf(nic, cfg));
  }
}

function ownerOf(nic: Nic, cfg: IpConfig): IpOwner {
  const o: IpOwner = {
    ip: cfg.privateIPAddress, nicId: nic.id, macAddress: nic.macAddress, ipConfigName: cfg.name,
    primary: cfg.primary, subnetId: cfg.subnet.id,
  };
  if (nic.nodeName !== undefined) o.nodeName = nic.nodeName;
  return o;
}

function ipConfigList(subnetId: string, secondaries: number): DesiredIpConfig[] {
  const list: DesiredIpConfig[] = [{ name: 'ipconfig1', allocation: 'Dynamic', subnetId, primary: true }];
  for (let i = 0; i < secondaries; i++) list.push({ name: `ipconfig${i + 2}`, allocation: 'Dynamic', subnetId, primary: false });
  return list;
}

/** For each desired ip-config, the address it keeps from the NIC's current one of the same name, if any. */
function keptAddresses(old: readonly IpConfig[], desired: DesiredIpConfig[], subnets: readonly Subnet[]): Array<number | undefined> {
  const oldByName = new Map(old.map((c) => [c.name.toLowerCase(), c]));
  return desired.map((d, i) => {
    const o = oldByName.get(d.name.toLowerCase());
    if (!o || o.subnet !== subnets[i]) return undefined;
    // A block stays a block and a single address a single address; switching kinds allocates anew.
    if ((d.prefixLength ?? 0) !== (o.prefixLength ?? 0)) return undefined;
    if (d.allocation === 'Dynamic') return o.ip;
    return d.privateIPAddress !== undefined && parseIPv4(d.privateIPAddress) === o.ip ? o.ip : undefined;
  });
}

function toIpConfig(d: DesiredIpConfig, ip: number, subnet: Subnet, primary: boolean): IpConfig {
  return {
    name: d.name,
    ip,
    size: ipConfigSize(d),
    privateIPAddress: d.prefixLength === undefined ? formatIPv4(ip) : `${formatIPv4(ip)}/${d.prefixLength}`,
    allocation: d.allocation,
    subnet,
    primary,
    ...(d.prefixLength === undefined ? {} : { prefixLength: d.prefixLength }),
  };
}

/** How many addresses an ip-config takes: one, or its block's. */
const ipConfigSize = (d: DesiredIpConfig): number => (d.prefixLength === undefined ? 1 : 2 ** (32 - d.prefixLength));
