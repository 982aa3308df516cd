import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { NodeNetwork } from '../datapath/index.js';
import { NoFreeAddressError, PoolNotReadyError } from '../errors.js';
import { dockerIfName, kernelDockerVeths, type DockerVeths } from './docker-veth.js';
import {
  checkPoolOnNode,
  choosePool,
  DriverError,
  gatewayAddress,
  GLOBAL_ADDRESS_SPACE,
  inPool,
  LOCAL_ADDRESS_SPACE,
  noFreeAddressMessage,
  normalizeCIDR,
  parsePoolId,
  poolNotReadyError,
  rejectPreferredAddress,
  splitAddress,
  withPrefix,
} from './pool.js';
import {
  GATEWAY_ADDRESS_TYPE,
  IMPLEMENTS,
  PORT_MAP_OPTION,
  REQUEST_ADDRESS_TYPE,
  type ActivateResponse,
  type CreateEndpointResponse,
  type DefaultAddressSpaces,
  type EndpointOperInfoResponse,
  type IpamCapabilities,
  type JoinResponse,
  type Method,
  type NetworkCapabilities,
  type Request,
  type RequestAddressResponse,
  type RequestPoolResponse,
} from './protocol.js';
import type { CnmState, CnmStore, Lease } from './state.js';
import type { Datapath, PodAddressService } from './types.js';

/**
 * The azure-vnet network and IPAM driver: what each libnetwork call means for the node's address pool
 * (through the agent's PodAddressService), the datapath and the driver's own records.
 *
 * Addresses are leased in IPAM calls, before libnetwork says which endpoint they are for, so each lease gets
 * its own owner id (`cnm-<random>`): the agent and the datapath know it as (containerId = owner id,
 * ifName = dockerIfName(owner id)); CreateEndpoint finds the lease by its address and ties the endpoint to
 * that owner.
 */

type Handler<M extends Method> = (req: Request<M>) => Promise<unknown>;

/** How often (at most, on incoming calls) unbound leases are looked for, and how old one must be. */
const SWEEP_INTERVAL_MS = 60_000;
export const UNBOUND_LEASE_MAX_AGE_MS = 5 * 60_000;

const EMPTY = {};

export class CnmDriver {
  private reconciled: Promise<void> | undefined;

  constructor(
    private readonly addresses: PodAddressService,
    private readonly datapath: Datapath,
    private readonly store: CnmStore,
    private readonly log: Logger,
    private readonly veths: DockerVeths = kernelDockerVeths,
    private readonly now: () => number = Date.now,
  ) {
    void this.ready();
  }

  private lastSweep = 0;

  /**
   * Runs the start-up reconciliation once the agent can answer for its allocations (its record has a
   * status: before that, lookup() knows no address, and judging leases by it would be wrong).
   */
  private ready(): Promise<void> {
    if (this.reconciled) return this.reconciled;
    if (!this.addresses.nodeNetwork()) return Promise.resolve();
    this.reconciled = this.reconcile().catch((err: unknown) => {
      this.log.error({ err }, 'CNM start-up reconciliation failed; continuing with the recorded state');
    });
    return this.reconciled;
  }

  /** Resolves when the start-up reconciliation is done, or not possible yet (calls wait for it anyway). */
  whenReady(): Promise<void> {
    return this.ready();
  }

  async handle<M extends Method>(method: M, req: Request<M>): Promise<unknown> {
    await this.ready();
    if (this.now() - this.lastSweep >= SWEEP_INTERVAL_MS) {
      this.lastSweep = this.now();
      await this.sweepUnboundLeases().catch((err: unknown) => this.log.warn({ err }, 'sweep of unbound leases failed'));
    }
    const handler = this.handlers[method] as Handler<M>;
    return handler(req);
  }

