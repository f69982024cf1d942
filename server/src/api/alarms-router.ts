import { Router } from 'express';
import { z } from 'zod';
import { publicAlarm, type AlarmService } from '../alarms/alarm-service.js';
import { severities, statuses } from '../alarms/alarm-store.js';
import { parseInput, queryLimit, queryMillis, timeRange } from './validate.js';

const MAX_LIMIT = 10_000;
const alarmsQuery = z.object({
  status: z.enum(statuses as [string, ...string[]], { error: `must be one of ${statuses.join(', ')}` }).optional(),
  device: z.string().min(1).optional(),
  severity: z.enum(severities, { error: `must be one of ${severities.join(', ')}` }).optional(),
  from: queryMillis().optional(),
  to: queryMillis().optional(),
  limit: queryLimit(MAX_LIMIT).optional(),
}).strict();

/** /api/alarms: alarms, newest first, and the operator's ack and clear. */
export function alarmsRouter(alarms: AlarmService): Router {
  const router = Router();
  router.get('/', (req, res) => {
    const q = parseInput(alarmsQuery, req.query, 'query');
    const { from, to } = timeRange(q);
    res.json(alarms.store.query({ status: q.status as never, device: q.device, severity: q.severity, from, to, limit: q.limit ?? 1000 }).map(publicAlarm));
  });
  router.get('/:id', (req, res) => {
    res.json(publicAlarm(alarms.store.get(req.params.id)));
  });
  router.post('/:id/ack', (req, res) => {
    res.json(publicAlarm(alarms.acknowledge(req.params.id)));
  });
  router.post('/:id/clear', (req, res) => {
    res.json(publicAlarm(alarms.clear(req.params.id)));
  });
  return router;
}
