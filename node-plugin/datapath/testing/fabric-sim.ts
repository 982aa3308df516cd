/**
 * A simulated Azure VNet fabric made of network namespaces, for tests and the local sandbox.
 *
 * What it reproduces of Azure (and why each matters to the datapath):
 * - A VM's NIC is `eth0` in the VM's namespace, with the NIC's MAC and primary IP; its default gateway is
 *   the subnet's first address.
 * - The fabric namespace joins all NICs. It delivers a packet for an IP only to the NIC holding that IP
 *   (a /32 route per ip-config plus a permanent neighbour entry with the NIC's MAC: it never ARPs, and a
 *   frame for a pod arrives with the NIC's MAC as destination, whatever the pod's own MAC is).
 * - It answers ARP from VMs with 12:34:56:78:9a:bc (every fabric port has that MAC; gateways are local
 *   addresses of the fabric, other NICs' IPs are answered by proxy ARP). IPs of the VNet that no NIC
 *   holds are blackholed: a pod IP never assigned to the NIC is not delivered (Azure too answers ARP for
 *   those, then drops the packets; the outcome is the same).
 * - It accepts frames from a NIC only with the NIC's MAC as source (iptables `mac` match in raw) and
 *   only with a source IP the NIC holds (strict reverse-path filtering against those /32 routes).
 * - "Outside" hosts sit on the Internet side: packets to them are forwarded only from NICs' primary IPs
 *   (what Azure's default outbound access does), and nothing from the Internet may open a connection
 *   into the VNet. So a pod reaches an outside host only through the node's SNAT.
 * Every namespace name carries a unique prefix; destroy() removes all of them (and thereby every link).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { azureGateway, cidrContains, intToIp, parseCIDR } from '../../../crds/ipv4.js';
import { ipBatch, ipBatchTolerant, run, runRaw } from '../exec.js';
import type { NodeNetwork } from '../types.js';

export const AZURE_FABRIC_MAC = '12:34:56:78:9a:bc';

export interface FabricOptions {
  vnetPrefixes: string[];
  /** Subnets (CIDRs inside the VNet). Each gets Azure's gateway (first address) in the fabric. */
  subnets: string[];
  /** Namespace name prefix; a random one by default. Keep it short (<= 8 characters). */
  prefix?: string;
  /** MTU of every NIC (Azure's default is 1500). */
  mtu?: number;
}

export interface SimVM {
  name: string;
  /** Namespace name (under /run/netns) and its path. */
  netns: string;
  netnsPath: string;
  hostInterface: 'eth0';
  mac: string;
  primaryIP: string;
  subnet: string;
  gatewayIP: string;
  mtu: number;
  /** A NodeNetwork for this VM with sensible defaults (pods in the VM's subnet unless podSubnet is given). */
  nodeNetwork(overrides?: Partial<NodeNetwork>): NodeNetwork;
}

export interface SimHost { name: string; netns: string; netnsPath: string; ip: string }

interface Port { dev: string; vm?: SimVM; ips: Set<string> }

export class Fabric {
  readonly netns: string;
  private readonly namespaces: string[] = [];
  private readonly ports = new Map<string, Port>();
  private nextPort = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  private constructor(readonly prefix: string, readonly vnetPrefixes: string[], readonly subnets: string[], readonly mtu: number) {
    this.netns = `${prefix}-fabric`;
  }

