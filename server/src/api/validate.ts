import type { z } from 'zod';
import { invalidInput } from '../errors.js';

/** Parses input with a zod schema; the error names the field at fault. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.join('.') : what;
  throw invalidInput(`${field}: ${issue.message}`);
}
