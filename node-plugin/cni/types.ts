import { z } from 'zod';
import { IPv4Address } from '../../crds/api/common.js';

/**
 * The CNI protocol's data, as zod schemas: the environment the runtime sets, the plugin configuration on
 * stdin, results in every spec version the plugin claims, and error codes. Versions 0.1.0 through 1.1.0
 * are accepted; results are produced in the version the configuration asks for.
 */

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

/** Error codes from the spec (0-99) and PodVNet's own (100 and up, as the spec reserves them for plugins). */
export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableLimitedConnectivity: 51,
  /** CHECK found the pod's network differs from what ADD set up. */
  CheckFailed: 100,
  /** The datapath (bridge, veth, routes) could not be set up or torn down. */
  DatapathFailed: 101,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, message: string, readonly details?: string) {
    super(message);
    this.name = 'CniError';
  }
}

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

/** Linux interface names: 1-15 bytes, not "." or "..", no "/", ":" or whitespace. */
export const InterfaceName = z
  .string()
  .min(1, { message: 'must not be empty' })
  .max(15, { message: 'must be at most 15 characters (the kernel limit)' })
  .regex(/^[^/:\s]+$/, { message: 'must not contain "/", ":" or whitespace' })
  .refine((s) => s !== '.' && s !== '..', { message: 'must not be "." or ".."' });

export const ContainerID = z
  .string()
  .min(1, { message: 'must not be empty' })
  .max(256)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'must be alphanumeric plus "_", "." and "-", starting alphanumeric' });

export const NetnsPath = z.string().min(1).regex(/^\//, { message: 'must be an absolute path' });

/** A CIDR address with the host bits kept, as CNI results carry it: 10.0.0.5/24. */
export const IPv4WithPrefix = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/([0-9]|[12][0-9]|3[0-2])$/, { message: 'must be an IPv4 address with prefix length' });

export const ResultInterface = z.looseObject({
  name: z.string(),
  mac: z.string().optional(),
  mtu: z.int().optional(),
  sandbox: z.string().optional(),
  socketPath: z.string().optional(),
  pciID: z.string().optional(),
});

export const ResultIP = z.looseObject({
  version: z.string().optional(),
  address: z.string(),
  gateway: z.string().optional(),
  interface: z.int().min(0).optional(),
});

export const ResultRoute = z.looseObject({ dst: z.string(), gw: z.string().optional() });

export const DNS = z.looseObject({
  nameservers: z.array(z.string()).optional(),
  domain: z.string().optional(),
  search: z.array(z.string()).optional(),
  options: z.array(z.string()).optional(),
});

/** Results of spec 0.3.0 and later (0.3.x and 0.4.0 carry ips[].version; 1.x does not). */
export const Result = z.looseObject({
  cniVersion: z.string().optional(),
  interfaces: z.array(ResultInterface).optional(),
  ips: z.array(ResultIP).optional(),
  routes: z.array(ResultRoute).optional(),
  dns: DNS.optional(),
});
export type Result = z.infer<typeof Result>;

export const ValidAttachment = z.looseObject({ containerID: z.string().min(1), ifname: z.string().min(1) });
export type ValidAttachment = z.infer<typeof ValidAttachment>;

/**
 * The plugin configuration the runtime passes on stdin (one entry of a conflist, with name and cniVersion
 * filled in). Unknown fields are allowed, as the spec asks; `ipam` is not, because the agent allocates.
 */
export const PluginConfig = z.looseObject({
  cniVersion: z.string().optional(),
  name: z.string().min(1).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, {
    message: 'must be alphanumeric plus "_", "." and "-"',
  }),
  type: z.string().min(1),
  agentSocket: z.string().regex(/^\//, { message: 'must be an absolute path' }).optional(),
  /** Read by the executable only: where it queues a DEL the agent cannot take (README, "The CNI executable"). */
  delQueueDir: z.string().regex(/^\//, { message: 'must be an absolute path' }).optional(),
  mtu: z.int().min(576).max(9216).optional(),
  dns: DNS.optional(),
  args: z.record(z.string(), z.unknown()).optional(),
  runtimeConfig: z.record(z.string(), z.unknown()).optional(),
  prevResult: z.unknown().optional(),
  'cni.dev/valid-attachments': z.array(ValidAttachment).optional(),
});
export type PluginConfig = z.infer<typeof PluginConfig>;

export { IPv4Address };
