// Long-running operations as ARM runs them: a write is accepted with `Azure-AsyncOperation` (and, for
// Compute, `Location`) URLs, the client polls them, and the operation ends after asyncDurationMs with
// Succeeded or Failed. Also the "another operation is in flight" answers for a busy resource.
import { randomUUID } from 'node:crypto';
import type { EmulatorConfig } from './config.js';
import { AzureError, errors } from './errors.js';
import { route, type Ctx, type Handler, type Route } from './http.js';

export interface OperationRecord {
  id: string;
  provider: 'Microsoft.Network' | 'Microsoft.Compute';
  name: string;
  subscriptionId: string;
  location: string;
  resourceId: string;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  startTime: string;
  endTime?: string;
  error?: { code: string; message: string; details: Array<{ code: string; message: string }> };
}

/** What a NIC or scale-set instance carries while an operation on it runs. */
export interface Busy { operationId: string; operationName: string; until: number }

/** What starting an operation needs to know of the write: who runs it, on what, and where. */
export interface OperationSpec {
  provider: OperationRecord['provider'];
  name: string;
  subscriptionId: string;
  location: string;
  resourceId: string;
}

const MAX_OPERATIONS = 50_000;
const API_VERSION_NETWORK = '2024-05-01';
const API_VERSION_COMPUTE = '2024-07-01';

