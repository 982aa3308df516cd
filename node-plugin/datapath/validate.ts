/** The datapath's input boundary: callers' NodeNetwork / PodInterface are parsed before any kernel work. */
import { z } from 'zod';
import { IPv4Address, IPv4CIDR } from '../../crds/api/common.js';
import { describeIssues } from '../../crds/api/validation.js';
import { cidrContains, parseCIDR } from '../../crds/ipv4.js';
import { encodeAlias } from './names.js';
import type { NodeNetwork, PodInterface, PodRef } from './types.js';

/** Linux interface names: 1..15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
export const IfName = z.string().regex(/^[^\s/:]{1,15}$/, 'must be 1-15 characters without "/", ":" or whitespace')
  .refine((s) => s !== '.' && s !== '..', 'must not be "." or ".."');

const MAC = z.string().regex(/^([0-9A-Fa-f]{2}[-:]){5}[0-9A-Fa-f]{2}$/, 'must be a MAC address like 00:0d:3a:12:34:56')
  .transform((s) => s.toLowerCase().replace(/-/g, ':'));

const NetnsRef = z.string().min(1).max(4096).regex(/^[^\s\0]+$/, 'must be a path or a name without whitespace');

const ContainerId = z.string().min(1).max(256).regex(/^[^\0\n]+$/, 'must not contain NUL or newline');

export const NodeNetworkSchema = z.strictObject({
  bridgeName: IfName,
  hostInterface: IfName,
  nicMAC: MAC,
  primaryIP: IPv4Address,
  podSubnet: IPv4CIDR,
  gatewayIP: IPv4Address,
  vnetPrefixes: z.array(IPv4CIDR).max(256),
  snat: z.strictObject({ enabled: z.boolean(), excludeCIDRs: z.array(IPv4CIDR).max(256) }),
  mtu: z.int().min(576).max(65535),
  hostNetns: NetnsRef.optional(),
}).refine((n) => n.bridgeName !== n.hostInterface, { message: 'bridgeName must differ from hostInterface', path: ['bridgeName'] });

export const PodInterfaceSchema = z.strictObject({
  containerId: ContainerId,
  netnsPath: NetnsRef,
  ifName: IfName,
  ip: IPv4Address,
  prefixLength: z.int().min(1).max(32),
});

/** Extra keys are ignored, so a listAttachments() entry can be passed to detachPod as is. */
export const PodRefSchema = z.object({
  containerId: ContainerId,
  ifName: IfName,
  netnsPath: NetnsRef.optional(),
  ip: IPv4Address.optional(),
});

function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw new TypeError(`datapath: invalid ${what}: ${describeIssues(r.error)}`);
  return r.data;
}

export const parseNodeNetwork = (n: NodeNetwork): NodeNetwork => parse(NodeNetworkSchema, n, 'NodeNetwork');

export function parsePodInterface(net: NodeNetwork, p: PodInterface): PodInterface {
  const pod = parse(PodInterfaceSchema, p, 'PodInterface');
  if (!cidrContains(parseCIDR(net.podSubnet), pod.ip)) {
    throw new TypeError(`datapath: invalid PodInterface: ip ${pod.ip} is not in the pod subnet ${net.podSubnet}`);
  }
  const alias = encodeAlias({ bridge: net.bridgeName, containerId: pod.containerId, ifName: pod.ifName, ip: pod.ip });
  if (Buffer.byteLength(alias) >= 256) {
    throw new TypeError(`datapath: invalid PodInterface: containerId is too long to record on the host veth (alias of ${Buffer.byteLength(alias)} bytes, Linux allows 255)`);
  }
  return pod;
}

export const parsePodRef = (p: PodRef): PodRef => parse(PodRefSchema, p, 'pod reference');
