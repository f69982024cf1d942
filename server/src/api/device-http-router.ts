import express, { Router, type ErrorRequestHandler } from 'express';
import type { Clock } from '../clock.js';
import { SluiceError } from '../errors.js';
import type { Ingest } from '../ingest/ingest.js';
import type { Metrics } from '../metrics.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { MessageKind } from '../telemetry/device-message.js';

/**
 * /api/v1/:token/telemetry|attributes: the device HTTP API (ThingsBoard's). The token in the path
 * is the device's credential, so these routes need no admin token. Answers 200 once durable.
 * Devices on MQTT basic or X.509 credentials have no token here (as in ThingsBoard): the registry
 * finds devices by the tokens they are on only.
 */
export function deviceHttpRouter(registry: DeviceRegistry, ingest: Ingest, metrics: Metrics, clock: Clock, maxPayloadBytes: number): Router {
  const router = Router();
  // Any content type: devices send JSON with whatever header their HTTP stack picks.
  router.use(express.raw({ type: () => true, limit: maxPayloadBytes }));

  for (const kind of ['telemetry', 'attributes'] as const satisfies MessageKind[]) {
    router.post(`/:token/${kind}`, async (req, res) => {
      const device = registry.findByToken(req.params.token);
      if (!device) {
        metrics.authFailures.inc({ transport: 'http' });
        throw new SluiceError('UNAUTHORIZED', 'unknown device token');
      }
      const payload = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const outcome = await ingest.accept(device, kind, payload, 'http', `/api/v1/<token>/${kind}`);
      if (!outcome.accepted) throw new SluiceError('INVALID_INPUT', outcome.reason);
      res.json({});
    });
  }

  // A body over the limit is a rejected message like any other: counted and listed.
  const tooLarge: ErrorRequestHandler = (err, req, _res, next) => {
    if ((err as { type?: string }).type !== 'entity.too.large') return next(err);
    const token = /^\/([^/]+)\//.exec(req.path)?.[1];
    const device = token ? registry.findByToken(token) : undefined;
    if (!device) return next(new SluiceError('UNAUTHORIZED', 'unknown device token'));
    const length = Number(req.headers['content-length'] ?? 0);
    const outcome = ingest.reject('http', `/api/v1/<token>/${req.path.split('/')[2] ?? ''}`, device.id, clock.now(), 'too_large',
      `payload of ${length > 0 ? length : 'more than ' + maxPayloadBytes} bytes exceeds the ${maxPayloadBytes}-byte limit`);
    next(new SluiceError('PAYLOAD_TOO_LARGE', outcome.accepted ? 'payload too large' : outcome.reason));
  };
  router.use(tooLarge);
  return router;
}
