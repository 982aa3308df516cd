// Seedable scenarios: a VNet with subnets, N VMs and scale-set instances each with a NIC.
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { existsSync, readFileSync } from 'node:fs';
import { key, type EmulatorState, type Nic, type Subnet } from './state.js';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/, 'Azure resource names: letters, digits, _ . -');

export const scenarioSchema = z.object({
  subscriptionId: z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'a subscription id is a GUID').default('00000000-0000-0000-0000-000000000000'),
  resourceGroup: name.default('podvnet-rg'),
  location: z.string().default('eastus'),
  vnets: z.array(z.object({
    name,
    resourceGroup: name.optional(),
    addressPrefixes: z.array(z.string()).min(1),
    subnets: z.array(z.object({ name, addressPrefix: z.string() })).min(1),
  })).default([{ name: 'podvnet-vnet', addressPrefixes: ['10.0.0.0/8'], subnets: [{ name: 'nodes', addressPrefix: '10.240.0.0/16' }] }]),
  vms: z.array(z.object({
    namePrefix: name.default('vm-'),
    count: z.number().int().min(0),
    /** 'subnet', 'vnet/subnet' or the subnet's ARM id. */
    subnet: z.string().optional(),
    secondaryIpConfigs: z.number().int().min(0).max(255).default(0),
    vmSize: z.string().optional(),
  })).default([]),
  scaleSets: z.array(z.object({
    name,
    count: z.number().int().min(0),
    subnet: z.string().optional(),
    secondaryIpConfigs: z.number().int().min(0).max(255).default(0),
    computerNamePrefix: z.string().optional(),
    vmSize: z.string().optional(),
  })).default([]),
});
export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;

export interface ScenarioNode {
  kind: 'vm' | 'vmss';
  /** Kubernetes Node name: the VM's computer name. */
  nodeName: string;
  /** node.spec.providerID, as the Azure cloud provider sets it. */
  providerID: string;
  /** ARM id of the VM or scale-set instance. */
  resourceId: string;
  resourceGroup: string;
  nicId: string;
  primaryIP: string;
  macAddress: string;
  subnetId: string;
  scaleSet?: string;
  instanceId?: string;
}

export interface ScenarioResult {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** 'vnet/subnet' -> subnet ARM id */
  subnets: Record<string, string>;
  nodes: ScenarioNode[];
}

/** A scenario from a file path (JSON or YAML) or inline JSON/YAML text. */
export function readScenario(fileOrInline: string): Scenario {
  const text = existsSync(fileOrInline) ? readFileSync(fileOrInline, 'utf8') : fileOrInline;
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new Error(`scenario is neither a readable file nor valid JSON/YAML: ${(e as Error).message}`);
  }
  const parsed = scenarioSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new Error(`invalid scenario: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function loadScenario(state: EmulatorState, input: ScenarioInput): ScenarioResult {
  const parsed = scenarioSchema.safeParse(input);
  if (!parsed.success) throw new Error(`invalid scenario: ${z.prettifyError(parsed.error)}`);
  const s = parsed.data;
  const subnets: Record<string, string> = {};
  const created: Subnet[] = [];
  for (const v of s.vnets) {
    const vnet = state.createVnet(s.subscriptionId, v.resourceGroup ?? s.resourceGroup, v.name, s.location, v.addressPrefixes, v.subnets);
    for (const sub of vnet.subnets.values()) { subnets[`${vnet.name}/${sub.name}`] = sub.id; created.push(sub); }
  }
  state.ensureResourceGroup(s.subscriptionId, s.resourceGroup, s.location);
  const resolve = (ref: string | undefined): Subnet => {
    if (ref === undefined) {
      const first = created[0];
      if (!first) throw new Error('scenario has no subnet to place machines in');
      return first;
    }
    const byId = state.subnets.get(key(ref));
    if (byId) return byId;
    const matches = created.filter((sub) => sub.name.toLowerCase() === ref.toLowerCase() || `${sub.vnet.name}/${sub.name}`.toLowerCase() === ref.toLowerCase());
    if (matches.length !== 1) throw new Error(`scenario subnet reference '${ref}' matches ${matches.length} subnets`);
    return matches[0]!;
  };
  const nodes: ScenarioNode[] = [];
  const describe = (nic: Nic) => {
    const primary = nic.ipConfigs.find((c) => c.primary)!;
    return { nicId: nic.id, primaryIP: primary.privateIPAddress, macAddress: nic.macAddress, subnetId: primary.subnet.id };
  };
  for (const group of s.vms) {
    const subnet = resolve(group.subnet);
    for (let i = 0; i < group.count; i++) {
      const opts: { vmSize?: string; secondaryIpConfigs: number } = { secondaryIpConfigs: group.secondaryIpConfigs };
      if (group.vmSize) opts.vmSize = group.vmSize;
      const vm = state.createVm(s.subscriptionId, s.resourceGroup, `${group.namePrefix}${i}`, s.location, subnet, opts);
      nodes.push({ kind: 'vm', nodeName: vm.computerName, providerID: `azure://${vm.id}`, resourceId: vm.id, resourceGroup: vm.resourceGroup, ...describe(vm.nics[0]!) });
    }
  }
  for (const group of s.scaleSets) {
    const subnet = resolve(group.subnet);
    const opts: { vmSize?: string; computerNamePrefix?: string } = {};
    if (group.vmSize) opts.vmSize = group.vmSize;
    if (group.computerNamePrefix) opts.computerNamePrefix = group.computerNamePrefix;
    const ss = state.createScaleSet(s.subscriptionId, s.resourceGroup, group.name, s.location, subnet, opts);
    for (let i = 0; i < group.count; i++) {
      const inst = state.addScaleSetInstance(ss, { secondaryIpConfigs: group.secondaryIpConfigs });
      nodes.push({
        kind: 'vmss', nodeName: inst.computerName, providerID: `azure://${inst.id}`, resourceId: inst.id, resourceGroup: ss.resourceGroup,
        scaleSet: ss.name, instanceId: inst.instanceId, ...describe(inst.nics[0]!),
      });
    }
  }
  return { subscriptionId: s.subscriptionId, resourceGroup: s.resourceGroup, location: s.location, subnets, nodes };
}
