import { Router } from 'express';
import { z } from 'zod';
import type { RejectedMessages } from '../ingest/rejected-messages.js';
import { parseInput } from './validate.js';

/** /api/rejected: the most recent rejected device messages, newest first. */
export function rejectedRouter(rejected: RejectedMessages): Router {
  const query = z.object({
    limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number)
      .refine((n) => n >= 1 && n <= rejected.capacity, `must be 1..${rejected.capacity}`).optional(),
  });
  const router = Router();
  router.get('/', (req, res) => {
    const { limit } = parseInput(query, req.query, 'query');
    res.json(rejected.recent(limit ?? 100));
  });
  return router;
}