  /**
   * libnetwork creates the endpoint right after it gets an address; a lease still without an endpoint long
   * after was lost on the way (the driver or dockerd died between the two) and is given back. Only in
   * pools that no other network driver uses (every RequestPool for it came with one of our networks),
   * since another driver's endpoints never reach this driver.
   */
  private async sweepUnboundLeases(): Promise<void> {
    const state = this.store.state;
    const bound = new Set(Object.values(state.endpoints).map((e) => e.owner));
    const ourNetworks = (pool: string) => Object.values(state.networks).filter((n) => n.pool === pool).length;
    for (const [owner, lease] of Object.entries(state.leases)) {
      if (!lease.ip || bound.has(owner) || this.now() - lease.since < UNBOUND_LEASE_MAX_AGE_MS) continue;
      const pool = state.pools[lease.poolId];
      if (!pool || pool.refs !== ourNetworks(pool.pool)) continue;
      await this.addresses.release(addressOwner(owner));
      await this.store.update((s) => {
        delete s.leases[owner];
      });
      this.log.warn({ owner, ip: lease.ip, ageMs: this.now() - lease.since }, 'gave back an address no endpoint ever used');
    }
  }

  private readonly handlers: { [M in Method]: Handler<M> } = {
    'Plugin.Activate': async (): Promise<ActivateResponse> => ({ Implements: IMPLEMENTS }),
    'NetworkDriver.GetCapabilities': async (): Promise<NetworkCapabilities> => ({ Scope: 'local', ConnectivityScope: 'local' }),
    'IpamDriver.GetCapabilities': async (): Promise<IpamCapabilities> => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': async (): Promise<DefaultAddressSpaces> => ({
      LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE,
      GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE,
    }),

    'IpamDriver.RequestPool': async (req): Promise<RequestPoolResponse> => {
      const choice = choosePool(req, this.addresses.nodeNetwork());
      await this.store.update((s) => {
        const prev = s.pools[choice.poolId];
        s.pools[choice.poolId] = { pool: choice.pool, refs: (prev?.refs ?? 0) + 1 };
      });
      return { PoolID: choice.poolId, Pool: choice.pool, Data: {} };
    },

    'IpamDriver.ReleasePool': async (req) => {
      parsePoolId(req.PoolID);
      await this.store.update((s) => {
        const prev = s.pools[req.PoolID];
        if (!prev) return;
        if (prev.refs <= 1) delete s.pools[req.PoolID];
        else prev.refs -= 1;
      });
      return EMPTY;
    },

    'IpamDriver.RequestAddress': async (req): Promise<RequestAddressResponse> => {
      const node = this.addresses.nodeNetwork();
      if (req.Options?.[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE) {
        return { Address: gatewayAddress(req.PoolID, node, req.Address || undefined), Data: {} };
      }
      if (req.Address) rejectPreferredAddress(req.Address);
      const { pool, prefixLength } = checkPoolOnNode(req.PoolID, node);
      return { Address: await this.lease(req.PoolID, pool, prefixLength), Data: {} };
    },

    'IpamDriver.ReleaseAddress': async (req) => {
      const found = findLease(this.store.state, req.Address, req.PoolID);
      if (!found) {
        await this.releaseUnrecorded(req.Address);
        return EMPTY; // the gateway, or already released
      }
      await this.addresses.release(addressOwner(found.owner));
      await this.store.update((s) => {
        delete s.leases[found.owner];
      });
      this.log.info({ owner: found.owner, ip: req.Address }, 'released container address');
      return EMPTY;
    },

    'NetworkDriver.CreateNetwork': async (req) => {
      if (req.IPv6Data?.length) {
        throw new DriverError('azure-vnet: IPv6 is not supported: Azure secondary IPs for pods are IPv4 only; create the network without --ipv6');
      }
      const node = this.requireNode();
      const podSubnet = normalizeCIDR(node.podSubnet);
      const v4 = req.IPv4Data ?? [];
      if (v4.length !== 1) {
        throw new DriverError(
          `azure-vnet: a network has exactly one IPv4 subnet, this node's pod subnet ${podSubnet}; got ${v4.length}: ` +
            `use --ipam-driver=azure-vnet --subnet=${podSubnet}`,
        );
      }
      const data = v4[0]!;
      if (data.AddressSpace && data.AddressSpace !== LOCAL_ADDRESS_SPACE && data.AddressSpace !== GLOBAL_ADDRESS_SPACE) {
        throw new DriverError(
          `azure-vnet: the network's addresses come from another IPAM driver (address space ${data.AddressSpace}); ` +
            `containers must get the node's VNet IPs: use --ipam-driver=azure-vnet --subnet=${podSubnet}`,
        );
      }
      let pool: string;
      try {
        pool = normalizeCIDR(data.Pool);
      } catch {
        throw new DriverError(`azure-vnet: subnet ${JSON.stringify(data.Pool)} is not an IPv4 CIDR; use --subnet=${podSubnet}`);
      }
      if (pool !== podSubnet) {
        throw new DriverError(
          `azure-vnet: subnet ${data.Pool} is not this node's pod subnet ${podSubnet}: use --ipam-driver=azure-vnet ` +
            `--subnet=${podSubnet} so containers get the node's VNet IPs`,
        );
      }
      const gateway = data.Gateway ? data.Gateway.split('/')[0] : node.gatewayIP;
      if (gateway !== node.gatewayIP) {
        throw new DriverError(
          `azure-vnet: gateway ${gateway} is not Azure's gateway ${node.gatewayIP} of subnet ${podSubnet}; use ` +
            '--ipam-driver=azure-vnet and omit --gateway',
        );
      }
      await this.datapath.ensureNode(node);
      await this.store.update((s) => {
        s.networks[req.NetworkID] = { pool, gateway, prefixLength: splitAddress(pool).prefixLength };
      });
      this.log.info({ networkId: req.NetworkID, pool, gateway }, 'created network');
      return EMPTY;
    },

    'NetworkDriver.DeleteNetwork': async (req) => {
      await this.store.update((s) => {
        delete s.networks[req.NetworkID];
      });
      this.log.info({ networkId: req.NetworkID }, 'deleted network');
      return EMPTY;
    },

    'NetworkDriver.CreateEndpoint': async (req): Promise<CreateEndpointResponse> => {
      const network = this.requireNetwork(req.NetworkID);
      if (req.Interface?.AddressIPv6) throw new DriverError('azure-vnet: IPv6 is not supported: the endpoint must have no IPv6 address');
      if (!req.Interface?.Address) {
        throw new DriverError('azure-vnet: the endpoint has no IPv4 address: create the network with --ipam-driver=azure-vnet');
      }
      const { ip, prefixLength } = splitAddress(req.Interface.Address);
      const ports = req.Options?.[PORT_MAP_OPTION];
      if (Array.isArray(ports) && ports.length > 0) {
        throw new DriverError(
          `azure-vnet: publishing ports (-p/-P) is not supported: the container has its own VNet address (${ip}), ` +
            'reachable directly on its ports from the VNet; drop -p/-P (use an Azure load balancer or NSG rules for exposure)',
        );
      }
      if (!inPool(network.pool, ip)) throw new DriverError(`azure-vnet: address ${ip} is not in the network's subnet ${network.pool}`);
      const existing = this.store.state.endpoints[req.EndpointID];
      if (existing) {
        if (existing.ip === ip) return {};
        throw new DriverError(`azure-vnet: endpoint ${req.EndpointID} already exists with address ${existing.ip}`);
      }
      const lease = findLease(this.store.state, ip);
      if (!lease) {
        throw new DriverError(
          `azure-vnet: address ${ip} was not handed out by the azure-vnet IPAM driver; create the network with ` +
            '--ipam-driver=azure-vnet so containers get the node\'s VNet IPs',
        );
      }
      const taken = Object.entries(this.store.state.endpoints).find(([, e]) => e.owner === lease.owner);
      if (taken) throw new DriverError(`azure-vnet: address ${ip} is already used by endpoint ${taken[0]}`);
      await this.store.update((s) => {
        s.endpoints[req.EndpointID] = {
          networkId: req.NetworkID,
          ip,
          prefixLength,
          owner: lease.owner,
          mac: req.Interface?.MacAddress ?? '',
        };
      });
      this.log.info({ endpointId: req.EndpointID, ip, owner: lease.owner }, 'created endpoint');
      return {};
    },

    'NetworkDriver.EndpointOperInfo': async (req): Promise<EndpointOperInfoResponse> => {
      const ep = this.store.state.endpoints[req.EndpointID];
      if (!ep) return { Value: {} };
      return {
        Value: {
          ip: withPrefix(ep.ip, ep.prefixLength),
          ...(ep.mac ? { mac: ep.mac } : {}),
          ...(ep.hostVeth ? { hostVeth: ep.hostVeth } : {}),
          addressOwner: ep.owner,
        },
      };
    },

    'NetworkDriver.Join': async (req): Promise<JoinResponse> => {
      const network = this.requireNetwork(req.NetworkID);
      const ep = this.store.state.endpoints[req.EndpointID];
      if (!ep) throw new DriverError(`azure-vnet: unknown endpoint ${req.EndpointID} (it was not created through this driver)`);
      const node = this.requireNode();
      const veth = await this.veths.create(this.datapath, node, { owner: ep.owner, ip: ep.ip, prefixLength: ep.prefixLength });
      await this.store.update((s) => {
        const e = s.endpoints[req.EndpointID];
        if (!e) return;
        e.srcName = veth.srcName;
        e.hostVeth = veth.hostVeth;
        e.sandboxKey = req.SandboxKey;
        if (!e.mac) e.mac = veth.mac;
      });
      this.log.info({ endpointId: req.EndpointID, hostVeth: veth.hostVeth, sandbox: req.SandboxKey }, 'joined endpoint');
      return {
        InterfaceName: { SrcName: veth.srcName, DstPrefix: 'eth' },
        Gateway: network.gateway,
        StaticRoutes: [],
        DisableGatewayService: true,
      };
    },

    // libnetwork moves the interface back out of the container after Leave; DeleteEndpoint removes it.
    'NetworkDriver.Leave': async () => EMPTY,

    'NetworkDriver.DeleteEndpoint': async (req) => {
      const ep = this.store.state.endpoints[req.EndpointID];
      if (!ep) return EMPTY;
      const node = this.addresses.teardownNetwork();
      if (node) await this.veths.remove(this.datapath, node, { owner: ep.owner, ip: ep.ip });
      else this.log.warn({ endpointId: req.EndpointID }, 'node network unknown: cannot remove the endpoint\'s veth');
      await this.store.update((s) => {
        delete s.endpoints[req.EndpointID];
      });
      this.log.info({ endpointId: req.EndpointID, ip: ep.ip }, 'deleted endpoint');
      return EMPTY;
    },

    // Node discovery is for multi-host drivers; SNAT is node-wide (the datapath's), not per endpoint.
    'NetworkDriver.DiscoverNew': async () => EMPTY,
    'NetworkDriver.DiscoverDelete': async () => EMPTY,
    'NetworkDriver.ProgramExternalConnectivity': async () => EMPTY,
    'NetworkDriver.RevokeExternalConnectivity': async () => EMPTY,
  };

  /**
   * An address the driver has no lease for (its state was lost while containers ran): if the kernel still
   * has one of our Docker veths with it and the agent holds it for that veth's owner, both are given back,
   * so a lost state file does not leak addresses for ever. Anything less certain is left alone.
   */
  private async releaseUnrecorded(ip: string): Promise<void> {
    const node = this.addresses.teardownNetwork();
    if (!node) return;
    const att = (await this.datapath.listAttachments(node)).find((a) => a.ip === ip && a.containerId.startsWith('cnm-'));
    if (!att || att.ifName !== dockerIfName(att.containerId)) return;
    const owner = { containerId: att.containerId, ifName: att.ifName };
    if (this.addresses.lookup(owner)?.ip !== ip) return;
    await this.datapath.detachPod(node, { ...owner, ip });
    await this.addresses.release(owner);
    this.log.warn({ owner: att.containerId, ip }, 'released an address the driver had no record of (found by its veth)');
  }

  /** Records the lease before asking the agent, so a crash in between leaves something to clean up. */
  private async lease(poolId: string, pool: string, prefixLength: number): Promise<string> {
    const owner = `cnm-${randomBytes(12).toString('hex')}`;
    await this.store.update((s) => {
      s.leases[owner] = { poolId, since: this.now() };
    });
    let assigned;
    try {
      assigned = await this.addresses.acquire({ ...addressOwner(owner), runtime: 'cnm' });
    } catch (err) {
      await this.store.update((s) => {
        delete s.leases[owner];
      });
      if (err instanceof NoFreeAddressError) {
        this.log.warn({ pool, err }, 'no free address in the node pool');
        throw new DriverError(noFreeAddressMessage({ pool, cause: err.message }));
      }
      if (err instanceof PoolNotReadyError) throw new DriverError(`azure-vnet: ${err.message}`);
      throw err;
    }
    if (!inPool(pool, assigned.ip)) {
      await this.addresses.release(addressOwner(owner));
      await this.store.update((s) => {
        delete s.leases[owner];
      });
      throw new DriverError(`azure-vnet: the node agent handed out ${assigned.ip}, outside the network's subnet ${pool}; recreate the network`);
    }
    await this.store.update((s) => {
      s.leases[owner] = { poolId, since: s.leases[owner]?.since ?? this.now(), ip: assigned.ip, prefixLength };
    });
    this.log.info({ owner, ip: assigned.ip, pool }, 'leased container address');
    return withPrefix(assigned.ip, prefixLength);
  }

  /**
   * After a restart: an acquire that was in flight when the driver died was never answered, so libnetwork
   * did not get the address; give it back. A lease whose address the agent no longer holds for its owner
   * (a release that completed just before the crash) is dropped unless an endpoint still uses it.
   */
  private async reconcile(): Promise<void> {
    const leases = Object.entries(this.store.state.leases);
    const inUse = new Set(Object.values(this.store.state.endpoints).map((e) => e.owner));
    for (const [owner, lease] of leases) {
      const held = this.addresses.lookup(addressOwner(owner));
      if (!lease.ip) {
        if (held) await this.addresses.release(addressOwner(owner));
        await this.store.update((s) => {
          delete s.leases[owner];
        });
        this.log.info({ owner, ip: held?.ip }, 'gave back an address whose request was interrupted by a restart');
      } else if (!held && !inUse.has(owner)) {
        await this.store.update((s) => {
          delete s.leases[owner];
        });
        this.log.info({ owner, ip: lease.ip }, 'dropped a lease the agent no longer holds');
      } else if (!held || held.ip !== lease.ip) {
        this.log.error({ owner, recorded: lease.ip, agent: held?.ip }, 'the agent and the CNM driver disagree on an address in use');
      }
    }
  }

  private requireNode(): NodeNetwork {
    const node = this.addresses.nodeNetwork();
    if (!node) throw poolNotReadyError();
    return node;
  }

  private requireNetwork(networkId: string): CnmState['networks'][string] {
    const network = this.store.state.networks[networkId];
    if (!network) {
      throw new DriverError(`azure-vnet: unknown network ${networkId}: it was not created through this driver (or its state was lost)`);
    }
    return network;
  }
}

/** How the agent knows a lease: the lease id and the endpoint interface name derived from it. */
function addressOwner(owner: string): { containerId: string; ifName: string } {
  return { containerId: owner, ifName: dockerIfName(owner) };
}

function findLease(state: Readonly<CnmState>, ip: string, poolId?: string): (Lease & { owner: string }) | undefined {
  for (const [owner, lease] of Object.entries(state.leases)) {
    if (lease.ip === ip && (poolId === undefined || lease.poolId === poolId)) return { ...lease, owner };
  }
  return undefined;
}
