import { cidrContains, formatCIDR, ipToInt, parseCIDR } from '../../crds/ipv4.js';

/**
 * The IPAM decisions of the CNM driver, as pure functions of plain data: which pool a RequestPool maps to,
 * what the gateway is, what an address looks like on the wire, and what the user is told when it fails.
 * A Docker network on azure-vnet is the node's pod subnet, nothing else: its addresses are the node's
 * secondary IPs, handed out by the node agent, and its gateway is Azure's (the subnet's first address).
 */

/** The part of the node's network the IPAM decisions depend on. */
export interface PodSubnet {
  podSubnet: string;
  gatewayIP: string;
}

export const LOCAL_ADDRESS_SPACE = 'azure-vnet-local';
export const GLOBAL_ADDRESS_SPACE = 'azure-vnet-global';

/** A failure the user caused or must act on; its message goes to `docker` verbatim. */
export class DriverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DriverError';
  }
}

export interface PoolRequest {
  AddressSpace: string;
  Pool?: string | undefined;
  SubPool?: string | undefined;
  V6?: boolean | undefined;
  Options?: Record<string, string> | null | undefined;
}

export interface PoolChoice {
  poolId: string;
  pool: string;
}

/** Same address space and subnet give the same id, as libnetwork requires. */
export function poolIdFor(addressSpace: string, cidr: string): string {
  return `${addressSpace}/${cidr}`;
}

export function parsePoolId(poolId: string): { addressSpace: string; pool: string } {
  const m = /^(.+)\/(\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2})$/.exec(poolId);
  if (!m) throw new DriverError(`unknown pool id ${JSON.stringify(poolId)}: it was not handed out by the azure-vnet IPAM driver`);
  return { addressSpace: m[1]!, pool: normalizeCIDR(m[2]!) };
}

export function normalizeCIDR(cidr: string): string {
  return formatCIDR(parseCIDR(cidr));
}

/** The node's record has no status yet: nothing to hand out, and what to check. */
export function poolNotReadyError(): DriverError {
  return new DriverError(
    'azure-vnet: this node\'s IP pool is not ready yet: its NodeIPAllocation has no status (no NIC, subnet or IPs ' +
      'reported by the PodVNet controller). Check that the node is selected by a NodeIPPool and that the controller ' +
      'is running (kubectl get nodeipallocation <node> -o yaml), then retry.',
  );
}

/** Maps a RequestPool to the node's pod subnet, or says exactly why it cannot. */
export function choosePool(req: PoolRequest, node: PodSubnet | undefined): PoolChoice {
  if (req.V6 && !req.Pool) {
    throw new DriverError('azure-vnet: IPv6 is not supported: Azure secondary IPs for pods are IPv4 only; create the network without --ipv6');
  }
  if (req.SubPool) {
    throw new DriverError(
      `azure-vnet: --ip-range (${req.SubPool}) is not supported: containers get the node's free secondary IPs, ` +
        'which the PodVNet controller picks; omit --ip-range',
    );
  }
  if (!node) throw poolNotReadyError();
  const podSubnet = normalizeCIDR(node.podSubnet);
  if (!req.Pool) return { poolId: poolIdFor(req.AddressSpace, podSubnet), pool: podSubnet };
  let requested: string;
  try {
    requested = normalizeCIDR(req.Pool);
  } catch {
    throw new DriverError(
      `azure-vnet: --subnet ${JSON.stringify(req.Pool)} is not an IPv4 CIDR` +
        (req.V6 || req.Pool.includes(':') ? ' (IPv6 is not supported)' : '') +
        `; use this node's pod subnet: --subnet=${podSubnet}`,
    );
  }
  if (requested !== podSubnet) {
    throw new DriverError(
      `azure-vnet: --subnet=${req.Pool} does not match this node's pod subnet ${podSubnet}: a Docker network on ` +
        `azure-vnet is the Azure subnet the node's NodeIPPool gives pod IPs from; use --subnet=${podSubnet} (or omit --subnet)`,
    );
  }
  return { poolId: poolIdFor(req.AddressSpace, podSubnet), pool: podSubnet };
}