export class Operations {
  private readonly operations = new Map<string, OperationRecord>();
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; complete: () => void }>();

  constructor(private readonly cfg: () => EmulatorConfig) {}

  get(id: string): OperationRecord | undefined { return this.operations.get(id); }

  all(): OperationRecord[] { return [...this.operations.values()]; }

  /** Ends every in-flight operation now; returns how many. */
  finishAll(): number {
    const all = [...this.pending.values()];
    for (const p of all) p.complete();
    return all.length;
  }

  /** Forgets the in-flight operations' timers (the emulator is closing). */
  stop(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  /** Starts an operation that finishes after asyncDurationMs; `finish` runs then and may return an error to fail it. */
  start(ctx: Ctx, spec: OperationSpec, finish: () => AzureError | undefined): { op: OperationRecord; headers: Record<string, string> } {
    const cfg = this.cfg();
    const op: OperationRecord = {
      id: randomUUID(), provider: spec.provider, name: spec.name, subscriptionId: spec.subscriptionId,
      location: spec.location.toLowerCase().replace(/\s+/g, ''), resourceId: spec.resourceId,
      status: 'InProgress', startTime: new Date().toISOString(),
    };
    this.operations.set(op.id, op);
    this.prune();
    const complete = () => {
      clearTimeout(timer);
      this.pending.delete(op.id);
      let err: AzureError | undefined;
      try { err = finish(); } catch (e) { err = e instanceof AzureError ? e : new AzureError(500, 'InternalServerError', String(e)); }
      op.endTime = new Date().toISOString();
      if (err) { op.status = 'Failed'; op.error = err.body().error; } else op.status = 'Succeeded';
    };
    const timer = setTimeout(complete, cfg.asyncDurationMs);
    timer.unref();
    this.pending.set(op.id, { timer, complete });
    const headers: Record<string, string> = { 'Azure-AsyncOperation': operationUrl(ctx, op, 'operations') };
    if (spec.provider === 'Microsoft.Compute') headers.Location = operationUrl(ctx, op, 'operationResults');
    if (cfg.asyncRetryAfterSeconds > 0) headers['Retry-After'] = String(cfg.asyncRetryAfterSeconds);
    return { op, headers };
  }

  /** What the resource carries while `op` runs: busy until it ends. */
  busyWith(op: OperationRecord): Busy {
    return { operationId: op.id, operationName: op.name, until: Date.now() + this.cfg().asyncDurationMs };
  }

  /** 429 RetryableErrorDueToAnotherOperation for a write to a resource another operation holds. */
  busyError(busy: Busy, resourceId: string): AzureError {
    const seconds = this.cfg().retryableRetryAfterSeconds || Math.max(1, Math.ceil((busy.until - Date.now()) / 1000));
    return errors.retryableDueToAnotherOperation(busy.operationName, busy.operationId, resourceId, seconds);
  }

  /**
   * A write to a busy resource: with concurrentWrite 'retryable' a 429 (thrown); with 'failedOperation'
   * the write is accepted and its operation fails with AnotherOperationInProgress (the headers returned).
   */
  refuseBusy(ctx: Ctx, spec: OperationSpec, busy: Busy): Record<string, string> {
    if (this.cfg().concurrentWrite === 'retryable') throw this.busyError(busy, spec.resourceId);
    return this.start(ctx, spec, () => errors.anotherOperationInProgress(busy.operationName, busy.operationId, spec.resourceId)).headers;
  }

  /** The status and result endpoints of both providers, which the SDK polls. */
  routes(): Route[] {
    const S = 'subscriptions/:sub';
    return [
      route('GET', `${S}/providers/microsoft.network/locations/:loc/operations/:op`, 'operation.get', this.getOperation('Microsoft.Network')),
      route('GET', `${S}/providers/microsoft.network/locations/:loc/operationresults/:op`, 'operationresult.get', this.getOperationResult('Microsoft.Network')),
      route('GET', `${S}/providers/microsoft.compute/locations/:loc/operations/:op`, 'operation.get', this.getOperation('Microsoft.Compute')),
      route('GET', `${S}/providers/microsoft.compute/locations/:loc/operationresults/:op`, 'operationresult.get', this.getOperationResult('Microsoft.Compute')),
    ];
  }

  /** Keeps memory flat in long benchmarks: forgets the oldest finished operations past a cap. */
  private prune(): void {
    if (this.operations.size <= MAX_OPERATIONS) return;
    for (const [id, op] of this.operations) {
      if (this.operations.size <= MAX_OPERATIONS * 0.9) break;
      if (op.status !== 'InProgress') this.operations.delete(id);
    }
  }

  private getOperation(provider: OperationRecord['provider']): Handler {
    return (_ctx, p) => {
      const op = this.operations.get(p.op!.toLowerCase());
      if (!op || op.provider !== provider || op.subscriptionId.toLowerCase() !== p.sub!.toLowerCase()) {
        throw new AzureError(404, 'OperationNotFound', `The operation '${p.op}' could not be found.`);
      }
      const headers: Record<string, string> = {};
      const retryAfter = this.cfg().asyncRetryAfterSeconds;
      if (op.status === 'InProgress' && retryAfter > 0) headers['Retry-After'] = String(retryAfter);
      if (provider === 'Microsoft.Network') {
        const body: Record<string, unknown> = { status: op.status };
        if (op.error) body.error = op.error;
        return { status: 200, body, headers };
      }
      const body: Record<string, unknown> = { startTime: op.startTime, status: op.status, name: op.id };
      if (op.endTime) body.endTime = op.endTime;
      if (op.error) body.error = op.error;
      return { status: 200, body, headers };
    };
  }

  private getOperationResult(provider: OperationRecord['provider']): Handler {
    return (ctx, p) => {
      const op = this.operations.get(p.op!.toLowerCase());
      if (!op || op.provider !== provider) throw new AzureError(404, 'OperationNotFound', `The operation '${p.op}' could not be found.`);
      if (op.status === 'InProgress') return { status: 202, headers: { Location: operationUrl(ctx, op, 'operationResults') } };
      if (op.status === 'Failed' && op.error) throw new AzureError(400, op.error.code, op.error.message, op.error.details);
      return { status: 204 };
    };
  }
}

/** Absolute, on the origin the client connected to, with the client's api-version. */
function operationUrl(ctx: Ctx, op: OperationRecord, kind: 'operations' | 'operationResults'): string {
  const api = ctx.url.searchParams.get('api-version') ?? (op.provider === 'Microsoft.Network' ? API_VERSION_NETWORK : API_VERSION_COMPUTE);
  return `${ctx.origin}/subscriptions/${op.subscriptionId}/providers/${op.provider}/locations/${op.location}/${kind}/${op.id}?api-version=${api}`;
}
