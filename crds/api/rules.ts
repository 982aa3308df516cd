import { z } from 'zod';

/**
 * A cross-field rule written once and enforced twice: as a CEL `x-kubernetes-validations` entry that the
 * API server runs, and as a TypeScript check that zod runs at every runtime boundary. Transition rules
 * (those that read `oldSelf`) run only on update, through `checkTransition`.
 */
export interface CrossFieldRule<T> {
  cel: string;
  message: string;
  check?: (self: T) => boolean;
  checkTransition?: (self: T, old: T) => boolean;
}

export function withRules<S extends z.ZodType>(schema: S, rules: ReadonlyArray<CrossFieldRule<z.output<S>>>): S {
  const checked = schema.superRefine((value, ctx) => {
    for (const rule of rules) {
      if (rule.check && !rule.check(value)) ctx.addIssue({ code: 'custom', message: rule.message, input: value });
    }
  });
  return checked.meta({
    'x-kubernetes-validations': rules.map((r) => ({ rule: r.cel, message: r.message })),
  }) as unknown as S;
}

/** Messages of the transition rules an update from `old` to `next` breaks. */
export function transitionViolations<T>(rules: ReadonlyArray<CrossFieldRule<T>>, next: T, old: T): string[] {
  return rules.filter((r) => r.checkTransition && !r.checkTransition(next, old)).map((r) => r.message);
}
