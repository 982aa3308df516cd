/**
 * Azure failures sorted into the few kinds the controller treats differently. Pure: the adapter
 * extracts status, code, details and Retry-After from whatever the SDK threw and calls classify().
 */

export type AzureFailure =
  | { kind: 'Throttled'; retryAfterMs: number; code: string; message: string }
  | { kind: 'PreconditionFailed'; code: string; message: string }
  | { kind: 'Conflict'; retryAfterMs: number; code: string; message: string }
  | { kind: 'SubnetFull'; code: string; message: string }
  /** The NIC may hold ip-configs of one subnet only (IpConfigurationsOnSameNicCannotUseDifferentSubnets). */
  | { kind: 'SubnetNotAllowedOnNIC'; code: string; message: string }
  | { kind: 'NotFound'; code: string; message: string }
  | { kind: 'Other'; status?: number | undefined; code: string; message: string; retryable: boolean };

export interface RawAzureError {
  status?: number | undefined;
  code?: string | undefined;
  message?: string | undefined;
  details?: readonly { code?: string | undefined; message?: string | undefined }[] | undefined;
  /** Retry-After (seconds or an HTTP date) or retry-after-ms, as sent. */
  retryAfter?: string | undefined;
  retryAfterMs?: string | undefined;
}

export const DEFAULT_THROTTLE_MS = 10_000;
export const DEFAULT_CONFLICT_MS = 5_000;

export function parseRetryAfter(raw: RawAzureError, now = Date.now()): number | undefined {
  if (raw.retryAfterMs !== undefined && /^\d+$/.test(raw.retryAfterMs.trim())) return Number(raw.retryAfterMs.trim());
  const v = raw.retryAfter?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Azure's code when a NIC's ip-configs would span subnets and the platform does not allow it. */
export const DIFFERENT_SUBNETS_CODE = 'IpConfigurationsOnSameNicCannotUseDifferentSubnets';
const DIFFERENT_SUBNETS = DIFFERENT_SUBNETS_CODE.toLowerCase();
const ANOTHER_OPERATION = new Set(['anotheroperationinprogress', 'retryableerrorduetoanotheroperation']);

export function classify(raw: RawAzureError, now = Date.now()): AzureFailure {
  const code = raw.code ?? 'Unknown';
  const message = raw.message ?? code;
  const codes = [code, ...(raw.details ?? []).map((d) => d.code ?? '')].map((c) => c.toLowerCase());
  const retryAfter = parseRetryAfter(raw, now);

  if (codes.includes('subnetisfull')) return { kind: 'SubnetFull', code, message };
  // A 400 that no retry fixes: the platform keeps every ip-config of a NIC in the primary's subnet.
  if (codes.includes(DIFFERENT_SUBNETS)) return { kind: 'SubnetNotAllowedOnNIC', code, message };
  // A resource busy with another operation answers 409, or 429 with RetryableErrorDueToAnotherOperation:
  // that is about this one NIC, not the subscription's budget.
  if (codes.some((c) => ANOTHER_OPERATION.has(c))) return { kind: 'Conflict', retryAfterMs: retryAfter ?? DEFAULT_CONFLICT_MS, code, message };
  if (raw.status === 429) return { kind: 'Throttled', retryAfterMs: retryAfter ?? DEFAULT_THROTTLE_MS, code, message };
  if (raw.status === 412 || codes.includes('preconditionfailed')) return { kind: 'PreconditionFailed', code, message };
  if (raw.status === 409) return { kind: 'Conflict', retryAfterMs: retryAfter ?? DEFAULT_CONFLICT_MS, code, message };
  if (raw.status === 404 || codes.includes('resourcenotfound') || codes.includes('notfound')) return { kind: 'NotFound', code, message };
  const retryable = raw.status === undefined || raw.status >= 500 || raw.status === 408;
  return { kind: 'Other', status: raw.status, code, message, retryable };
}

/** An error carrying its classification, thrown by the Azure adapter. */
export class AzureCallError extends Error {
  constructor(readonly failure: AzureFailure, readonly operation: string) {
    super(`${operation}: ${failure.kind} (${failure.code}): ${failure.message}`);
    this.name = 'AzureCallError';
  }
}
