import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';

/**
 * Docker's libnetwork remote-driver protocol (network driver and IPAM driver) as zod schemas.
 *
 * Every call is an HTTP POST of a JSON body to `/<Interface>.<Method>` on the plugin's unix socket; the
 * answer is JSON with the content type below. A body that cannot be decoded gets an HTTP 400 with
 * `{"Err": ...}`; an operation that was understood but failed gets `{"Err": ...}` too (and "Error", the
 * field libnetwork's IPAM client reads) (libnetwork shows
 * the string to the user, so it must say what went wrong and what to do). Unknown methods get a 404,
 * which libnetwork treats as "not implemented" for the optional calls.
 *
 * dockerd's Go structs marshal nil maps and slices as `null`, so optional maps and lists accept `null`.
 */

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** What Plugin.Activate announces: one process is both the network driver and the IPAM driver. */
export const IMPLEMENTS = ['NetworkDriver', 'IpamDriver'] as const;

/** libnetwork's option key for the kind of address a RequestAddress asks for. */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
/** The value of REQUEST_ADDRESS_TYPE when libnetwork asks for the network's gateway. */
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway';
/** Endpoint option that carries the ports to publish (docker run -p/-P). */
export const PORT_MAP_OPTION = 'com.docker.network.portmap';

/** A request body that is not what the protocol says; answered with HTTP 400. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const ID = z.string().min(1, { message: 'must not be empty' }).max(256).regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/, {
  message: 'must be letters, digits and "_.:/-"',
});
const AnyMap = z.record(z.string(), z.unknown()).nullish();
const StringMap = z.record(z.string(), z.string()).nullish();
const IPv4 = z.string().regex(/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/, {
  message: 'must be an IPv4 address such as 10.1.0.4',
});
const IPv4WithPrefix = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/(3[0-2]|[12]?\d)$/, {
  message: 'must be an IPv4 address with a prefix length, such as 10.1.0.4/24',
});
const MAC = z.string().regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, { message: 'must be a MAC address such as 02:42:0a:01:00:04' });

/** One entry of CreateNetwork's IPv4Data/IPv6Data: what the IPAM driver handed out for the network. */
export const IPAMData = z.looseObject({
  AddressSpace: z.string().optional(),
  Pool: z.string().min(1, { message: 'must not be empty' }),
  Gateway: z.string().optional(),
  AuxAddresses: AnyMap,
});

const Empty = z.union([z.looseObject({}), z.null()]);

/** Request bodies by method. Methods with no payload accept an empty body, `{}` or `null`. */
export const Requests = {
  'Plugin.Activate': Empty,
  'NetworkDriver.GetCapabilities': Empty,
  'NetworkDriver.CreateNetwork': z.looseObject({
    NetworkID: ID,
    Options: AnyMap,
    IPv4Data: z.array(IPAMData).nullish(),
    IPv6Data: z.array(IPAMData).nullish(),
  }),
  'NetworkDriver.DeleteNetwork': z.looseObject({ NetworkID: ID }),
  'NetworkDriver.CreateEndpoint': z.looseObject({
    NetworkID: ID,
    EndpointID: ID,
    Options: AnyMap,
    Interface: z
      .looseObject({
        Address: z.union([IPv4WithPrefix, z.literal('')]).optional(),
        AddressIPv6: z.string().optional(),
        MacAddress: z.union([MAC, z.literal('')]).optional(),
      })
      .nullish(),
  }),
  'NetworkDriver.EndpointOperInfo': z.looseObject({ NetworkID: ID, EndpointID: ID }),
  'NetworkDriver.DeleteEndpoint': z.looseObject({ NetworkID: ID, EndpointID: ID }),
  'NetworkDriver.Join': z.looseObject({
    NetworkID: ID,
    EndpointID: ID,
    SandboxKey: z.string().regex(/^\//, { message: 'must be an absolute path to the sandbox network namespace' }),
    Options: AnyMap,
  }),
  'NetworkDriver.Leave': z.looseObject({ NetworkID: ID, EndpointID: ID }),
  'NetworkDriver.DiscoverNew': z.looseObject({ DiscoveryType: z.int(), DiscoveryData: z.unknown() }),
  'NetworkDriver.DiscoverDelete': z.looseObject({ DiscoveryType: z.int(), DiscoveryData: z.unknown() }),
  'NetworkDriver.ProgramExternalConnectivity': z.looseObject({ NetworkID: ID, EndpointID: ID, Options: AnyMap }),
  'NetworkDriver.RevokeExternalConnectivity': z.looseObject({ NetworkID: ID, EndpointID: ID }),
  'IpamDriver.GetCapabilities': Empty,
  'IpamDriver.GetDefaultAddressSpaces': Empty,
  'IpamDriver.RequestPool': z.looseObject({
    AddressSpace: z.string().min(1, { message: 'must not be empty' }),
    Pool: z.string().optional(),
    SubPool: z.string().optional(),
    Options: StringMap,
    V6: z.boolean().optional(),
  }),
  'IpamDriver.ReleasePool': z.looseObject({ PoolID: ID }),
  'IpamDriver.RequestAddress': z.looseObject({
    PoolID: ID,
    Address: z.union([IPv4, z.literal('')]).nullish(),
    Options: StringMap,
  }),
  'IpamDriver.ReleaseAddress': z.looseObject({ PoolID: ID, Address: IPv4 }),
} as const;

export type Method = keyof typeof Requests;
export type Request<M extends Method> = z.output<(typeof Requests)[M]>;
export const METHODS = Object.keys(Requests) as Method[];

export function isMethod(name: string): name is Method {
  return Object.hasOwn(Requests, name);
}

/** Parses a raw body (possibly empty) for `method`, or throws a ProtocolError naming the bad fields. */
export function parseRequest<M extends Method>(method: M, raw: string): Request<M> {
  let json: unknown = null;
  if (raw.trim() !== '') {
    try {
      json = JSON.parse(raw);
    } catch (err) {
      throw new ProtocolError(`${method}: request body is not JSON: ${(err as Error).message}`);
    }
  }
  const result = Requests[method].safeParse(json);
  if (!result.success) throw new ProtocolError(`${method}: invalid request: ${describeIssues(result.error)}`);
  return result.data as Request<M>;
}

// Responses (what dockerd decodes). Only fields libnetwork reads are listed.

export interface ActivateResponse { Implements: readonly string[] }
export interface NetworkCapabilities { Scope: 'local' | 'global'; ConnectivityScope: 'local' | 'global' }
export interface IpamCapabilities { RequiresMACAddress: boolean; RequiresRequestReplay: boolean }
export interface DefaultAddressSpaces { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string }
export interface RequestPoolResponse { PoolID: string; Pool: string; Data: Record<string, string> }
export interface RequestAddressResponse { Address: string; Data: Record<string, string> }
export interface CreateEndpointResponse { Interface?: { MacAddress?: string } }
export interface EndpointOperInfoResponse { Value: Record<string, unknown> }
export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  StaticRoutes: Array<{ Destination: string; RouteType: 0 | 1; NextHop?: string }>;
  DisableGatewayService: boolean;
}
/** A failure: network-driver calls are read from Err, IPAM calls from Error. */
export interface ErrorResponse { Err: string; Error: string }
