// Microsoft.Compute: VMs, scale sets, their instances and the instances' NICs (read-only here, as in
// Azure's network API). A scale-set VM update sets its NICs' ip-configs from networkProfileConfiguration,
// all NICs or none, and in async mode runs as a long-running operation whose failure rolls them back.
import { AzureError, errors } from './errors.js';
import { header, ok, route, type Handler, type Route } from './http.js';
import {
  inResourceGroup, inSubscription, instanceNicOr404, instanceOr404, requireResourceGroup, scaleSetOr404, vmOr404,
} from './lookups.js';
import { computeEtag, renderNic, renderScaleSet, renderScaleSetVm, renderVm } from './render.js';
import { ipConfigRoutes, lister, type RouteDeps } from './routes.js';
import type { IpConfig, Nic } from './state.js';
import { desiredFromVmssNicConfig, parseBody, vmssVmPutSchema } from './wire.js';

export function computeRoutes(deps: RouteDeps): Route[] {
  const st = deps.state;
  const list = lister(deps);
  const S = 'subscriptions/:sub';
  const CMP = `${S}/resourcegroups/:rg/providers/microsoft.compute`;
  const VMSS = `${CMP}/virtualmachinescalesets/:ss`;
  const VMSSVM = `${VMSS}/virtualmachines/:vm`;
  return [
    route('GET', `${S}/providers/microsoft.compute/virtualmachines`, 'vm.listall', (ctx, p) =>
      list(ctx, [...st.vms.values()].filter(inSubscription(p)), renderVm)),
    route('GET', `${CMP}/virtualmachines`, 'vm.list', (ctx, p) => {
      requireResourceGroup(st, p);
      return list(ctx, [...st.vms.values()].filter(inResourceGroup(p)), renderVm);
    }),
    route('GET', `${CMP}/virtualmachines/:vm`, 'vm.get', (_ctx, p) => {
      const vm = vmOr404(st, p);
      return { status: 200, body: renderVm(vm), headers: { ETag: computeEtag(vm.etag) } };
    }),
    route('GET', `${CMP}/virtualmachinescalesets`, 'vmss.list', (ctx, p) => {
      requireResourceGroup(st, p);
      return list(ctx, [...st.scaleSets.values()].filter(inResourceGroup(p)), renderScaleSet);
    }),
    route('GET', VMSS, 'vmss.get', (_ctx, p) => ok(renderScaleSet(scaleSetOr404(st, p)))),
    route('GET', `${VMSS}/virtualmachines`, 'vmssvm.list', (ctx, p) => list(ctx, [...scaleSetOr404(st, p).instances.values()], renderScaleSetVm)),
    route('GET', `${VMSS}/networkinterfaces`, 'vmssnic.listall', (ctx, p) =>
      list(ctx, [...scaleSetOr404(st, p).instances.values()].flatMap((i) => i.nics), renderNic)),
    route('GET', VMSSVM, 'vmssvm.get', (_ctx, p) => {
      const inst = instanceOr404(st, p);
      return { status: 200, body: renderScaleSetVm(inst), headers: { ETag: computeEtag(inst.etag) } };
    }),
    route('PUT', VMSSVM, 'vmssvm.put', putScaleSetVm(deps)),
    route('GET', `${VMSSVM}/networkinterfaces`, 'vmssnic.list', (ctx, p) => list(ctx, instanceOr404(st, p).nics, renderNic)),
    route('GET', `${VMSSVM}/networkinterfaces/:nic`, 'vmssnic.get', (_ctx, p) => {
      const nic = instanceNicOr404(st, p);
      return { status: 200, body: renderNic(nic), headers: { ETag: nic.etag } };
    }),
    ...ipConfigRoutes(deps, `${VMSSVM}/networkinterfaces/:nic`, 'vmssipconfig', (p) => instanceNicOr404(st, p)),
  ];
}

/** Scale-set VM update: the ip-configs of its NICs come from networkProfileConfiguration. */
function putScaleSetVm(deps: RouteDeps): Handler {
  const { state, operations } = deps;
  return (ctx, p) => {
    const inst = instanceOr404(state, p);
    const ifMatch = header(ctx, 'if-match');
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== computeEtag(inst.etag)) {
      throw new AzureError(412, 'PreconditionFailed', `The specified precondition 'If-Match = ${ifMatch}' was not met. Current ETag is '${computeEtag(inst.etag)}'.`);
    }
    const operation = { provider: 'Microsoft.Compute' as const, name: 'PutVirtualMachineScaleSetVMOperation', subscriptionId: p.sub!,
      location: inst.scaleSet.location, resourceId: inst.id };
    if (inst.busy) {
      const headers = operations.refuseBusy(ctx, operation, inst.busy);
      return { status: 200, body: renderScaleSetVm(inst), headers };
    }
    const body = parseBody(vmssVmPutSchema, ctx.body);
    const configs = body.properties?.networkProfileConfiguration?.networkInterfaceConfigurations;
    const undo: Array<{ nic: Nic; previous: readonly IpConfig[] }> = [];
    if (configs) {
      try {
        for (const c of configs) {
          const nic = inst.nics.find((n) => n.name.toLowerCase() === c.name.toLowerCase());
          if (!nic) throw errors.invalidParameter(`Network interface configuration '${c.name}' does not exist on virtual machine ${inst.id}; adding NICs is not emulated.`);
          const r = state.putNic(nic.id, { location: nic.location, ipConfigs: desiredFromVmssNicConfig(c.properties?.ipConfigurations ?? []) });
          undo.push({ nic, previous: r.previous });
        }
      } catch (e) {
        for (const u of undo.reverse()) state.restoreIpConfigs(u.nic, u.previous);
        throw e;
      }
    }
    inst.etag++;
    const async = deps.cfg().mode === 'async' || ctx.fault?.as === 'operation';
    if (!async) {
      inst.provisioningState = 'Succeeded';
      return { status: 200, body: renderScaleSetVm(inst) };
    }
    inst.provisioningState = 'Updating';
    for (const u of undo) u.nic.provisioningState = 'Updating';
    const fault = ctx.fault;
    const { op, headers } = operations.start(ctx, operation, () => {
      delete inst.busy;
      if (fault) {
        for (const u of [...undo].reverse()) { state.restoreIpConfigs(u.nic, u.previous); u.nic.provisioningState = 'Failed'; }
        inst.provisioningState = 'Failed';
        inst.etag++;
        return new AzureError(fault.status, fault.code, fault.message, fault.details);
      }
      for (const u of undo) u.nic.provisioningState = 'Succeeded';
      inst.provisioningState = 'Succeeded';
      return undefined;
    });
    inst.busy = operations.busyWith(op);
    return { status: 200, body: renderScaleSetVm(inst), headers };
  };
}
