// What every ARM request goes through before its route runs, in ARM's order: authentication, the
// api-version, routing (404 / 405), the count and any configured latency, ARM's throttle buckets, the
// Network RP's write window, and injected faults. Throttle headers ride on every reply after routing.
import { setTimeout as sleep } from 'node:timers/promises';
import type { EmulatorConfig } from './config.js';
import type { EntraTokens } from './entra.js';
import { AzureError, errors } from './errors.js';
import type { Faults } from './faults.js';
import { errorReply, matchPattern, type Ctx, type Params, type Reply, type Route } from './http.js';
import { ids, key, type EmulatorState } from './state.js';
import type { Throttles } from './throttle.js';

export interface CallCounts {
  /** By request kind, e.g. 'nic.put', 'vmssvm.get', 'operation.get'. */
  byKind: Record<string, number>;
  throttled: number;
  /** Of those, refused by the Network RP's write limit rather than ARM's buckets. */
  networkThrottled?: number;
  faulted: number;
  total: number;
}

export const noCalls = (): CallCounts => ({ byKind: {}, throttled: 0, faulted: 0, total: 0 });

export function countKind(counts: CallCounts, kind: string): void {
  counts.total++;
  counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
}

export interface PipelineDeps {
  routes: Route[];
  state: EmulatorState;
  cfg: () => EmulatorConfig;
  entra: EntraTokens;
  throttles: Throttles;
  faults: Faults;
  /** The counts as they are now (resetCalls() replaces them). */
  counts: () => CallCounts;
}

/**
 * Runs one ARM request through the pipeline and its route. Refusals before routing (no token, no
 * api-version, no such route) throw, as AzureErrors; from throttling on, every answer is a reply carrying
 * the throttle headers.
 */
export async function runArm(deps: PipelineDeps, ctx: Ctx): Promise<Reply> {
  const cfg = deps.cfg();
  authenticate(cfg, deps.entra, ctx);
  if (!ctx.url.searchParams.has('api-version')) {
    throw new AzureError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
  }
  const { route, params } = findRoute(deps.routes, ctx);
  const counts = deps.counts();
  countKind(counts, route.kind);
  const delay = cfg.latencyByKind[route.kind] ?? cfg.latencyMs;
  if (delay > 0) await sleep(delay);

  const write = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  const sub = params.sub!;
  const throttle = deps.throttles.takeArm(sub, write);
  if (!throttle.ok) {
    counts.throttled++;
    const e = errors.throttled(write ? 'write' : 'read', sub, Math.max(1, Math.ceil(throttle.retryAfterMs / 1000)));
    return errorReply(e, throttle.headers);
  }
  if (write && route.pattern.includes('microsoft.network')) {
    const nrp = networkWriteRefusal(deps, sub, params.rg);
    if (nrp) {
      counts.throttled++;
      counts.networkThrottled = (counts.networkThrottled ?? 0) + 1;
      return errorReply(nrp, throttle.headers);
    }
  }
  const fault = deps.faults.take(route.kind, ctx.method, ctx.url);
  if (fault && fault.as === 'response') {
    counts.faulted++;
    const headers: Record<string, string> = { ...throttle.headers };
    if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
    if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
    return errorReply(new AzureError(fault.status, fault.code, fault.message, fault.details), headers);
  }
  if (fault) counts.faulted++;
  ctx.fault = fault;
  try {
    const reply = await route.handler(ctx, params);
    return { ...reply, headers: { ...throttle.headers, ...reply.headers } };
  } catch (e) {
    return errorReply(e, throttle.headers);
  }
}

/** A bearer token is required (not checked) unless requireIssuedToken: then it must be one the emulator issued. */
function authenticate(cfg: EmulatorConfig, entra: EntraTokens, ctx: Ctx): void {
  if (!cfg.requireAuth && !cfg.requireIssuedToken) return;
  const auth = ctx.headers.authorization;
  if (!auth) throw errors.authMissing();
  const bearer = /^Bearer\s+(\S+)/i.exec(auth);
  if (!bearer) throw errors.authInvalid();
  if (cfg.requireIssuedToken && !entra.isIssued(bearer[1]!)) throw errors.authInvalid();
}

/** The first route of the path and method; a path served for other methods only is a 405. */
function findRoute(routes: Route[], ctx: Ctx): { route: Route; params: Params } {
  const lsegs = ctx.segs.map((s) => s.toLowerCase());
  let pathMatched = false;
  for (const route of routes) {
    const params = matchPattern(route.pattern, lsegs, ctx.segs);
    if (!params) continue;
    pathMatched = true;
    if (route.method === ctx.method) return { route, params };
  }
  if (pathMatched) throw new AzureError(405, 'MethodNotAllowed', `The ${ctx.method} method is not supported on ${ctx.url.pathname}.`);
  throw errors.unsupportedRoute(ctx.method, ctx.url.pathname);
}

/** The Network RP's window for the subscription and the resource group's region: an error when spent. */
function networkWriteRefusal(deps: PipelineDeps, sub: string, rg: string | undefined): AzureError | undefined {
  const location = (rg && deps.state.resourceGroups.get(key(ids.rg(sub, rg)))?.location) || 'unknown';
  const r = deps.throttles.takeNetworkWrite(sub, location);
  if (!r || r.ok) return undefined;
  const lim = deps.cfg().networkWriteLimit;
  return errors.networkThrottled(sub, location, Math.max(1, Math.ceil(r.retryAfterMs / 1000)), lim.limit, lim.windowSeconds);
}
