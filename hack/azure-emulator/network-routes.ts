// Microsoft.Network: NICs (read, PUT, PATCH tags, DELETE) with their ip-configurations, virtual networks
// and subnets. A NIC PUT replaces its whole ipConfigurations list, all or nothing, and in async mode runs
// as a long-running operation whose failure rolls the addresses back.
import { z } from 'zod';
import { AzureError, errors } from './errors.js';
import { checkIfMatch, ok, route, type Handler, type Route } from './http.js';
import { inResourceGroup, inSubscription, nicOr404, requireResourceGroup, vnetOr404 } from './lookups.js';
import { renderNic, renderSubnet, renderVnet } from './render.js';
import { ipConfigRoutes, lister, type RouteDeps } from './routes.js';
import { ids, key, type EmulatorState } from './state.js';
import { desiredFromNicPut, nicPutSchema, parseBody } from './wire.js';

export function networkRoutes(deps: RouteDeps): Route[] {
  const st = deps.state;
  const list = lister(deps);
  const S = 'subscriptions/:sub';
  const NET = `${S}/resourcegroups/:rg/providers/microsoft.network`;
  return [
    route('GET', `${S}/providers/microsoft.network/networkinterfaces`, 'nic.listall', (ctx, p) =>
      list(ctx, [...st.nics.values()].filter((n) => !n.vmss && inSubscription(p)(n)), renderNic)),
    route('GET', `${NET}/networkinterfaces`, 'nic.list', (ctx, p) => {
      requireResourceGroup(st, p);
      return list(ctx, [...st.nics.values()].filter((n) => !n.vmss && inResourceGroup(p)(n)), renderNic);
    }),
    route('GET', `${NET}/networkinterfaces/:nic`, 'nic.get', (_ctx, p) => {
      const nic = nicOr404(st, p);
      return { status: 200, body: renderNic(nic), headers: { ETag: nic.etag } };
    }),
    route('PUT', `${NET}/networkinterfaces/:nic`, 'nic.put', putNic(deps)),
    route('DELETE', `${NET}/networkinterfaces/:nic`, 'nic.delete', deleteNic(deps)),
    route('PATCH', `${NET}/networkinterfaces/:nic`, 'nic.patch', (ctx, p) => {
      const nic = nicOr404(st, p);
      checkIfMatch(ctx, nic.id, nic.etag);
      const body = parseBody(z.looseObject({ tags: z.record(z.string(), z.string()).optional() }), ctx.body);
      nic.tags = body.tags ?? {};
      return { status: 200, body: renderNic(nic) };
    }),
    ...ipConfigRoutes(deps, `${NET}/networkinterfaces/:nic`, 'ipconfig', (p) => nicOr404(st, p)),
    route('GET', `${NET}/virtualnetworks`, 'vnet.list', (ctx, p) => {
      requireResourceGroup(st, p);
      return list(ctx, [...st.vnets.values()].filter(inResourceGroup(p)), renderVnet);
    }),
    route('GET', `${NET}/virtualnetworks/:vnet`, 'vnet.get', (_ctx, p) => ok(renderVnet(vnetOr404(st, p)))),
    route('GET', `${NET}/virtualnetworks/:vnet/subnets`, 'subnet.list', (ctx, p) =>
      list(ctx, [...vnetOr404(st, p).subnets.values()], (s) => renderSubnet(s, st.subnetIpConfigIds(s)))),
    route('GET', `${NET}/virtualnetworks/:vnet/subnets/:subnet`, 'subnet.get', (_ctx, p) => {
      const s = vnetOr404(st, p).subnets.get(p.subnet!.toLowerCase());
      if (!s) throw errors.notFound('Microsoft.Network/virtualNetworks/subnets', `${p.vnet}/${p.subnet}`, p.rg!);
      return ok(renderSubnet(s, st.subnetIpConfigIds(s)));
    }),
  ];
}

function putNic(deps: RouteDeps): Handler {
  const { state, operations } = deps;
  return (ctx, p) => {
    requireResourceGroup(state, p);
    const id = ids.nic(p.sub!, p.rg!, p.nic!);
    const existing = state.nics.get(key(id));
    checkIfMatch(ctx, existing?.id ?? id, existing?.etag);
    const body = parseBody(nicPutSchema, ctx.body);
    const location = body.location ?? existing?.location;
    if (!location) throw new AzureError(400, 'LocationRequired', 'The location property is required for this definition.');
    const cfg = deps.cfg();
    const async = cfg.mode === 'async' || ctx.fault?.as === 'operation';
    const operation = (resourceId: string, loc: string) =>
      ({ provider: 'Microsoft.Network' as const, name: 'PutNetworkInterfaceOperation', subscriptionId: p.sub!, location: loc, resourceId });
    if (existing?.busy) {
      const headers = operations.refuseBusy(ctx, operation(existing.id, existing.location), existing.busy);
      return { status: 200, body: renderNic(existing), headers };
    }
    const spec: Parameters<EmulatorState['putNic']>[1] = { location, ipConfigs: desiredFromNicPut(body) };
    if (body.tags) spec.tags = body.tags;
    if (typeof body.properties.enableAcceleratedNetworking === 'boolean') spec.enableAcceleratedNetworking = body.properties.enableAcceleratedNetworking;
    if (typeof body.properties.enableIPForwarding === 'boolean') spec.enableIPForwarding = body.properties.enableIPForwarding;
    const { nic, created, previous } = state.putNic(existing?.id ?? id, spec);
    const status = created ? 201 : 200;
    if (!async) {
      nic.provisioningState = 'Succeeded';
      return { status, body: renderNic(nic) };
    }
    nic.provisioningState = 'Updating';
    const fault = ctx.fault;
    const { op, headers } = operations.start(ctx, operation(nic.id, nic.location), () => {
      delete nic.busy; // busy lasts exactly until this operation ends, so no other write ran meanwhile
      if (fault) {
        state.restoreIpConfigs(nic, previous);
        nic.provisioningState = 'Failed';
        return new AzureError(fault.status, fault.code, fault.message, fault.details);
      }
      nic.provisioningState = 'Succeeded';
      return undefined;
    });
    nic.busy = operations.busyWith(op);
    return { status, body: renderNic(nic), headers };
  };
}

function deleteNic(deps: RouteDeps): Handler {
  const { state, operations } = deps;
  return (ctx, p) => {
    const nic = state.nics.get(key(ids.nic(p.sub!, p.rg!, p.nic!)));
    if (!nic) return { status: 204 };
    checkIfMatch(ctx, nic.id, nic.etag);
    if (nic.busy) throw operations.busyError(nic.busy, nic.id);
    state.deleteNic(nic);
    if (deps.cfg().mode === 'sync') return { status: 200 };
    const { headers } = operations.start(ctx,
      { provider: 'Microsoft.Network', name: 'DeleteNetworkInterfaceOperation', subscriptionId: p.sub!, location: nic.location, resourceId: nic.id },
      () => undefined);
    headers.Location = headers['Azure-AsyncOperation']!.replace('/operations/', '/operationResults/');
    return { status: 202, headers };
  };
}