  static async create(opts: FabricOptions): Promise<Fabric> {
    const prefix = opts.prefix ?? `pv${randomBytes(3).toString('hex')}`;
    for (const s of opts.subnets) {
      if (!opts.vnetPrefixes.some((p) => cidrContains(parseCIDR(p), parseCIDR(s).network))) {
        throw new Error(`fabric-sim: subnet ${s} is not inside the VNet ${opts.vnetPrefixes.join(', ')}`);
      }
    }
    const f = new Fabric(prefix, opts.vnetPrefixes, opts.subnets, opts.mtu ?? 1500);
    try {
      await f.addNetns(f.netns);
      await f.sysctl(f.netns, {
        'net.ipv4.ip_forward': '1',
        'net.ipv4.conf.all.rp_filter': '1',
        'net.ipv4.conf.default.rp_filter': '1',
      });
      await ipBatch(f.netns, [
        'link set dev lo up',
        ...opts.subnets.map((s) => `addr add ${azureGateway(parseCIDR(s))}/32 dev lo`),
        ...opts.vnetPrefixes.map((p) => `route add blackhole ${p}`),
      ]);
      await run(f.netns, ['iptables-restore'], [
        '*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':SIM-NIC-MAC - [0:0]',
        '-A PREROUTING -j SIM-NIC-MAC', 'COMMIT',
        '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':SIM-EGRESS - [0:0]',
        '-A FORWARD -i out+ -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
        '-A FORWARD -i out+ -j DROP',
        '-A FORWARD -o out+ -j SIM-EGRESS',
        '-A SIM-EGRESS -j DROP',
        'COMMIT', '',
      ].join('\n'));
    } catch (e) {
      await f.destroy();
      throw e;
    }
    return f;
  }

