import type http from 'node:http';
import { Server } from 'socket.io';
import { tokensEqual } from '../api/auth.js';
import type { Log } from '../log/types.js';
import { LogRateLimit } from '../log-rate-limit.js';
import type { Logger } from '../logger.js';
import type { TelemetryEntry } from '../telemetry/payload.js';
import type { StoredWindowResult } from '../windows/window-store.js';
import { writeFramesTogetherForClients } from './websocket-frames.js';

export interface Stats {
  ts: number;
  /** Device messages stored per second over the last interval. */
  ingestRate: number;
  lag: number;
}

export interface RealtimeServer {
  /** Pushes a device's values, as they reach the log, to the dashboards watching. */
  publishTelemetry(deviceId: string, entries: readonly TelemetryEntry[]): void;
  /** Counts stored messages for `stats`. */
  countStored(messages: number): void;
  /**
   * A window result, as GET /api/windows gives it, plus `replaces` on a final result that
   * supersedes earlier ones (a merged session window): dashboards drop those.
   */
  publishWindow(result: StoredWindowResult): void;
  /** An alarm after a change, with `change`: what changed (created, updated, escalated, acknowledged, cleared). */
  publishAlarm(alarm: object & { change: string }): void;
  close(): Promise<void>;
}

/**
 * socket.io on the HTTP port. Dashboards authenticate with the admin token (`auth: {token}`)
 * and receive `telemetry` events as values reach the durable log (when a QoS 1 message is
 * acknowledged; storage in SQLite follows within milliseconds) and `stats` about once a second.
 */
export function startRealtime(httpServer: http.Server, adminToken: string, log: Log, logger: Logger): RealtimeServer {
  const io = new Server(httpServer, { serveClient: false });
  writeFramesTogetherForClients(io.engine);
  io.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown }).token;
    if (typeof token === 'string' && tokensEqual(token, adminToken)) return next();
    logger.debug({ address: socket.handshake.address }, 'socket.io connection refused: wrong admin token');
    next(new Error('unauthorized: the admin token is wrong or missing'));
  });

  // socket.io walks an event's data recursively (hasBinary) and serialises it: data it cannot take
  // (nested too deep for the stack) throws. That must cost the event, never the caller — ingest
  // calls this after the append, and the device's PUBACK does not depend on dashboards.
  const emitErrorLogLimit = new LogRateLimit();
  const emit = (event: string, data: unknown) => {
    try {
      io.emit(event, data);
    } catch (err) {
      const left = emitErrorLogLimit.take();
      if (left !== undefined) {
        const about = data as { deviceId?: unknown; rule?: unknown };
        logger.warn({ err, event, deviceId: about.deviceId, rule: about.rule, alsoFailedSinceLastLine: left }, 'a live event could not be sent; dropped it');
      }
    }
  };

  let storedSinceLastStats = 0;
  let lastStatsAt = Date.now();
  const statsTimer = setInterval(async () => {
    const now = Date.now();
    const rate = (storedSinceLastStats * 1000) / Math.max(1, now - lastStatsAt);
    storedSinceLastStats = 0;
    lastStatsAt = now;
    const groups = await log.describeGroups().catch(() => []);
    const lag = groups.reduce((sum, g) => sum + g.partitions.reduce((s, p) => s + p.lag, 0), 0);
    io.emit('stats', { ts: now, ingestRate: Math.round(rate), lag } satisfies Stats);
  }, 1000);
  statsTimer.unref();

  return {
    publishTelemetry(deviceId, entries) {
      if (io.engine.clientsCount === 0) return;
      for (const entry of entries) emit('telemetry', { deviceId, ts: entry.ts, values: entry.values });
    },
    countStored(messages) {
      storedSinceLastStats += messages;
    },
    publishWindow(result) {
      if (io.engine.clientsCount > 0) emit('window', result);
    },
    publishAlarm(alarm) {
      if (io.engine.clientsCount > 0) emit('alarm', alarm);
    },
    async close() {
      clearInterval(statsTimer);
      // io.close() would also close the HTTP server, which the caller owns.
      io.disconnectSockets(true);
      io.engine.close();
    },
  };
}
