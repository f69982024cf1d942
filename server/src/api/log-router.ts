import { Router } from 'express';
import type { Log } from '../log/types.js';

/** /api/log: topics, partitions, offsets and consumer-group lag. */
export function logRouter(log: Log): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.json({ topics: log.describeTopics(), groups: log.describeGroups() });
  });
  return router;
}
