import { Router } from 'express';
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import type { WindowEngine } from '../windows/window-engine.js';
import type { WindowStore } from '../windows/window-store.js';
import { parseInput } from './validate.js';

const MAX_LIMIT = 10_000;
const millis = () => z.string().regex(/^\d+$/, 'must be a non-negative whole number of milliseconds').transform(Number).refine(Number.isSafeInteger, 'is too large');
const windowsQuery = z.object({
  rule: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  from: millis().optional(),
  to: millis().optional(),
  limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).refine((n) => n >= 1 && n <= MAX_LIMIT, `must be 1..${MAX_LIMIT}`).optional(),
}).strict();

/** /api/windows: window results (final and early), and the events that came too late. */
export function windowsRouter(store: WindowStore, engine: WindowEngine): Router {
  const router = Router();
  router.get('/', (req, res) => {
    const q = parseInput(windowsQuery, req.query, 'query');
    const from = q.from ?? 0;
    const to = q.to ?? Number.MAX_SAFE_INTEGER;
    if (from > to) throw invalidInput(`from (${from}) must not be after to (${to})`);
    res.json(store.query({ rule: q.rule, group: q.group, from, to, limit: q.limit ?? 1000 }));
  });
  router.get('/late', (_req, res) => {
    res.json({ count: engine.lateCount, events: [...engine.lateEvents].reverse() });
  });
  return router;
}
