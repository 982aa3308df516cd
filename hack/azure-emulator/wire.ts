// Request bodies the emulator accepts, parsed with zod. Unknown fields pass through untouched.
import { z } from 'zod';
import { errors } from './errors.js';
import type { DesiredIpConfig } from './state.js';

const subResource = z.looseObject({ id: z.string() });
const allocation = z.string().transform((s, ctx) => {
  const v = s.toLowerCase();
  if (v === 'static') return 'Static' as const;
  if (v === 'dynamic') return 'Dynamic' as const;
  ctx.addIssue({ code: 'custom', message: `privateIPAllocationMethod must be Static or Dynamic, not ${s}` });
  return z.NEVER;
});

const nicIpConfig = z.looseObject({
  name: z.string().min(1).optional(),
  id: z.string().optional(),
  properties: z.looseObject({
    privateIPAddress: z.string().nullish(),
    privateIPAllocationMethod: allocation.optional(),
    subnet: subResource.optional(),
    primary: z.boolean().nullish(),
    privateIPAddressVersion: z.string().nullish(),
    privateIPAddressPrefixLength: z.number().int().nullish(),
    publicIPAddress: subResource.nullish(),
  }).optional(),
});

export const nicPutSchema = z.looseObject({
  location: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
  properties: z.looseObject({
    ipConfigurations: z.array(nicIpConfig).default([]),
    enableAcceleratedNetworking: z.boolean().nullish(),
    enableIPForwarding: z.boolean().nullish(),
  }).default({ ipConfigurations: [] }),
});

const vmssIpConfig = z.looseObject({
  name: z.string().min(1),
  properties: z.looseObject({
    subnet: subResource.optional(),
    primary: z.boolean().nullish(),
    privateIPAddressVersion: z.string().nullish(),
    /** Compute API 2026-07-02 and later: the scale-set VM model carries the block size. */
    privateIPAddressPrefixLength: z.number().int().nullish(),
    publicIPAddressConfiguration: z.looseObject({}).nullish(),
  }).optional(),
});

export const vmssVmPutSchema = z.looseObject({
  properties: z.looseObject({
    networkProfileConfiguration: z.looseObject({
      networkInterfaceConfigurations: z.array(z.looseObject({
        name: z.string().min(1),
        properties: z.looseObject({
          primary: z.boolean().nullish(),
          ipConfigurations: z.array(vmssIpConfig),
        }).optional(),
      })).optional(),
    }).optional(),
  }).optional(),
});

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body);
  if (!r.success) throw errors.badRequest(z.prettifyError(r.error));
  return r.data;
}

export function desiredFromNicPut(body: z.infer<typeof nicPutSchema>): DesiredIpConfig[] {
  return body.properties.ipConfigurations.map((c, i) => {
    const name = c.name ?? c.id?.split('/').pop();
    if (!name) throw errors.badRequest(`ipConfigurations[${i}] has no name.`);
    const p = c.properties ?? {};
    const d: DesiredIpConfig = { name, allocation: p.privateIPAllocationMethod ?? (p.privateIPAddress ? 'Static' : 'Dynamic') };
    if (p.privateIPAllocationMethod === undefined && p.privateIPAddress) d.allocation = 'Static';
    if (p.privateIPAddress) d.privateIPAddress = p.privateIPAddress;
    if (p.subnet?.id) d.subnetId = p.subnet.id;
    if (p.primary !== undefined && p.primary !== null) d.primary = p.primary;
    if (p.privateIPAddressVersion) d.version = p.privateIPAddressVersion;
    if (typeof p.privateIPAddressPrefixLength === 'number') d.prefixLength = p.privateIPAddressPrefixLength;
    if (p.publicIPAddress) d.publicIp = true;
    return d;
  });
}

export function desiredFromVmssNicConfig(ipConfigs: Array<z.infer<typeof vmssIpConfig>>): DesiredIpConfig[] {
  return ipConfigs.map((c) => {
    const p = c.properties ?? {};
    const d: DesiredIpConfig = { name: c.name, allocation: 'Dynamic' };
    if (p.subnet?.id) d.subnetId = p.subnet.id;
    if (p.primary !== undefined && p.primary !== null) d.primary = p.primary;
    if (p.privateIPAddressVersion) d.version = p.privateIPAddressVersion;
    if (typeof p.privateIPAddressPrefixLength === 'number') d.prefixLength = p.privateIPAddressPrefixLength;
    if (p.publicIPAddressConfiguration) d.publicIp = true;
    return d;
  });
}
