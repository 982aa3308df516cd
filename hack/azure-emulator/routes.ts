// What the network and compute routes share: what they are given (the state they read and write, the live
// configuration, the long-running operations their writes start), lists of the configured page size, and the
// ip-configuration routes both APIs serve under a NIC.
import type { EmulatorConfig } from './config.js';
import { ok, page, route, type Ctx, type Params, type Reply, type Route } from './http.js';
import { ipConfigOr404 } from './lookups.js';
import { renderIpConfig } from './render.js';
import type { Operations } from './lro.js';
import type { EmulatorState, Nic } from './state.js';

export interface RouteDeps {
  state: EmulatorState;
  /** The configuration as it is now (configure() replaces it). */
  cfg: () => EmulatorConfig;
  operations: Operations;
}

/** A list reply of the configured page size. */
export const lister = (deps: RouteDeps) => <T>(ctx: Ctx, items: T[], render: (t: T) => unknown): Reply =>
  page(ctx, items, render, deps.cfg().pageSize);

/**
 * The ip-configuration list and GET under a NIC path (`nicPath` ends in `:nic`); both APIs serve them,
 * the network one for standalone NICs (kinds ipconfig.*), the compute one for scale-set instances' NICs
 * (vmssipconfig.*).
 */
export function ipConfigRoutes(deps: RouteDeps, nicPath: string, kind: 'ipconfig' | 'vmssipconfig', nicOr404: (p: Params) => Nic): Route[] {
  const list = lister(deps);
  return [
    route('GET', `${nicPath}/ipconfigurations`, `${kind}.list`, (ctx, p) => {
      const nic = nicOr404(p);
      return list(ctx, [...nic.ipConfigs], (c) => renderIpConfig(nic, c));
    }),
    route('GET', `${nicPath}/ipconfigurations/:cfg`, `${kind}.get`, (_ctx, p) => {
      const nic = nicOr404(p);
      return ok(renderIpConfig(nic, ipConfigOr404(nic, p)));
    }),
  ];
}