  /** Runs fabric changes one at a time (iptables and the port table are shared). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Makes a namespace that destroy() removes; returns its name. For pods, VMs and hosts alike. */
  async addNetns(name: string): Promise<string> {
    if (this.destroyed) throw new Error('fabric-sim: destroyed');
    if (!name.startsWith(this.prefix)) name = `${this.prefix}-${name}`;
    await run(undefined, ['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    await ipBatch(name, ['link set dev lo up']);
    return name;
  }

  async addVM(spec: { name: string; mac: string; primaryIP: string; mtu?: number }): Promise<SimVM> {
    const subnet = this.subnets.find((s) => cidrContains(parseCIDR(s), spec.primaryIP));
    if (!subnet) throw new Error(`fabric-sim: ${spec.primaryIP} is in none of the subnets ${this.subnets.join(', ')}`);
    const c = parseCIDR(subnet);
    const gatewayIP = azureGateway(c);
    const mtu = spec.mtu ?? this.mtu;
    const netns = await this.addNetns(spec.name);
    const mac = spec.mac.toLowerCase();
    const vnetPrefixes = this.vnetPrefixes;
    const vm: SimVM = {
      name: spec.name, netns, netnsPath: `/run/netns/${netns}`, hostInterface: 'eth0', mac, primaryIP: spec.primaryIP,
      subnet, gatewayIP, mtu,
      nodeNetwork(o = {}) {
        const podSubnet = o.podSubnet ?? subnet;
        return {
          bridgeName: 'podvnet0', hostInterface: 'eth0', nicMAC: mac, primaryIP: spec.primaryIP, podSubnet,
          gatewayIP: azureGateway(parseCIDR(podSubnet)), vnetPrefixes: [...vnetPrefixes],
          snat: { enabled: true, excludeCIDRs: [] }, mtu, hostNetns: `/run/netns/${netns}`, ...o,
        };
      },
    };
    await this.serial(async () => {
      const dev = `vm${this.nextPort++}`;
      await ipBatch(this.netns, [
        `link add ${dev} address ${AZURE_FABRIC_MAC} mtu ${mtu} up type veth peer name eth0 address ${mac} mtu ${mtu} netns /run/netns/${netns}`,
        `route replace ${spec.primaryIP}/32 dev ${dev}`,
        `neigh replace ${spec.primaryIP} lladdr ${mac} dev ${dev} nud permanent`,
      ]);
      await this.portSysctls(dev);
      await run(this.netns, ['iptables', '-t', 'raw', '-A', 'SIM-NIC-MAC', '-i', dev, '-m', 'mac', '!', '--mac-source', mac, '-j', 'DROP']);
      await run(this.netns, ['iptables', '-I', 'SIM-EGRESS', '1', '-s', `${spec.primaryIP}/32`, '-j', 'ACCEPT']);
      this.ports.set(spec.name, { dev, vm, ips: new Set() });
    });
    await ipBatch(netns, [
      `addr add ${spec.primaryIP}/${c.prefixLength} dev eth0`,
      'link set dev eth0 up',
      `route add default via ${gatewayIP} dev eth0`,
    ]);
    return vm;
  }

  /** A plain host inside the VNet (a VM with nothing but its primary IP). */
  async addVnetHost(spec: { name: string; ip: string }): Promise<SimHost> {
    const mac = '02:' + randomBytes(5).toString('hex').match(/../g)!.join(':');
    const vm = await this.addVM({ name: spec.name, mac, primaryIP: spec.ip });
    return { name: vm.name, netns: vm.netns, netnsPath: vm.netnsPath, ip: spec.ip };
  }

  /**
   * The NIC's secondary ip-configs, as Azure has them now (the primary IP is implicit): addresses, or
   * blocks as Azure shows them ("10.1.2.16/28"), whose every address the fabric delivers to the NIC, as
   * Azure does for a block ip-config. The fabric delivers exactly these IPs to the VM from now on. An IP
   * held by another NIC is refused, as by Azure.
   */
  async setNicIPs(vmName: string, ips: string[]): Promise<void> {
    await this.serial(async () => {
      const port = this.ports.get(vmName);
      if (!port?.vm) throw new Error(`fabric-sim: no VM ${vmName}`);
      const want = new Set(expandBlocks(ips).filter((ip) => ip !== port.vm!.primaryIP));
      for (const ip of want) {
        if (!this.vnetPrefixes.some((p) => cidrContains(parseCIDR(p), ip))) throw new Error(`fabric-sim: ${ip} is outside the VNet`);
        for (const [name, other] of this.ports) {
          if (name !== vmName && (other.ips.has(ip) || other.vm?.primaryIP === ip)) throw new Error(`fabric-sim: ${ip} is already on ${name}'s NIC`);
        }
      }
      const lines: string[] = [];
      for (const ip of port.ips) if (!want.has(ip)) lines.push(`route del ${ip}/32 dev ${port.dev}`, `neigh del ${ip} dev ${port.dev}`);
      for (const ip of want) if (!port.ips.has(ip)) lines.push(`route replace ${ip}/32 dev ${port.dev}`, `neigh replace ${ip} lladdr ${port.vm!.mac} dev ${port.dev} nud permanent`);
      if (lines.length) await ipBatch(this.netns, lines);
      port.ips = want;
    });
  }

  /** A VM goes away (scale-in): its namespace, its port and every route to its IPs. */
  async removeVM(vmName: string): Promise<void> {
    await this.serial(async () => {
      const port = this.ports.get(vmName);
      if (!port?.vm) throw new Error(`fabric-sim: no VM ${vmName}`);
      const ips = [port.vm.primaryIP, ...port.ips];
      const pids = (await runRaw(undefined, ['ip', 'netns', 'pids', port.vm.netns])).stdout.split('\n').map(Number).filter((p) => p > 1);
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      await run(undefined, ['ip', 'netns', 'del', port.vm.netns]);
      this.namespaces.splice(this.namespaces.indexOf(port.vm.netns), 1);
      // The port went with the VM's end of the pair; drop the fabric's filter rules for it.
      await runRaw(this.netns, ['iptables', '-t', 'raw', '-D', 'SIM-NIC-MAC', '-i', port.dev, '-m', 'mac', '!', '--mac-source', port.vm.mac, '-j', 'DROP']);
      await runRaw(this.netns, ['iptables', '-D', 'SIM-EGRESS', '-s', `${port.vm.primaryIP}/32`, '-j', 'ACCEPT']);
      await ipBatchTolerantLines(this.netns, ips.map((ip) => `route del ${ip}/32`));
      this.ports.delete(vmName);
    });
  }

  vms(): SimVM[] {
    return [...this.ports.values()].flatMap((p) => (p.vm ? [p.vm] : []));
  }

  nicIPs(vmName: string): string[] {
    return [...(this.ports.get(vmName)?.ips ?? [])];
  }

  /** A host on the Internet side, reachable from the VNet only from NICs' primary IPs. */
  async addOutsideHost(spec: { name: string; ip: string }): Promise<SimHost> {
    if (this.vnetPrefixes.some((p) => cidrContains(parseCIDR(p), spec.ip))) throw new Error(`fabric-sim: outside host ${spec.ip} is inside the VNet`);
    const netns = await this.addNetns(spec.name);
    await this.serial(async () => {
      const dev = `out${this.nextPort++}`;
      await ipBatch(this.netns, [
        `link add ${dev} address ${AZURE_FABRIC_MAC} mtu ${this.mtu} up type veth peer name eth0 mtu ${this.mtu} netns /run/netns/${netns}`,
        `route replace ${spec.ip}/32 dev ${dev}`,
      ]);
      await this.portSysctls(dev);
      this.ports.set(spec.name, { dev, ips: new Set([spec.ip]) });
    });
    await ipBatch(netns, [`addr add ${spec.ip}/32 dev eth0`, 'link set dev eth0 up', 'route add default dev eth0']);
    return { name: spec.name, netns, netnsPath: `/run/netns/${netns}`, ip: spec.ip };
  }

  /** Runs a command inside one of this fabric's namespaces (name with or without the prefix). */
  exec(netns: string, argv: string[], input?: string): Promise<string> {
    return run(this.full(netns), argv, input);
  }

  execRaw(netns: string, argv: string[], input?: string) {
    return runRaw(this.full(netns), argv, input);
  }

  private full(netns: string): string {
    return netns.includes('/') || netns.startsWith(this.prefix) ? netns : `${this.prefix}-${netns}`;
  }

  /**
   * Deletes every namespace this fabric made (VMs, hosts, pods made with addNetns, the fabric), first
   * stopping any process still running inside one of them (test servers), which would keep it alive.
   */
  async destroy(): Promise<void> {
    this.destroyed = true;
    const names = this.namespaces.splice(0).reverse();
    const errors: string[] = [];
    for (const n of names) {
      if (!existsSync(`/run/netns/${n}`)) continue;
      const pids = (await runRaw(undefined, ['ip', 'netns', 'pids', n])).stdout.split('\n').map(Number).filter((p) => p > 1);
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      const r = await runRaw(undefined, ['ip', 'netns', 'del', n]);
      if (r.code !== 0) errors.push(`${n}: ${r.stderr.trim()}`);
    }
    if (errors.length) throw new Error(`fabric-sim: could not delete namespaces: ${errors.join('; ')}`);
  }

  /** Proxy ARP on every port, answering at once (Linux delays proxied replies by up to 0.8 s otherwise). */
  private portSysctls(dev: string): Promise<string> {
    return this.sysctl(this.netns, { [`net.ipv4.conf.${dev}.proxy_arp`]: '1', [`net.ipv4.neigh.${dev}.proxy_delay`]: '0' });
  }

  private sysctl(netns: string, values: Record<string, string>): Promise<string> {
    return run(netns, ['sysctl', '-q', '-w', ...Object.entries(values).map(([k, v]) => `${k}=${v}`)]);
  }
}

/** Routes may already be gone with the port; anything else is an error. */
async function ipBatchTolerantLines(ns: string, lines: string[]): Promise<void> {
  const errors = await ipBatchTolerant(ns, lines, [/No such process/, /Cannot find device/]);
  if (errors.length) throw new Error(`fabric-sim: ${errors.join('; ')}`);
}

export const createFabric = (opts: FabricOptions): Promise<Fabric> => Fabric.create(opts);

/** Addresses as they are; each block ("a.b.c.d/28") as every address in it. */
export function expandBlocks(entries: readonly string[]): string[] {
  return entries.flatMap((e) => {
    if (!e.includes('/')) return [e];
    const c = parseCIDR(e);
    return Array.from({ length: c.size }, (_, i) => intToIp(c.network + i));
  });
}
