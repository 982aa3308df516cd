import { z } from 'zod';

/**
 * Turns a zod schema into a Kubernetes structural OpenAPI v3 schema. zod's own JSON Schema output is
 * close; what differs is what the API server forbids or treats otherwise:
 * - `additionalProperties: false` is not allowed next to `properties` (unknown fields are pruned, or
 *   rejected with fieldValidation=Strict, instead);
 * - zod's integer bounds of +-2^53 are noise;
 * - a `prefault({})` object gets `default: {}` so the server fills in its nested defaults.
 */
export type JSONSchema = { [key: string]: unknown };

const SAFE_LIMIT = Number.MAX_SAFE_INTEGER;

export function toStructuralSchema(schema: z.ZodType): JSONSchema {
  const raw = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    override: (ctx) => {
      const def = (ctx.zodSchema as unknown as { _zod: { def: { type: string } } })._zod.def;
      if (def.type === 'prefault') ctx.jsonSchema.default = {};
    },
  }) as JSONSchema;
  return clean(raw) as JSONSchema;
}

function clean(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(clean);
  if (node === null || typeof node !== 'object') return node;
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(node as JSONSchema)) {
    if (key === '$schema') continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' || key === 'maximum') && typeof value === 'number' && Math.abs(value) >= SAFE_LIMIT) continue;
    if (key === 'pattern' && typeof value === 'string') {
      // zod writes the RegExp source, which escapes '/'; RE2 accepts that, but plain '/' reads better.
      out[key] = value.replaceAll('\\/', '/');
      continue;
    }
    out[key] = key === 'x-kubernetes-validations' || key === 'default' || key === 'enum' ? value : clean(value);
  }
  return out;
}
