import { Router } from 'express';
import { z } from 'zod';
import type { WindowEngine } from '../windows/window-engine.js';
import type { WindowStore } from '../windows/window-store.js';
import { parseInput, queryLimit, queryMillis, timeRange } from './validate.js';

const MAX_LIMIT = 10_000;
const windowsQuery = z.object({
  rule: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  from: queryMillis().optional(),
  to: queryMillis().optional(),
  limit: queryLimit(MAX_LIMIT).optional(),
}).strict();

/** /api/windows: window results (final and early), and the events that came too late. */
export function windowsRouter(store: WindowStore, engine: WindowEngine): Router {
  const router = Router();
  router.get('/', (req, res) => {
    const q = parseInput(windowsQuery, req.query, 'query');
    const { from, to } = timeRange(q);
    res.json(store.query({ rule: q.rule, group: q.group, from, to, limit: q.limit ?? 1000 }));
  });
  router.get('/late', (_req, res) => {
    res.json({ count: engine.lateCount, events: [...engine.lateEvents].reverse() });
  });
  return router;
}