/** Checks that a pool id still names the node's pod subnet (the node may have moved to another pool). */
export function checkPoolOnNode(poolId: string, node: PodSubnet | undefined): { pool: string; prefixLength: number } {
  const { pool } = parsePoolId(poolId);
  if (!node) throw poolNotReadyError();
  const podSubnet = normalizeCIDR(node.podSubnet);
  if (pool !== podSubnet) {
    throw new DriverError(
      `azure-vnet: the network's subnet ${pool} is no longer this node's pod subnet (now ${podSubnet}); ` +
        `recreate the network with --subnet=${podSubnet}`,
    );
  }
  return { pool, prefixLength: parseCIDR(pool).prefixLength };
}

/**
 * The gateway libnetwork asks for when a network is created: Azure's, never an address from the pool.
 * A user-given --gateway must be that address, since Azure routes nothing else.
 */
export function gatewayAddress(poolId: string, node: PodSubnet | undefined, preferred?: string): string {
  const { prefixLength } = checkPoolOnNode(poolId, node);
  const gateway = node!.gatewayIP;
  if (preferred && preferred !== gateway) {
    throw new DriverError(
      `azure-vnet: --gateway=${preferred} is not Azure's gateway of the subnet; Azure routes only through ${gateway} ` +
        '(the subnet\'s first address); omit --gateway',
    );
  }
  return `${gateway}/${prefixLength}`;
}

/** Rejects a preferred container address: pod IPs are the node's free secondary IPs, picked by the agent. */
export function rejectPreferredAddress(address: string): never {
  throw new DriverError(
    `azure-vnet: a chosen address (${address}, from --ip or --aux-address) is not supported: containers get ` +
      'one of the node\'s free secondary IPs from the PodVNet agent; omit --ip/--aux-address',
  );
}

export function withPrefix(ip: string, prefixLength: number): string {
  return `${ip}/${prefixLength}`;
}

/** Splits "10.1.0.5/24" into its parts (the address keeps its host bits). */
export function splitAddress(address: string): { ip: string; prefixLength: number } {
  const [ip, len] = address.split('/');
  const prefixLength = Number(len);
  ipToInt(ip ?? '');
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) {
    throw new DriverError(`azure-vnet: ${JSON.stringify(address)} is not an address with a prefix length`);
  }
  return { ip: ip!, prefixLength };
}

export function inPool(pool: string, ip: string): boolean {
  return cidrContains(parseCIDR(pool), ip);
}

export interface NoFreeAddressContext {
  pool: string;
  /** What the agent said (it names the node and pool it knows). */
  cause: string;
}

/**
 * The answer when the node has no free secondary IP: what happened, that more are on the way, and what to
 * check if they do not come (instead of libnetwork's bare "No address returned"). The agent's own message
 * names the node and the numbers; when it already says what to check, it is not said twice.
 */
export function noFreeAddressMessage(ctx: NoFreeAddressContext): string {
  const cause = ctx.cause.trim().replace(/\.$/, '');
  const head = `azure-vnet: no free IP for this container: every secondary IP in this node's pool (subnet ${ctx.pool}) is in use`;
  // The agent's own advice (a cluster's NodeIPPool, or what to do on a standalone host) is not doubled.
  if (/NodeIPPool|if this persists/.test(cause)) return `${head}: ${cause}.`;
  return (
    `${head}${cause ? ` (${cause})` : ''}. The node agent has raised its demand and the PodVNet controller adds IPs to ` +
    'the node\'s NIC in batches: retry in a few seconds. If it keeps failing, check the NodeIPPool\'s max IPs per node ' +
    '(ipsPerNode.max: the node may be at its maximum) and that the Azure subnet has free addresses ' +
    '(kubectl describe nodeipallocation <node>).'
  );
}
