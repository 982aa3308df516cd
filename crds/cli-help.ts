import { z } from 'zod';

/**
 * `--help` text from the zod schema a command parses its flags (and environment) with: the one source of
 * truth for each setting's name, allowed values, default and description, so help cannot drift from what
 * the parser accepts. A field can say how to show a default that is computed at start (the host name...)
 * with `.meta({ helpDefault: '...' })`.
 */

export interface SettingDoc {
  /** `--http-port`, or undefined for a setting read from the environment only. */
  flag?: string;
  /** `PODVNET_HTTP_PORT`, or undefined for a flag with no environment variable. */
  env?: string;
  /** What the value may be: `integer 0..65535`, `trace|debug|info`, `true|false`, `absolute path`... */
  allowed: string;
  /** The default as text; undefined when the setting has none. */
  default?: string;
  required: boolean;
  description?: string;
}

export interface SettingNames {
  flag?: (key: string) => string | undefined;
  env?: (key: string) => string | undefined;
}

type Json = Record<string, unknown>;

interface WrapperDef { type: string; defaultValue?: unknown; innerType?: z.ZodType }

/** The default of a field, looking through optional/nullable wrappers (zod keeps it on a `default` node). */
function defaultOf(schema: z.ZodType): { has: boolean; value?: unknown } {
  let s: z.ZodType | undefined = schema;
  for (let depth = 0; s && depth < 8; depth++) {
    const def: WrapperDef = (s as unknown as { def: WrapperDef }).def;
    if (def.type === 'default' || def.type === 'prefault') {
      const v = def.defaultValue;
      return { has: true, value: typeof v === 'function' ? (v as () => unknown)() : v };
    }
    if (def.type !== 'optional' && def.type !== 'nullable' && def.type !== 'readonly') break;
    s = def.innerType;
  }
  return { has: false };
}

const isOptional = (schema: z.ZodType): boolean => schema.safeParse(undefined).success;

function range(j: Json): string {
  // .int() bounds an integer by the safe-integer range: that is no bound a person needs to read
  if (j.maximum === Number.MAX_SAFE_INTEGER) delete j.maximum;
  if (j.minimum === Number.MIN_SAFE_INTEGER) delete j.minimum;
  const lo = j.minimum !== undefined ? String(j.minimum) : j.exclusiveMinimum !== undefined ? `>${String(j.exclusiveMinimum)}` : '';
  const hi = j.maximum !== undefined ? String(j.maximum) : j.exclusiveMaximum !== undefined ? `<${String(j.exclusiveMaximum)}` : '';
  return lo || hi ? ` ${lo}..${hi}` : '';
}

/** The allowed values of one JSON Schema (input side of the zod schema), in words a person reads. */
export function allowedValues(j: Json): string {
  if (Array.isArray(j.enum)) return j.enum.map(String).join('|');
  if (Array.isArray(j.anyOf)) {
    const parts = j.anyOf as Json[];
    // the usual boolean flag: a real boolean or the strings people type for one
    if (parts.some((p) => p.type === 'boolean')) return 'true|false';
    return parts.map(allowedValues).join(' or ');
  }
  switch (j.type) {
    case 'boolean': return 'switch (no value)';
    case 'integer': return `integer${range(j)}`;
    case 'number': return `number${range(j)}`;
    case 'string': {
      if (j.format === 'uri') return 'URL';
      if (j.pattern === '^\\/') return 'absolute path';
      if (typeof j.pattern === 'string') return `string matching ${j.pattern}`;
      if (typeof j.minLength === 'number' && j.minLength > 0) return 'non-empty string';
      return 'string';
    }
    default: return 'any';
  }
}

function showDefault(v: unknown): string {
  if (v === '') return '"" (empty)';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** One SettingDoc per field of an object schema, in the schema's order. */
export function describeSettings(shape: Record<string, z.ZodType>, names: SettingNames): SettingDoc[] {
  return Object.entries(shape).map(([key, schema]) => {
    const j = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
    const d = defaultOf(schema);
    const doc: SettingDoc = { allowed: allowedValues(j), required: !d.has && !isOptional(schema) };
    const flag = names.flag?.(key);
    const env = names.env?.(key);
    if (flag) doc.flag = flag;
    if (env) doc.env = env;
    if (typeof j.helpDefault === 'string') doc.default = j.helpDefault;
    else if (d.has && d.value !== undefined) doc.default = showDefault(d.value);
    const description = schema.description ?? (typeof j.description === 'string' ? j.description : undefined);
    if (description) doc.description = description;
    return doc;
  });
}

/**
 * The help text: a title, a usage line, then per setting one line with its flag, allowed values,
 * environment variable and default (or "required"), and its description indented beneath.
 */
export function renderHelp(title: string, usage: string, docs: SettingDoc[], notes: string[] = []): string {
  const lines = [title, '', `Usage: ${usage}`, ''];
  for (const d of docs) {
    const name = d.flag ? `${d.flag} <${d.allowed}>` : `${d.env} <${d.allowed}>`;
    const env = d.flag ? (d.env ? `env ${d.env}` : 'no env variable') : 'environment only';
    const def = d.required ? 'required' : d.default !== undefined ? `default: ${d.default}` : 'default: none';
    lines.push(`  ${name}`, `      ${env}; ${def}`);
    if (d.description) lines.push(`      ${d.description}`);
  }
  if (notes.length) lines.push('', ...notes);
  return `${lines.join('\n')}\n`;
}

/** Flag name of a camelCase key: `httpPort` -> `--http-port`. */
export const kebabFlag = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
/** PODVNET_* environment variable of a camelCase key: `httpPort` -> `PODVNET_HTTP_PORT`. */
export const podvnetEnv = (key: string): string => `PODVNET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
