import path from 'node:path';
import express, { type ErrorRequestHandler } from 'express';
import type { Logger } from '../logger.js';
import type { Log } from '../log/types.js';
import type { Metrics } from '../metrics.js';
import { SluiceError } from '../errors.js';
import { redactDevicePath } from '../redact.js';
import type { Ingest } from '../ingest/ingest.js';
import type { RejectedMessages } from '../ingest/rejected-messages.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { TimeSeriesStore } from '../storage/timeseries.js';
import { requireAdminToken } from './auth.js';
import type { Clock } from '../clock.js';
import type { ConsumerProgress } from '../health/consumer-progress.js';
import { dashboardFiles, securityHeaders } from './dashboard-files.js';
import { deviceHttpRouter } from './device-http-router.js';
import { devicesRouter } from './devices-router.js';
import { logRouter } from './log-router.js';
import { rejectedRouter } from './rejected-router.js';
import { rulesRouter } from './rules-router.js';
import { windowsRouter } from './windows-router.js';
import { alarmsRouter } from './alarms-router.js';
import type { AlarmService } from '../alarms/alarm-service.js';
import type { WindowEngine } from '../windows/window-engine.js';
import type { WindowStore } from '../windows/window-store.js';
import type { RuleEngine } from '../rules/rule-engine.js';
import type { RuleService } from '../rules/rule-service.js';
import { telemetryRouter } from './telemetry-router.js';

export interface HttpAppOptions {
  adminToken: string;
  registry: DeviceRegistry;
  store: TimeSeriesStore;
  ingest: Ingest;
  log: Log;
  rejected: RejectedMessages;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  rules: RuleService;
  ruleEngine: RuleEngine;
  windows: WindowStore;
  windowEngine: WindowEngine;
  alarms: AlarmService;
  maxPayloadBytes: number;
  dashboardDir: string;
  isReady: () => boolean;
  /** Whether the consumer groups keep moving (a stalled one makes /healthz 503). */
  progress: Pick<ConsumerProgress, 'groups' | 'problems'>;
  /** Latest values per device in the fleet answer (devices-router.ts has the default). */
  fleetLatestKeysPerDevice?: number;
}

/** The HTTP surface: health, metrics, the device API, the operator API and the dashboard. */
export function createHttpApp(o: HttpAppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(securityHeaders());

  app.get('/healthz', (_req, res) => {
    if (!o.isReady()) return void res.status(503).json({ status: 'starting' });
    const consumers = o.progress.groups();
    const problems = o.progress.problems();
    if (problems.length > 0) res.status(503).json({ status: 'unhealthy', problems, consumers });
    else res.json({ status: 'ok', consumers });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(o.metrics.registry.contentType).send(await o.metrics.registry.metrics());
  });

  app.use('/api/v1', deviceHttpRouter(o.registry, o.ingest, o.metrics, o.clock, o.maxPayloadBytes));

  const api = express.Router();
  api.use(requireAdminToken(o.adminToken));
  api.use(express.json({ limit: '1mb' }));
  api.use('/devices/:id/telemetry', telemetryRouter(o.registry, o.store));
  api.use('/devices', devicesRouter(o.registry, o.store, o.fleetLatestKeysPerDevice));
  api.use('/log', logRouter(o.log));
  api.use('/rejected', rejectedRouter(o.rejected));
  api.use('/rules', rulesRouter(o.rules, o.ruleEngine));
  api.use('/windows', windowsRouter(o.windows, o.windowEngine));
  api.use('/alarms', alarmsRouter(o.alarms));
  app.use('/api', api);
  app.use('/api', (req, _res, next) => next(new SluiceError('NOT_FOUND', `no route ${req.method} /api${req.path}`)));

  app.use(dashboardFiles(o.dashboardDir));
  app.use(errorHandler(o.logger));
  return app;
}

/** The one place errors become HTTP answers: `{"error": "<what is wrong>"}`. */
function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (err instanceof SluiceError) {
      if (err.status >= 500) logger.error({ err, path: redactDevicePath(req.path) }, 'request failed');
      res.status(err.status).json({ error: err.message });
      return;
    }
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({ error: `body: not valid JSON (${e.message})` });
    } else if (e.type === 'entity.too.large') {
      res.status(413).json({ error: 'body: too large' });
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: e.message ?? 'bad request' });
    } else {
      logger.error({ err, path: redactDevicePath(req.path) }, 'unexpected error serving a request');
      res.status(500).json({ error: 'internal error; the server log has the details' });
    }
  };
}

export const defaultDashboardDir = path.resolve(import.meta.dirname, '../../../dashboard');
