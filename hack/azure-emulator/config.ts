// Runtime settings and fault rules, parsed with zod (library callers, admin endpoint, command line).
import { z } from 'zod';
import { ARM_DEFAULT_LIMITS, NETWORK_RP_WRITE_LIMITS } from './throttle.js';

const bucket = z.object({ capacity: z.number().int().min(1), refillPerSecond: z.number().min(0) });

export const configSchema = z.object({
  /** sync: PUT answers 200/201 Succeeded. async: Updating + Azure-AsyncOperation, done after asyncDurationMs. */
  mode: z.enum(['sync', 'async']),
  asyncDurationMs: z.number().int().min(0),
  /** Retry-After (seconds) on accepted LROs and InProgress polls; 0 leaves it out (the SDK then polls at its own interval). */
  asyncRetryAfterSeconds: z.number().int().min(0),
  latencyMs: z.number().int().min(0),
  latencyByKind: z.record(z.string(), z.number().int().min(0)),
  throttling: z.object({ enabled: z.boolean(), reads: bucket, writes: bucket }),
  /**
   * The Network RP's write limit per subscription and region (1,000 per 300 s), counted for
   * Microsoft.Network writes only and applied when throttling is enabled.
   */
  networkWriteLimit: z.object({ enabled: z.boolean(), limit: z.number().int().min(1), windowSeconds: z.number().int().min(1) }),
  /** Azure: 65,536 private IPs per virtual network; an ip-config with a /28 prefix counts once. */
  maxPrivateIpsPerVnet: z.number().int().min(1),
  requireAuth: z.boolean(),
  /** Only bearer tokens issued by the emulator's Entra token endpoint are accepted (implies requireAuth). */
  requireIssuedToken: z.boolean(),
  /** Entra clients (clientId -> secret) for the token endpoint; empty accepts any client. */
  entraClients: z.record(z.string(), z.string()),
  tokenLifetimeSeconds: z.number().int().min(1),
  /** A write to a NIC or instance with an operation in flight: 429 RetryableError, or an accepted operation that fails with AnotherOperationInProgress. */
  concurrentWrite: z.enum(['retryable', 'failedOperation']),
  /** Retry-After on RetryableError; 0 = the time left on the running operation, at least 1 s. */
  retryableRetryAfterSeconds: z.number().int().min(0),
  maxIpConfigsPerNic: z.number().int().min(1),
  allowMultipleSubnetsPerNic: z.boolean(),
  pageSize: z.number().int().min(1),
});
export type EmulatorConfig = z.infer<typeof configSchema>;

export const defaultConfig = (): EmulatorConfig => ({
  mode: 'sync',
  asyncDurationMs: 50,
  asyncRetryAfterSeconds: 0,
  latencyMs: 0,
  latencyByKind: {},
  throttling: { enabled: true, reads: { ...ARM_DEFAULT_LIMITS.reads }, writes: { ...ARM_DEFAULT_LIMITS.writes } },
  networkWriteLimit: { enabled: true, ...NETWORK_RP_WRITE_LIMITS },
  maxPrivateIpsPerVnet: 65_536,
  requireAuth: true,
  requireIssuedToken: false,
  entraClients: {},
  tokenLifetimeSeconds: 3599,
  concurrentWrite: 'retryable',
  retryableRetryAfterSeconds: 0,
  maxIpConfigsPerNic: 256,
  allowMultipleSubnetsPerNic: false,
  pageSize: 1000,
});

export const configPatchSchema = configSchema.extend({
  throttling: z.object({ enabled: z.boolean(), reads: bucket, writes: bucket }).partial(),
  networkWriteLimit: z.object({ enabled: z.boolean(), limit: z.number().int().min(1), windowSeconds: z.number().int().min(1) }).partial(),
}).partial().strict();
export type EmulatorConfigPatch = z.infer<typeof configPatchSchema>;

export const faultSchema = z.object({
  /** Request kind such as 'nic.put' or 'vmssvm.put' (see README); '*' or absent matches all. */
  kind: z.string().optional(),
  method: z.string().optional(),
  /** Only requests whose path contains this (case-insensitive). */
  pathContains: z.string().optional(),
  /** How many matching calls fail. */
  count: z.number().int().min(1).default(1),
  /** response: answer with the error now. operation: accept the write, then fail its long-running operation. */
  as: z.enum(['response', 'operation']).default('response'),
  status: z.number().int().min(400).max(599).default(500),
  code: z.string().default('InternalServerError'),
  message: z.string().default('Injected fault.'),
  details: z.array(z.object({ code: z.string(), message: z.string() })).default([]),
  retryAfterSeconds: z.number().int().min(0).optional(),
  retryAfterMs: z.number().int().min(0).optional(),
});
export type FaultRule = z.infer<typeof faultSchema>;
export type FaultRuleInput = z.input<typeof faultSchema>;
