import { Router } from 'express';
import type { Log } from '../log/types.js';

/** /api/log: topics, partitions, offsets and consumer-group lag. */
export function logRouter(log: Log): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const [topics, groups] = await Promise.all([log.describeTopics(), log.describeGroups()]);
    res.json({ topics, groups });
  });
  return router;
}
