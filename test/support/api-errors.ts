import { expect } from 'vitest';

/**
 * Expects an API error answer: `status`, and a JSON body whose `error` matches `message` (a
 * RegExp, or a string it contains). Resolves with the error text.
 */
export async function expectApiError(response: Response | Promise<Response>, status: number, message: RegExp | string): Promise<string> {
  const res = await response;
  const text = await res.text();
  expect(res.status, `the status of an answer whose body is ${text}`).toBe(status);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`the ${res.status} answer's body is not JSON: ${text}`);
  }
  const error = (body as { error?: unknown } | null)?.error;
  expect(typeof error, `the type of "error" in ${text}`).toBe('string');
  expect(error).toMatch(message);
  return error as string;
}
