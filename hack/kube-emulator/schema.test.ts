import test from 'ava';
import { applyDefaults, prune, validateObject, type JSONSchemaProps } from './schema.js';
import { fieldErrorString } from './status.js';

const schema: JSONSchemaProps = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      required: ['n'],
      properties: {
        n: { type: 'integer', minimum: 1, maximum: 5, exclusiveMaximum: true },
        s: { type: 'string', minLength: 2, maxLength: 4 },
        d: { type: 'object', default: {}, properties: { x: { type: 'integer', default: 7 } } },
        q: { 'x-kubernetes-int-or-string': true },
        set: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
        m: { type: 'object', additionalProperties: { type: 'integer' } },
        free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        ts: { type: 'string', format: 'date-time' },
        nul: { type: 'string', nullable: true },
      },
    },
  },
};

const errs = (o: any, old?: any) => validateObject(o, old, schema).map(fieldErrorString).sort();

test('pruning keeps apiVersion/kind/known metadata and preserve-unknown subtrees', (t) => {
  const o: any = { apiVersion: 'x/v1', kind: 'K', metadata: { name: 'a', bogus: 1 }, spec: { n: 1, zz: 2, free: { any: { thing: 1 } }, m: { a: 1 } }, top: 1 };
  t.deepEqual(prune(o, schema).sort(), ['metadata.bogus', 'spec.zz', 'top']);
  t.deepEqual(o, { apiVersion: 'x/v1', kind: 'K', metadata: { name: 'a' }, spec: { n: 1, free: { any: { thing: 1 } }, m: { a: 1 } } });
});

test('defaults apply to absent fields, nested inside defaulted objects', (t) => {
  const o: any = { spec: { n: 1 } };
  applyDefaults(o, schema);
  t.deepEqual(o.spec.d, { x: 7 });
  const p: any = { spec: { n: 1, d: { x: 1 } } };
  applyDefaults(p, schema);
  t.deepEqual(p.spec.d, { x: 1 });
});

test('value validation messages', (t) => {
  t.deepEqual(errs({ metadata: {}, spec: { n: 5, s: 'abcde', q: 1.5, set: ['a', 'a'], m: { k: 'v' }, ts: 'yesterday', nul: null } }), [
    'spec.m.k: Invalid value: "string": spec.m.k in body must be of type integer: "string"',
    'spec.n: Invalid value: 5: spec.n in body should be less than 5',
    'spec.q: Invalid value: "number": spec.q in body must be of type integer,string: "number"',
    'spec.s: Too long: may not be more than 4 bytes',
    'spec.set[1]: Duplicate value: "a"',
    'spec.ts: Invalid value: "yesterday": spec.ts in body must be of type date-time: "yesterday"',
  ]);
  t.deepEqual(errs({ metadata: {}, spec: { s: 'a' } }), ['spec.n: Required value', 'spec.s: Invalid value: "a": spec.s in body should be at least 2 chars long']);
  t.deepEqual(errs({ metadata: {}, spec: { n: 2, q: 'x', ts: '2026-01-01T00:00:00Z' } }), []);
});

test('CEL rules at the root print <nil> as the field, like the API server', (t) => {
  const s: JSONSchemaProps = { type: 'object', 'x-kubernetes-validations': [{ rule: "self.metadata.name.startsWith('ok')", message: 'bad name' }], properties: { spec: { type: 'object' } } };
  t.deepEqual(validateObject({ metadata: { name: 'no' }, spec: {} }, undefined, s).map(fieldErrorString), ['<nil>: Invalid value: "object": bad name']);
});

test('ratcheting: on update, unchanged invalid values keep passing; changed ones are validated', (t) => {
  const s: JSONSchemaProps = {
    type: 'object',
    properties: { spec: { type: 'object', properties: { a: { type: 'integer', maximum: 3 }, b: { type: 'integer', maximum: 3 } }, 'x-kubernetes-validations': [{ rule: 'self.a <= self.b', message: 'a <= b' }] } },
  };
  const old = { metadata: {}, spec: { a: 9, b: 1 } };
  t.deepEqual(validateObject({ metadata: {}, spec: { a: 9, b: 1 } }, old, s), [], 'nothing changed');
  t.deepEqual(validateObject({ metadata: { labels: { x: 'y' } }, spec: { a: 9, b: 1 } }, old, s), [], 'metadata-only change');
  t.deepEqual(validateObject({ metadata: {}, spec: { a: 9, b: 2 } }, old, s).map(fieldErrorString), ['spec: Invalid value: "object": a <= b'], 'spec changed: its rule runs, a (unchanged) is not re-checked');
  t.is(validateObject({ metadata: {}, spec: { a: 9, b: 1 } }, undefined, s).length, 2, 'creates are fully validated');
});
