// What the network and compute routes are given: the state they read and write, the live configuration,
// and the long-running operations their writes start.
import type { EmulatorConfig } from './config.js';
import { page, type Ctx, type Reply } from './http.js';
import type { Operations } from './lro.js';
import type { EmulatorState } from './state.js';

export interface RouteDeps {
  state: EmulatorState;
  /** The configuration as it is now (configure() replaces it). */
  cfg: () => EmulatorConfig;
  operations: Operations;
}

/** A list reply of the configured page size. */
export const lister = (deps: RouteDeps) => <T>(ctx: Ctx, items: T[], render: (t: T) => unknown): Reply =>
  page(ctx, items, render, deps.cfg().pageSize);
