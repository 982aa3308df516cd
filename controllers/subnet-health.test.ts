import test from 'ava';
import { SubnetHealth } from './subnet-health.js';

test('SubnetIsFull halves the batch and backs off exponentially; successes grow it back', (t) => {
  const h = new SubnetHealth(1000, 8000);
  t.is(h.maxAdds, undefined);
  t.is(h.onFull(16, 'full'), 1000);
  t.is(h.maxAdds, 8);
  t.truthy(h.exhausted);
  t.is(h.onFull(8, 'full'), 2000);
  t.is(h.maxAdds, 4);
  h.onFull(4, 'full'); h.onFull(2, 'full');
  t.is(h.maxAdds, 1, 'never below one');
  t.is(h.onFull(1, 'still full'), 8000, 'capped');
  t.is(h.exhausted!.message, 'still full');
  h.onAdded(1, 16);
  t.is(h.exhausted, undefined);
  t.is(h.maxAdds, 2);
  h.onAdded(2, 16); h.onAdded(4, 16);
  t.is(h.maxAdds, 8);
  h.onAdded(8, 16);
  t.is(h.maxAdds, undefined, 'back to whole batches');
});

test('a release clears exhaustion but keeps the cautious batch', (t) => {
  const h = new SubnetHealth();
  h.onFull(10, 'full');
  h.onReleased(0);
  t.truthy(h.exhausted);
  h.onReleased(3);
  t.is(h.exhausted, undefined);
  t.is(h.maxAdds, 5);
});
