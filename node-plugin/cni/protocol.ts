import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';
import {
  COMMANDS,
  CniError,
  CniErrorCode,
  ContainerID,
  InterfaceName,
  LATEST_VERSION,
  NetnsPath,
  PluginConfig,
  Result,
  SUPPORTED_VERSIONS,
  type CniCommand,
  type CniVersion,
  type ValidAttachment,
} from './types.js';

/**
 * The CNI execution protocol as pure functions: turn (environment, stdin) into a typed request or a
 * CniError with the spec's code, and turn an internal result or error into the bytes the runtime
 * expects, in the version it asked for. No I/O here: the agent calls these for every forwarded request.
 */

interface Common {
  version: CniVersion;
}
export interface AddRequest extends Common {
  command: 'ADD';
  config: PluginConfig;
  containerId: string;
  netns: string;
  ifName: string;
  args: Record<string, string>;
  prevResult?: Result | undefined;
}
export interface DelRequest extends Common {
  command: 'DEL';
  config: PluginConfig;
  containerId: string;
  netns?: string | undefined;
  ifName: string;
  args: Record<string, string>;
  prevResult?: Result | undefined;
}
export interface CheckRequest extends Common {
  command: 'CHECK';
  config: PluginConfig;
  containerId: string;
  netns: string;
  ifName: string;
  args: Record<string, string>;
  prevResult: Result;
}
export interface VersionRequest extends Common {
  command: 'VERSION';
}
export interface GcRequest extends Common {
  command: 'GC';
  config: PluginConfig;
  validAttachments: ValidAttachment[];
}
export interface StatusRequest extends Common {
  command: 'STATUS';
  config: PluginConfig;
}
export type CniRequest = AddRequest | DelRequest | CheckRequest | VersionRequest | GcRequest | StatusRequest;

/** What the agent answers: the bytes for stdout and the exit code. */
export interface CniResponse {
  exitCode: number;
  stdout: string;
}

/** Numeric comparison of dotted versions: -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** CNI_ARGS: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IgnoreUnknown=1". */
export function parseCniArgs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      throw new CniError(CniErrorCode.InvalidEnvironment, `CNI_ARGS: "${pair}" is not KEY=VALUE`);
    }
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

function envField<T>(schema: z.ZodType<T>, env: Record<string, string | undefined>, key: string, required: boolean): T | undefined {
  const raw = env[key];
  if (raw === undefined || raw === '') {
    if (required) throw new CniError(CniErrorCode.InvalidEnvironment, `${key} is required`);
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `${key}: ${describeIssues(parsed.error).replace(/^\(root\): /, '')}`);
  }
  return parsed.data;
}

/** The version a configuration asks for; configurations without one predate the field (0.1.0). */
function configVersion(raw: unknown): string {
  if (raw && typeof raw === 'object' && 'cniVersion' in raw) {
    const v = (raw as { cniVersion: unknown }).cniVersion;
    if (typeof v === 'string' && v !== '') return v;
    throw new CniError(CniErrorCode.InvalidConfig, 'cniVersion: must be a version string such as "1.0.0"');
  }
  return '0.1.0';
}

function decodeJSON(stdin: string): unknown {
  if (stdin.trim() === '') throw new CniError(CniErrorCode.DecodeFailure, 'no network configuration on stdin');
  try {
    return JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniErrorCode.DecodeFailure, `network configuration is not JSON: ${(err as Error).message}`);
  }
}

function parseConfig(raw: unknown): PluginConfig {
  const parsed = PluginConfig.safeParse(raw);
  if (!parsed.success) throw new CniError(CniErrorCode.InvalidConfig, `invalid network configuration: ${describeIssues(parsed.error)}`);
  const cfg = parsed.data;
  if ('ipam' in cfg && cfg.ipam !== undefined && cfg.ipam !== null && Object.keys(cfg.ipam as object).length > 0) {
    throw new CniError(
      CniErrorCode.UnsupportedField,
      `unsupported field "ipam" = ${JSON.stringify(cfg.ipam)}: the PodVNet agent allocates VNet addresses itself; remove the ipam section`,
    );
  }
  return cfg;
}

function parsePrevResult(raw: unknown): Result | undefined {
  if (raw === undefined || raw === null) return undefined;
  const parsed = Result.safeParse(raw);
  if (!parsed.success) throw new CniError(CniErrorCode.InvalidConfig, `invalid prevResult: ${describeIssues(parsed.error)}`);
  return toInternalResult(parsed.data);
}

/**
 * Parses one invocation. Throws CniError with the spec's code: 4 for a missing or malformed
 * environment variable, 6 for stdin that is not JSON, 7 for an invalid configuration, 1 for a version
 * this plugin does not speak or a command that version does not have, 2 for a field we refuse.
 */
