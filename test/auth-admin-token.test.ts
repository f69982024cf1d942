import type { Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { requireAdminToken, tokensEqual } from '../server/src/api/auth.js';
import { SluiceError } from '../server/src/errors.js';

/**
 * requireAdminToken called directly, with header values an HTTP stack would not let through
 * (a trailing tab, a line break): what the check itself takes and refuses, not what Node's
 * parser happens to clean up first.
 */
const TOKEN = 'Unit-Admin-Token-42';

/** Runs the middleware on one Authorization header (none with undefined); returns what it passed to next. */
function check(authorization: string | undefined, token = TOKEN): { calls: number; err: unknown } {
  const req = { headers: authorization === undefined ? {} : { authorization } } as unknown as Request;
  let calls = 0;
  let err: unknown;
  requireAdminToken(token)(req, {} as Response, (e?: unknown) => { calls++; err = e; });
  return { calls, err };
}

const accepted = (authorization: string) => {
  const { calls, err } = check(authorization);
  expect(calls, authorization).toBe(1);
  expect(err, authorization).toBeUndefined();
};

const refused = (authorization: string | undefined, message: string) => {
  const { calls, err } = check(authorization);
  expect(calls, authorization).toBe(1);
  expect(err, authorization).toBeInstanceOf(SluiceError);
  expect((err as SluiceError).code, authorization).toBe('UNAUTHORIZED');
  expect((err as SluiceError).message, authorization).toBe(message);
};

describe('requireAdminToken', () => {
  it('passes the request on, once, with the token after "Bearer " in any case and spacing', () => {
    for (const h of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BeArEr ${TOKEN}`, `Bearer  \t ${TOKEN}`, `Bearer ${TOKEN}  `, `Bearer ${TOKEN}\t`, `Bearer\u00a0${TOKEN}\u00a0`]) accepted(h);
  });

  it('refuses a request without the header, saying what is missing', () => {
    refused(undefined, 'missing Authorization: Bearer <admin token>');
  });

  it('refuses an empty header as missing', () => {
    refused('', 'missing Authorization: Bearer <admin token>');
  });

  it('refuses a header whose scheme is not exactly Bearer at the start', () => {
    for (const h of [`xBearer ${TOKEN}`, ` Bearer ${TOKEN}`, `Basic ${TOKEN}`, `Bearer${TOKEN}`, TOKEN, `Token Bearer ${TOKEN}`]) refused(h, 'the admin token is wrong');
  });

  it('refuses the token with anything after it on another line', () => {
    for (const h of [`Bearer ${TOKEN}\nx`, `Bearer ${TOKEN}\r\nBearer ${TOKEN}`, `Bearer ${TOKEN}\n`]) refused(h, 'the admin token is wrong');
  });

  it('refuses near misses: a prefix, one more character, another case, blank', () => {
    for (const t of [TOKEN.slice(0, 1), TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toLowerCase(), TOKEN.toUpperCase(), ' ', `${TOKEN.slice(0, 4)} ${TOKEN.slice(4)}`]) {
      refused(`Bearer ${t}`, 'the admin token is wrong');
    }
    refused('Bearer', 'the admin token is wrong');
  });

  it('checks against the token it was made with', () => {
    expect(check('Bearer other-token', 'other-token')).toEqual({ calls: 1, err: undefined });
    expect(check(`Bearer ${TOKEN}`, 'other-token').err).toBeInstanceOf(SluiceError);
  });
});

describe('tokensEqual', () => {
  it('is true for the same token and false for near misses, of any length', () => {
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true);
    expect(tokensEqual('', '')).toBe(true);
    for (const near of [TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toLowerCase(), '', ` ${TOKEN}`, 'x'.repeat(1000)]) expect(tokensEqual(near, TOKEN), near).toBe(false);
  });
});
