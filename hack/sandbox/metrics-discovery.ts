import type { ChildProcess } from 'node:child_process';

/**
 * Where each component serves /metrics, learnt from its start-up log line: the controller logs `url`
 * ("serving metrics and health"), an agent `health` ("agent started"). Both listen on port 0.
 */
export class MetricsDiscovery {
  /** host:port by process name. */
  private readonly at = new Map<string, string>();

  get(name: string): string | undefined { return this.at.get(name); }

  /** Reads the child's stdout until its address line, then stops listening. */
  watch(name: string, child: ChildProcess): void {
    let pending = '';
    const scan = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const address = metricsAddressIn(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (address) { this.at.set(name, address); child.stdout!.off('data', scan); return; }
      }
    };
    child.stdout!.on('data', scan);
  }
}

/** The host:port a JSON log line announces, if it is one that does. */
export function metricsAddressIn(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const j = JSON.parse(line) as { url?: string; health?: string };
    return j.url?.replace(/^https?:\/\//, '') ?? j.health;
  } catch { return undefined; /* not a log line */ }
}
