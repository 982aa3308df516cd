import type { z } from 'zod';

/** One line per problem, each naming the field: `spec.ipsPerNode: min must not exceed max`. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
      return `${path || '(root)'}: ${issue.message}`;
    })
    .join('; ');
}

/** Parses `input` or throws an Error whose message says what is wrong and where. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string, prefix = ''): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new Error(`invalid ${what}: ${describeIssues(result.error, prefix)}`);
  return result.data;
}
