// Injected faults: rules that make the next `count` matching ARM calls fail, either at once (`as: 'response'`)
// or by accepting the write and failing its long-running operation (`as: 'operation'`).
import { randomUUID } from 'node:crypto';
import { faultSchema, type FaultRule, type FaultRuleInput } from './config.js';

/** The request kinds that run a long-running operation, the only ones an `as: 'operation'` fault can fail. */
export const LRO_KINDS = ['nic.put', 'vmssvm.put'];

export type PendingFault = FaultRule & { id: string; remaining: number };

export class Faults {
  private readonly rules: PendingFault[] = [];

  /** Adds a rule; returns its id. */
  inject(rule: FaultRuleInput): string {
    const parsed = faultSchema.parse(rule);
    if (parsed.as === 'operation' && !LRO_KINDS.includes(parsed.kind?.toLowerCase() ?? '')) {
      throw new Error(`a fault with as: 'operation' needs kind ${LRO_KINDS.join(' or ')}, the writes that run a long-running operation`);
    }
    const id = randomUUID();
    this.rules.push({ ...parsed, id, remaining: parsed.count });
    return id;
  }

  clear(): void { this.rules.length = 0; }

  pending(): PendingFault[] { return this.rules.map((f) => ({ ...f })); }

  /** The first rule matching the call, counted down (and dropped when spent); undefined when none does. */
  take(kind: string, method: string, url: URL): FaultRule | undefined {
    const path = url.pathname.toLowerCase();
    const i = this.rules.findIndex((f) =>
      (f.kind === undefined || f.kind === '*' || f.kind.toLowerCase() === kind) &&
      (f.method === undefined || f.method.toUpperCase() === method) &&
      (f.pathContains === undefined || path.includes(f.pathContains.toLowerCase())));
    if (i < 0) return undefined;
    const f = this.rules[i]!;
    f.remaining--;
    if (f.remaining <= 0) this.rules.splice(i, 1);
    return f;
  }
}
