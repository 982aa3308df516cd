// The admin endpoint, /_emulator/...: the emulator's inspection and fault-injection API over HTTP, for
// tools and processes that do not hold the AzureEmulator object (the command line, the sandbox).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { EmulatorConfig, EmulatorConfigPatch, FaultRuleInput } from './config.js';
import { AzureError } from './errors.js';
import type { PendingFault } from './faults.js';
import { errorReply, type Reply } from './http.js';
import type { CallCounts } from './pipeline.js';
import { scenarioSchema, type ScenarioInput, type ScenarioResult } from './scenario.js';
import type { IpChangeEvent, IpOwner } from './state.js';

/** What the admin endpoint serves: the AzureEmulator's own methods. */
export interface AdminApi {
  readonly config: EmulatorConfig;
  dump(): Record<string, unknown>;
  configure(patch: EmulatorConfigPatch): EmulatorConfig;
  calls(): CallCounts;
  resetCalls(): void;
  pendingFaults(): PendingFault[];
  injectFault(rule: FaultRuleInput): string;
  clearFaults(): void;
  resetThrottling(): void;
  finishOperations(): number;
  loadScenario(input: ScenarioInput): ScenarioResult;
  ipOwners(): IpOwner[];
  ipOwner(ip: string): IpOwner | undefined;
  onIpChange(listener: (ev: IpChangeEvent) => void): () => void;
}

/** The reply to `method /_emulator/<segs>`; a bad request body is a 400 naming what is wrong. */
export function adminReply(emu: AdminApi, method: string, segs: string[], body: unknown): Reply {
  const path = segs.join('/').toLowerCase();
  const ok = (b: unknown, status = 200): Reply => ({ status, body: b });
  try {
    switch (`${method} ${path}`) {
      case 'GET state': return ok(emu.dump());
      case 'GET config': return ok(emu.config);
      case 'PATCH config': case 'POST config': return ok(emu.configure(body as EmulatorConfigPatch));
      case 'GET calls': return ok(emu.calls());
      case 'DELETE calls': case 'POST calls/reset': emu.resetCalls(); return ok(emu.calls());
      case 'GET faults': return ok(emu.pendingFaults());
      case 'POST faults': return ok({ id: emu.injectFault(body as FaultRuleInput) }, 201);
      case 'DELETE faults': emu.clearFaults(); return { status: 204 };
      case 'POST throttling/reset': emu.resetThrottling(); return { status: 204 };
      case 'POST operations/finish': return ok({ finished: emu.finishOperations() });
      case 'POST scenario': return ok(emu.loadScenario(scenarioSchema.parse(body ?? {})), 201);
      case 'GET ips': return ok(emu.ipOwners());
      default: {
        if (method === 'GET' && segs[0]?.toLowerCase() === 'ips' && segs[1]) {
          const o = emu.ipOwner(segs[1]);
          return o ? ok(o) : ok({ error: { code: 'NotFound', message: `no NIC holds ${segs[1]}` } }, 404);
        }
        return ok({ error: { code: 'NotFound', message: `no admin route ${method} /_emulator/${path}` } }, 404);
      }
    }
  } catch (e) {
    if (e instanceof z.ZodError) return ok({ error: { code: 'InvalidRequest', message: z.prettifyError(e) } }, 400);
    if (e instanceof AzureError) return errorReply(e);
    return ok({ error: { code: 'InvalidRequest', message: (e as Error).message } }, 400);
  }
}

/** GET /_emulator/events: true when the request is one (it is answered by `streamEvents`). */
export const isEventStream = (method: string | undefined, segs: string[]): boolean =>
  method === 'GET' && segs.length === 2 && segs[0]?.toLowerCase() === '_emulator' && segs[1]?.toLowerCase() === 'events';

/** NDJSON stream for other processes (the sandbox fabric): a snapshot line, then one line per change. */
export function streamEvents(emu: AdminApi, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.write(`${JSON.stringify({ type: 'snapshot', owners: emu.ipOwners() })}\n`);
  const off = emu.onIpChange((ev) => { res.write(`${JSON.stringify({ type: 'ipchange', ...ev })}\n`); });
  req.on('close', off);
  res.on('close', off);
}
