import test from 'ava';
import fc from 'fast-check';
import { matchFields, matchLabels, matchLabelSelectorObject, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';

test('label selector grammar', (t) => {
  t.deepEqual(parseLabelSelector('a=b,c!=d, e in (x, y),f notin (z),g,!h,i>3'), [
    { op: '=', key: 'a', value: 'b' }, { op: '!=', key: 'c', value: 'd' }, { op: 'in', key: 'e', values: ['x', 'y'] },
    { op: 'notin', key: 'f', values: ['z'] }, { op: 'exists', key: 'g' }, { op: '!', key: 'h' }, { op: 'gt', key: 'i', value: 3 },
  ]);
  t.deepEqual(parseLabelSelector('kubernetes.azure.com/agentpool==general'), [{ op: '=', key: 'kubernetes.azure.com/agentpool', value: 'general' }]);
  t.throws(() => parseLabelSelector('a in ('), { instanceOf: SelectorError });
  t.throws(() => parseLabelSelector('a=b c'), { instanceOf: SelectorError });
  t.throws(() => parseLabelSelector('-bad=x'), { instanceOf: SelectorError });
});

test('matching: != and notin match objects without the label, like the API server', (t) => {
  const m = (s: string, l: Record<string, string>) => matchLabels(parseLabelSelector(s), l);
  t.true(m('a!=b', {}));
  t.true(m('a notin (b)', {}));
  t.false(m('a in (b)', {}));
  t.true(m('', { x: 'y' }));
  t.true(m('i>3', { i: '4' }));
  t.false(m('i>3', { i: 'x' }));
});

test('property: a selector made from equality requirements matches exactly the maps that contain them', (t) => {
  const key = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
  const val = fc.stringMatching(/^[a-z0-9]{0,5}$/);
  fc.assert(fc.property(fc.dictionary(key, val), fc.dictionary(key, val), (req, labels) => {
    const sel = Object.entries(req).map(([k, v]) => `${k}=${v}`).join(',');
    const expected = Object.entries(req).every(([k, v]) => labels[k] === v);
    return matchLabels(parseLabelSelector(sel), labels) === expected;
  }));
  t.pass();
});

test('field selectors with escapes, and LabelSelector objects', (t) => {
  t.deepEqual(parseFieldSelector('metadata.name=a\\,b,spec.nodeName!=x'), [{ field: 'metadata.name', op: '=', value: 'a,b' }, { field: 'spec.nodeName', op: '!=', value: 'x' }]);
  t.true(matchFields(parseFieldSelector('metadata.name==n1'), { 'metadata.name': 'n1' }));
  t.false(matchFields(parseFieldSelector('metadata.name=n1'), { 'metadata.name': 'n2' }));
  t.true(matchLabelSelectorObject({ matchLabels: { a: 'b' }, matchExpressions: [{ key: 'z', operator: 'DoesNotExist' }] }, { a: 'b' }));
  t.false(matchLabelSelectorObject({ matchExpressions: [{ key: 'p', operator: 'In', values: ['x'] }] }, { p: 'y' }));
});
