import test from 'ava';
import { classify, DEFAULT_THROTTLE_MS, parseRetryAfter } from './azure-errors.js';

test('subscription throttling pauses for Retry-After', (t) => {
  t.deepEqual(classify({ status: 429, code: 'SubscriptionRequestsThrottled', message: 'm', retryAfter: '7' }), {
    kind: 'Throttled', retryAfterMs: 7000, code: 'SubscriptionRequestsThrottled', message: 'm',
  });
  t.like(classify({ status: 429, code: 'TooManyRequests' }), { kind: 'Throttled', retryAfterMs: DEFAULT_THROTTLE_MS });
});

test('a NIC busy with another operation is a per-resource conflict, not a throttle', (t) => {
  t.like(classify({ status: 429, code: 'RetryableError', details: [{ code: 'RetryableErrorDueToAnotherOperation' }], retryAfter: '2' }), { kind: 'Conflict', retryAfterMs: 2000 });
  t.like(classify({ status: 409, code: 'AnotherOperationInProgress' }), { kind: 'Conflict' });
  t.like(classify({ code: 'AnotherOperationInProgress' }), { kind: 'Conflict' }, 'a failed long-running operation has no HTTP status');
});

test('412, SubnetIsFull, 404 and the rest', (t) => {
  t.like(classify({ status: 412, code: 'PreconditionFailed' }), { kind: 'PreconditionFailed' });
  t.like(classify({ status: 400, code: 'SubnetIsFull' }), { kind: 'SubnetFull' });
  t.like(classify({ code: 'OperationFailed', details: [{ code: 'SubnetIsFull' }] }), { kind: 'SubnetFull' });
  t.like(classify({ status: 404, code: 'ResourceNotFound' }), { kind: 'NotFound' });
  t.like(classify({ status: 400, code: 'InvalidParameter' }), { kind: 'Other', retryable: false });
  t.like(classify({ status: 503, code: 'ServiceUnavailable' }), { kind: 'Other', retryable: true });
});

test('Retry-After as seconds, HTTP date, or retry-after-ms', (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.is(parseRetryAfter({ retryAfter: '3' }, now), 3000);
  t.is(parseRetryAfter({ retryAfter: 'Thu, 01 Jan 2026 00:00:05 GMT' }, now), 5000);
  t.is(parseRetryAfter({ retryAfterMs: '250', retryAfter: '9' }, now), 250);
  t.is(parseRetryAfter({ retryAfter: 'soon' }, now), undefined);
});

test('ip-configs of another subnet refused on the NIC: a kind of its own, not a generic error', (t) => {
  t.like(classify({ status: 400, code: 'IpConfigurationsOnSameNicCannotUseDifferentSubnets', message: 'IP configurations on same NIC n cannot use different subnets.' }), {
    kind: 'SubnetNotAllowedOnNIC', code: 'IpConfigurationsOnSameNicCannotUseDifferentSubnets',
  });
  t.like(classify({ code: 'OperationFailed', details: [{ code: 'IpConfigurationsOnSameNicCannotUseDifferentSubnets' }] }), { kind: 'SubnetNotAllowedOnNIC' }, 'inside a failed long-running operation');
});
