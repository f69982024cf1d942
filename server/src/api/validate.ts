import type { z } from 'zod';
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