export function parseRequest(env: Record<string, string | undefined>, stdin: string): CniRequest {
  const command = env.CNI_COMMAND;
  if (!command) throw new CniError(CniErrorCode.InvalidEnvironment, 'CNI_COMMAND is required');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `CNI_COMMAND: unknown command "${command}"; expected one of ${COMMANDS.join(', ')}`);
  }
  const cmd = command as CniCommand;

  if (cmd === 'VERSION') {
    // VERSION may come with an empty stdin from very old runtimes; answer in the latest version then.
    let version: CniVersion = LATEST_VERSION;
    if (stdin.trim() !== '') {
      const requested = configVersion(decodeJSON(stdin));
      if (isSupportedVersion(requested)) version = requested;
    }
    return { command: 'VERSION', version };
  }

  const raw = decodeJSON(stdin);
  const requested = configVersion(raw);
  if (!isSupportedVersion(requested)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `incompatible CNI version ${requested}: this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const version = requested;
  const config = parseConfig(raw);

  const needs = (since: string) => {
    if (compareVersions(version, since) < 0) {
      throw new CniError(CniErrorCode.IncompatibleVersion, `${cmd} needs CNI ${since} or later; the configuration says ${version}`);
    }
  };

  switch (cmd) {
    case 'ADD':
    case 'CHECK': {
      if (cmd === 'CHECK') needs('0.4.0');
      const containerId = envField(ContainerID, env, 'CNI_CONTAINERID', true)!;
      const netns = envField(NetnsPath, env, 'CNI_NETNS', true)!;
      const ifName = envField(InterfaceName, env, 'CNI_IFNAME', true)!;
      const args = parseCniArgs(env.CNI_ARGS);
      const prevResult = parsePrevResult(config.prevResult);
      if (cmd === 'CHECK') {
        if (!prevResult) throw new CniError(CniErrorCode.InvalidConfig, 'CHECK needs prevResult: the result ADD returned');
        return { command: 'CHECK', version, config, containerId, netns, ifName, args, prevResult };
      }
      return { command: 'ADD', version, config, containerId, netns, ifName, args, prevResult };
    }
    case 'DEL': {
      const containerId = envField(ContainerID, env, 'CNI_CONTAINERID', true)!;
      const ifName = envField(InterfaceName, env, 'CNI_IFNAME', true)!;
      // CNI_NETNS may be empty on DEL: the namespace can be gone already.
      const netns = envField(NetnsPath, env, 'CNI_NETNS', false);
      const args = parseCniArgs(env.CNI_ARGS);
      let prevResult: Result | undefined;
      try {
        prevResult = parsePrevResult(config.prevResult);
      } catch {
        prevResult = undefined; // a DEL must not fail over a cached result it does not need
      }
      return { command: 'DEL', version, config, containerId, netns, ifName, args, prevResult };
    }
    case 'GC':
      needs('1.1.0');
      return { command: 'GC', version, config, validAttachments: config['cni.dev/valid-attachments'] ?? [] };
    case 'STATUS':
      needs('1.1.0');
      return { command: 'STATUS', version, config };
  }
}

/** A version-less (1.x-shaped) copy of a result given in `version`'s shape. */
export function toInternalResult(r: Result): Result {
  const { cniVersion: _drop, ...out } = r;
  if (r.ips) out.ips = r.ips.map(({ version: _v, ...ip }) => ip);
  return out;
}

function addressOnly(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** Renders an internal result in the shape of `version`. */
export function formatResult(result: Result, version: CniVersion): Record<string, unknown> {
  if (compareVersions(version, '0.3.0') < 0) {
    // 0.1.0 and 0.2.0: one IPv4 block, routes inside it, no interfaces.
    const ip4 = result.ips?.find((ip) => !ip.address.includes(':'));
    const out: Record<string, unknown> = { cniVersion: version };
    if (ip4) {
      const block: Record<string, unknown> = { ip: ip4.address };
      if (ip4.gateway) block.gateway = ip4.gateway;
      const routes = (result.routes ?? []).filter((r) => !r.dst.includes(':'));
      if (routes.length) block.routes = routes;
      out.ip4 = block;
    }
    if (result.dns) out.dns = result.dns;
    return out;
  }
  const withVersion = compareVersions(version, '1.0.0') < 0;
  const out: Record<string, unknown> = { cniVersion: version };
  out.interfaces = result.interfaces ?? [];
  out.ips = (result.ips ?? []).map(({ version: _drop, ...ip }) =>
    withVersion ? { version: addressOnly(ip.address).includes(':') ? '6' : '4', ...ip } : ip,
  );
  if (result.routes?.length) out.routes = result.routes;
  out.dns = result.dns ?? {};
  return out;
}

/**
 * Appends this plugin's interface and addresses to what earlier plugins in the chain produced, so the
 * result carries everything forward (the next plugin, e.g. portmap, and the runtime see all of it).
 */
export function mergeIntoPrevResult(prev: Result | undefined, ours: Result): Result {
  if (!prev) return ours;
  const base = prev.interfaces?.length ?? 0;
  const interfaces = [...(prev.interfaces ?? []), ...(ours.interfaces ?? [])];
  const ips = [
    ...(prev.ips ?? []),
    ...(ours.ips ?? []).map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + base })),
  ];
  const routes = [...(prev.routes ?? []), ...(ours.routes ?? [])];
  const merged: Result = { ...prev, interfaces, ips };
  if (routes.length) merged.routes = routes;
  const dns = ours.dns && Object.keys(ours.dns).length ? ours.dns : prev.dns;
  if (dns) merged.dns = dns;
  return merged;
}

export function successResponse(result: Result, version: CniVersion): CniResponse {
  return { exitCode: 0, stdout: JSON.stringify(formatResult(result, version)) };
}

/** DEL, CHECK, GC and STATUS print nothing on success. */
export const EMPTY_SUCCESS: CniResponse = { exitCode: 0, stdout: '' };

export function versionResponse(version: CniVersion): CniResponse {
  return { exitCode: 0, stdout: JSON.stringify({ cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] }) };
}

/** The spec's error object on stdout with a non-zero exit code. */
export function errorResponse(err: CniError, version: string = LATEST_VERSION): CniResponse {
  const body: Record<string, unknown> = { cniVersion: isSupportedVersion(version) ? version : LATEST_VERSION, code: err.code, msg: err.message };
  if (err.details) body.details = err.details;
  return { exitCode: 1, stdout: JSON.stringify(body) };
}

/** The version to answer an error in, read leniently from stdin (the request may not have parsed). */
export function versionForError(stdin: string): string {
  try {
    const raw = JSON.parse(stdin) as unknown;
    const v = configVersion(raw);
    return isSupportedVersion(v) ? v : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}
