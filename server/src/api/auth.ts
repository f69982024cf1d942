import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { SluiceError } from '../errors.js';

/** Constant-time token comparison, so a wrong token says nothing of the right one. */
export function tokensEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
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
