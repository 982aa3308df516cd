import test from 'ava';
import fc from 'fast-check';
import { createMetrics } from '../../controllers/metrics.js';
import { PoolGauges } from '../../controllers/pool-metrics.js';
import { TimelineSampler, niceStep, nodePointsFromMetrics, timelineSvg, type TimelineSample } from './timeline-svg.js';

/** Well-formed enough to render: every tag closed in order, no stray `<` or `&` in text, no NaN. */
function checkSvg(svg: string): string | undefined {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (close) { if (stack.pop() !== name) return `unbalanced </${name}>`; } else if (!selfClose) stack.push(name!);
  }
  if (stack.length) return `unclosed <${stack.join('>, <')}>`;
  const text = svg.replace(/<[^>]*>/g, '');
  if (/[<>]/.test(text) || /&(?!amp;|lt;|gt;|quot;|#39;)/.test(text)) return 'unescaped text';
  if (/NaN|Infinity/.test(svg)) return 'a coordinate is not a number';
  return undefined;
}

const point = fc.record({ allocated: fc.nat(256), target: fc.nat(256), used: fc.nat(250), pending: fc.nat(250) });

test('niceStep: a round step (1, 2, 2.5 or 5 times a power of ten, at least 1) giving at most about `count` ticks', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 12 }), (max, count) => {
    const s = niceStep(max, count);
    t.true(s >= 1);
    t.true(s >= max / count || s === 1);
    const mantissa = s / 10 ** Math.floor(Math.log10(s));
    t.true([1, 2, 2.5, 3, 5].some((m) => Math.abs(mantissa - m) < 1e-9), `${s}`);
  }));
});

test('timelineSvg: well-formed for any samples; one panel per node; names escaped', (t) => {
  fc.assert(fc.property(
    fc.array(fc.record({ dt: fc.integer({ min: 0, max: 5000 }), nodes: fc.dictionary(fc.constantFrom('vm-0', 'vm-1', 'a<b&c'), point) }), { maxLength: 40 }),
    fc.option(fc.nat(256), { nil: undefined }),
    (raw, max) => {
      let t0 = 1_700_000_000_000;
      const samples: TimelineSample[] = raw.map((r) => ({ t: (t0 += r.dt), nodes: r.nodes }));
      const svg = timelineSvg(samples, { max, marks: [{ t: t0, label: 'burst <20 pods> & more' }] });
      t.is(checkSvg(svg), undefined, svg.slice(0, 300));
      const nodes = new Set(samples.flatMap((s) => Object.keys(s.nodes)));
      t.is((svg.match(/<g><title>/g) ?? []).length, samples.length ? nodes.size : 0);
      if (nodes.has('a<b&c')) t.true(svg.includes('<title>a&lt;b&amp;c</title>'));
    },
  ));
});

test('timelineSvg: a node growing 8 -> 16 -> 8 draws one step up and one step down, in time order', (t) => {
  const s = (t_: number, allocated: number): TimelineSample => ({ t: t_, nodes: { 'vm-0': { allocated, target: allocated, used: 2, pending: 0 } } });
  const svg = timelineSvg([s(0, 8), s(1000, 8), s(2000, 16), s(3000, 16), s(4000, 8)], { max: 32 });
  const allocated = /<path d="([^"]+)" fill="none" stroke="#1f77b4"/.exec(svg)![1]!;
  const ys = [...allocated.matchAll(/V([\d.]+)/g)].map((m) => Number(m[1]));
  const distinct = ys.filter((y, i) => i === 0 || y !== ys[i - 1]);
  t.is(distinct.length, 3, allocated);
  t.true(distinct[1]! < distinct[0]!, 'up (a smaller y) when it grows');
  t.is(distinct[2], distinct[0], 'back to where it started');
  const xs = [...allocated.matchAll(/H([\d.]+)/g)].map((m) => Number(m[1]));
  t.deepEqual(xs, [...xs].sort((a, b) => a - b), 'time runs left to right');
  t.regex(svg, /peak 16 IPs on the NIC, now 8/);
  t.regex(svg, /ipsPerNode\.max \(32\)/);
});

test('nodePointsFromMetrics reads the controller\'s own /metrics text; TimelineSampler keeps samples and marks', async (t) => {
  const m = createMetrics();
  new PoolGauges(m).set('sandbox', 64, [
    { node: 'vm-0', allocated: 32, target: 32, used: 22, pending: 3, released: 0, capped: false },
    { node: 'vm-1', allocated: 8, target: 8, used: 2, pending: 0, released: 1, capped: false },
  ]);
  new PoolGauges(m).set('other', 64, [{ node: 'x-0', allocated: 1, target: 1, used: 1, pending: 0, released: 0, capped: false }]);
  const text = await m.registry.metrics();
  t.deepEqual(nodePointsFromMetrics(text, 'sandbox'), {
    'vm-0': { allocated: 32, target: 32, used: 22, pending: 3 },
    'vm-1': { allocated: 8, target: 8, used: 2, pending: 0 },
  });
  t.deepEqual(Object.keys(nodePointsFromMetrics(text)).sort(), ['vm-0', 'vm-1', 'x-0']);

  let n = 0;
  const sampler = new TimelineSampler(async () => ({ 'vm-0': { allocated: 8 + 8 * Math.min(n++, 2), target: 8, used: 1, pending: 0 } }), 20).start();
  await new Promise((r) => setTimeout(r, 120));
  sampler.mark('burst');
  await sampler.stop();
  t.true(sampler.samples.length >= 3, `${sampler.samples.length} samples`);
  t.deepEqual(sampler.marks.map((x) => x.label), ['burst']);
  t.is(checkSvg(sampler.svg({ max: 64 })), undefined);
  t.true(sampler.svg().includes('>burst</text>'));
});
