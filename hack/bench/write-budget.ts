import { ARM_DEFAULT_LIMITS, NETWORK_RP_WRITE_LIMITS, SlidingWindow, TokenBucket } from '../azure-emulator/throttle.js';

/**
 * The earliest time the last of `total` writes may go under ARM's write bucket (200 + 10/s), when
 * `networkWrites` of them are Microsoft.Network writes that also keep to the Network RP's window (1,000 per
 * 300 s) and the rest (scale-set VM updates) do not: a virtual clock through the emulator's own limiters,
 * spending Compute writes while the Network RP window is full. The reference a controller run is held to.
 */
export function writeBoundSeconds(total: number, networkWrites = total): { armAloneSeconds: number; networkRpAloneSeconds: number; bothSeconds: number } {
  let now = 0;
  const clock = () => now;
  const arm = new TokenBucket(ARM_DEFAULT_LIMITS.writes, clock);
  const nrp = new SlidingWindow(NETWORK_RP_WRITE_LIMITS, clock);
  let network = networkWrites;
  let compute = total - networkWrites;
  const armToken = () => { for (let r = arm.take(); !r.ok; r = arm.take()) now += r.retryAfterMs; };
  while (network + compute > 0) {
    if (network > 0 && compute === 0) {
      // Only Network writes left: wait for the window first, so no ARM token is spent waiting.
      const r = nrp.take();
      if (!r.ok) { now += r.retryAfterMs; continue; }
      armToken();
      network--;
      continue;
    }
    armToken();
    if (network > 0 && nrp.take().ok) network--;
    else compute--; // the window is full (or no Network writes are left): a Compute write goes instead
  }
  const armAloneSeconds = Math.max(0, (total - ARM_DEFAULT_LIMITS.writes.capacity) / ARM_DEFAULT_LIMITS.writes.refillPerSecond);
  const networkRpAloneSeconds = Math.max(0, Math.ceil(networkWrites / NETWORK_RP_WRITE_LIMITS.limit) - 1) * NETWORK_RP_WRITE_LIMITS.windowSeconds;
  return { armAloneSeconds, networkRpAloneSeconds, bothSeconds: Math.round(now) / 1000 };
}
