// Test kit (never shipped): runs an Argo CD health check (Lua) on an object under lua5.1, as Argo CD would.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Runs an Argo CD resource health script the way Argo CD does: the live object as the global `obj`
 * (JSON objects become tables, arrays 1-based tables, null becomes nil), the script as a chunk whose
 * return value is the `hs` table. Uses the Lua 5.1 interpreter (Debian package lua5.1), the language
 * version Argo CD's embedded interpreter implements.
 */

export interface HealthStatus {
  status: string;
  message: string;
}

export const LUA = process.env.LUA ?? 'lua5.1';

function luaString(s: string): string {
  let out = '"';
  for (const ch of Buffer.from(s, 'utf8')) {
    if (ch === 0x22) out += '\\"';
    else if (ch === 0x5c) out += '\\\\';
    else if (ch < 0x20 || ch >= 0x7f) out += `\\${ch}`;
    else out += String.fromCharCode(ch);
  }
  return out + '"';
}

/** A Lua table constructor for a JSON value. */
export function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return luaString(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`cannot express ${v} in JSON`);
    return String(v);
  }
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  if (typeof v === 'object') {
    const fields = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== null && x !== undefined)
      .map(([k, x]) => `[${luaString(k)}] = ${toLua(x)}`);
    return `{${fields.join(', ')}}`;
  }
  throw new Error(`cannot express ${typeof v} in JSON`);
}

const DRIVER = `
local script, input = arg[1], arg[2]
obj = dofile(input)
local hs = assert(loadfile(script))()
assert(type(hs) == "table", "the health script must return a table")
io.write(tostring(hs.status), "\\n", tostring(hs.message or ""))
`;

/** Runs the health script at `scriptPath` against `obj` and returns what it reported. */
export function runHealthCheck(scriptPath: string, obj: unknown): HealthStatus {
  const dir = mkdtempSync(join(tmpdir(), 'podvnet-lua-'));
  try {
    writeFileSync(join(dir, 'driver.lua'), DRIVER);
    writeFileSync(join(dir, 'obj.lua'), `return ${toLua(obj)}\n`);
    const out = execFileSync(LUA, [join(dir, 'driver.lua'), scriptPath, join(dir, 'obj.lua')], { encoding: 'utf8' });
    const nl = out.indexOf('\n');
    return { status: out.slice(0, nl), message: out.slice(nl + 1) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
