import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { SluiceError } from '../errors.js';

/**
 * Constant-time token comparison, so a wrong token says nothing of the right one — not even its
 * length: both sides are hashed to 32 bytes first, and those are compared in constant time.
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given === expected;
}

/** `Authorization: Bearer <admin token>` on every operator route. */
export function requireAdminToken(adminToken: string): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !tokensEqual(match[1]!.trim(), adminToken)) {
      return next(new SluiceError('UNAUTHORIZED', header ? 'the admin token is wrong' : 'missing Authorization: Bearer <admin token>'));
    }
    next();
  };
}
