import { Router } from 'express';
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { TimeSeriesStore } from '../storage/timeseries.js';
import { parseInput, queryLimit, queryMillis, timeRange } from './validate.js';

export const MAX_LIMIT = 10_000;
export const MAX_BUCKETS = 100_000;


const telemetryQuery = z.object({
  keys: z.string().optional().transform((s) => s?.split(',').map((k) => k.trim()).filter((k) => k.length > 0)),
  from: queryMillis().optional(),
  to: queryMillis().optional(),
  limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number)
    .refine((n) => n >= 1 && n <= MAX_LIMIT, `must be 1..${MAX_LIMIT}`).optional(),
  interval: z.string().regex(/^\d+$/, 'must be a whole number of milliseconds').transform(Number)
    .refine((n) => n >= 1 && Number.isSafeInteger(n), 'must be at least 1 ms').optional(),
  agg: z.enum(['avg', 'min', 'max', 'sum', 'count'], { error: 'must be one of avg, min, max, sum, count' }).optional(),
});

/** /api/devices/:id/telemetry: latest values and history. */
export function telemetryRouter(registry: DeviceRegistry, store: TimeSeriesStore): Router {
  const router = Router({ mergeParams: true });

  router.get('/latest', (req, res) => {
    const device = registry.get((req.params as { id: string }).id);
    res.json(store.latest(device.id));
  });

  router.get('/', (req, res) => {
    const device = registry.get((req.params as { id: string }).id);
    const q = parseInput(telemetryQuery, req.query, 'query');
    const { from, to } = timeRange(q);
    const limit = q.limit ?? 1000;
    const keys = q.keys && q.keys.length > 0 ? q.keys : undefined;
    if ((q.interval === undefined) !== (q.agg === undefined)) {
      throw invalidInput(q.agg === undefined ? 'agg is required with interval' : 'interval is required with agg');
    }
    if (q.interval !== undefined && q.agg !== undefined) {
      if (q.from === undefined || q.to === undefined) throw invalidInput('from and to are required with interval');
      const buckets = Math.ceil((to - from + 1) / q.interval);
      if (buckets > MAX_BUCKETS) throw invalidInput(`interval: ${buckets} buckets between from and to, more than ${MAX_BUCKETS}`);
      res.json(store.aggregate({ deviceId: device.id, keys, from, to, limit, interval: q.interval, agg: q.agg }));
      return;
    }
    res.json(store.series({ deviceId: device.id, keys, from, to, limit }));
  });

  return router;
}
