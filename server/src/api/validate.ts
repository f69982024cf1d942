import { z } from 'zod';
import { invalidInput } from '../errors.js';

/** Parses input with a zod schema; the error names the field at fault. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
    throw invalidInput(`${issue.keys.map((k) => prefix + k).join(', ')}: unknown field`);
  }
  const field = issue.path.length > 0 ? issue.path.join('.') : what;
  throw invalidInput(`${field}: ${issue.message}`);
}

/** Query parameters shared by the time-range routes: `from`/`to` in ms and `limit`. */
export const queryMillis = () => z.string().regex(/^\d+$/, 'must be a non-negative whole number of milliseconds')
  .transform(Number).refine(Number.isSafeInteger, 'is too large');

export const queryLimit = (max: number) => z.string().regex(/^\d+$/, 'must be a whole number').transform(Number)
  .refine((n) => n >= 1 && n <= max, `must be 1..${max}`);

/** `[from, to]`, all time by default; `from > to` is refused. */
export function timeRange(q: { from?: number; to?: number }): { from: number; to: number } {
  const from = q.from ?? 0;
  const to = q.to ?? Number.MAX_SAFE_INTEGER;
  if (from > to) throw invalidInput(`from (${from}) must not be after to (${to})`);
  return { from, to };
}
