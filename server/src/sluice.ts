import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { resolveAdminToken } from './admin-token.js';
import { createHttpApp, defaultDashboardDir } from './api/http-app.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { StartupError } from './errors.js';
import { ConsumerProgress } from './health/consumer-progress.js';
import { DeviceTelemetryKeys } from './ingest/device-telemetry-keys.js';
import { Ingest } from './ingest/ingest.js';
import { startMqttBroker } from './ingest/mqtt-broker.js';
import { RejectedMessages } from './ingest/rejected-messages.js';
import { FileLog } from './log/file-log.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { startRealtime } from './realtime/socket-server.js';
import { RULES_GROUP, WINDOW_RULES_GROUP } from './rules/rules-consumer.js';
import { DevicesRulesWant } from './rules/devices-rules-want.js';
import { createRulesRuntime, WINDOWS_TOPIC } from './rules/rules-runtime.js';
import { publicAlarm } from './alarms/alarm-service.js';
import { openDatabase } from './storage/database.js';
import { DeviceRegistry } from './storage/device-registry.js';
import { STORAGE_GROUP, startStorageConsumer } from './storage/storage-consumer.js';
import { startStorageWorker } from './storage/storage-worker-client.js';
import { TimeSeriesStore } from './storage/timeseries.js';
import { TELEMETRY_TOPIC } from './telemetry/device-message.js';
import { DEFAULT_RECENT_ENTRIES_PER_PARTITION, RecentEntries } from './telemetry/recent-entries.js';

export interface Sluice {
  ports: { mqtt: number; http: number };
  adminToken: string;
  adminTokenGenerated: boolean;
  /** Resolves once the storage consumer has stored everything in the log now. */
  storageCaughtUp(): Promise<void>;
  /** Resolves once the rule engine has seen everything in the log now. */
  rulesCaughtUp(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Builds every piece and starts them, in the order data flows: log, storage, ingest, servers.
 * Stops in reverse: stop taking input, drain, flush the log, close the database.
 * `config.limits` bounds what one message, device, connection and rule may cost (docs/limits.md);
 * each one left unset keeps the default of the module that enforces it.
 */
export async function startSluice(config: Config, logger: Logger, clock: Clock = systemClock): Promise<Sluice> {
  const { mqtt: mqttLimits, telemetry: telemetryLimits, rejected: rejectedLimits } = config.limits;
  fs.mkdirSync(config.dataDir, { recursive: true });
  // First of all, before the log is touched: one Sluice per data dir (data-dir-lock.ts).
  const dataDirLock = lockDataDir(config.dataDir);
  const { token: adminToken, generated } = resolveAdminToken(config.dataDir, config.adminToken);

  const log = new FileLog(config.dataDir, config.fsync, logger.child({ component: 'log' }), {
    clock,
    retention: { retentionMs: config.logRetentionMs, retentionBytes: config.logRetentionBytes, segmentBytes: config.logSegmentBytes },
  });
  const partitions = await log.ensureTopic(TELEMETRY_TOPIC, config.partitions);
  if (partitions !== config.partitions) {
    logger.warn({ topic: TELEMETRY_TOPIC, partitions, configured: config.partitions }, 'the topic keeps the partition count it was created with');
  }
  await log.ensureTopic(WINDOWS_TOPIC, config.partitions);
  const db = openDatabase(config.dataDir);
  // The storage worker writes most and checkpoints the WAL; this thread never does it inline.
  db.pragma('wal_autocheckpoint = 0');
  const registry = new DeviceRegistry(db, clock);
  const store = new TimeSeriesStore(db);
  const metrics = createMetrics(log, log.stats);
  const storageWorker = startStorageWorker(config.dataDir, logger.child({ component: 'storage' }));
  const recentEntries = new RecentEntries(partitions, DEFAULT_RECENT_ENTRIES_PER_PARTITION, telemetryLimits.recentValuesMaxBytes);
  metrics.registerRecentValues(() => ({ bytes: recentEntries.bytes, evicted: recentEntries.evicted }));
  const deviceKeys = new DeviceTelemetryKeys({ keysOf: (id, limit) => store.seriesKeys(id, limit), hasKey: (id, key) => store.hasSeries(id, key) },
    telemetryLimits.maxKeysPerDevice);
  const rules = createRulesRuntime({
    db, rulesDir: config.rulesDir, log, registry, writes: storageWorker, recentEntries, deviceKeys, logger, alarmRetry: config.alarmRetry,
    limits: config.limits.rules, webhookLimits: config.limits.webhooks, alarmWebhookLimits: config.limits.alarmWebhooks, clock,
    onOffsetReset: (partition) => metrics.consumerOffsetResets.inc({ group: RULES_GROUP, topic: TELEMETRY_TOPIC, partition }),
    onWindowsOffsetReset: (partition) => metrics.consumerOffsetResets.inc({ group: WINDOW_RULES_GROUP, topic: WINDOWS_TOPIC, partition }),
  });
  rules.service.loadAll();
  metrics.registerRuleStats(() => rules.engine.allStats(), rules.webhooks.stats, rules.alarmOutboxStats);
  const rejected = new RejectedMessages(undefined, rejectedLimits);
  const deviceAttributes = new DeviceTelemetryKeys({ keysOf: (id, limit) => store.attributeKeys(id, limit), hasKey: (id, key) => store.hasAttribute(id, key) },
    telemetryLimits.maxAttributesPerDevice, undefined, 'client attributes');
  registry.on('deleted', (device) => { deviceKeys.forget(device.id); deviceAttributes.forget(device.id); });
  const ingest = new Ingest(log, rejected, metrics, clock, logger.child({ component: 'ingest' }), config.maxPayloadBytes, {
    payloadLimits: { maxDepth: telemetryLimits.maxPayloadDepth, maxKeys: telemetryLimits.maxPayloadKeys }, deviceKeys, deviceAttributes,
  });

  let ready = false;
  const progress = new ConsumerProgress({
    log, clock, stallAfterMs: config.healthStallAfterMs,
    groups: [{ group: STORAGE_GROUP, topic: TELEMETRY_TOPIC }, { group: RULES_GROUP, topic: TELEMETRY_TOPIC }, { group: WINDOW_RULES_GROUP, topic: WINDOWS_TOPIC }],
  });
  const app = createHttpApp({
    adminToken, registry, store, ingest, log, rejected, metrics, rules: rules.service, ruleEngine: rules.engine, windows: rules.windowStore, windowEngine: rules.windows, alarms: rules.alarms, logger: logger.child({ component: 'http' }), clock,
    maxPayloadBytes: config.maxPayloadBytes, dashboardDir: defaultDashboardDir, isReady: () => ready, progress, fleetLatestKeysPerDevice: config.limits.api.fleetLatestKeysPerDevice,
  });
  const httpServer = http.createServer(app);
  const realtime = startRealtime(httpServer, adminToken, log, logger.child({ component: 'realtime' }));
  rules.onWindowResult((r) => realtime.publishWindow(r));
  // Values are kept for the rules group only for devices an enabled rule selects: the others'
  // would never be taken, only wait to be pushed out.
  const rulesWant = new DevicesRulesWant(rules.engine);
  ingest.onTelemetry((device, parsed, appended, payloadBytes) => {
    if (rulesWant.wants(device)) recentEntries.put(appended.partition, appended.offset, parsed.entries, payloadBytes, parsed.keys);
    realtime.publishTelemetry(device.id, parsed.entries);
  });
  // The alarm after the change, and what the change was (created, updated, escalated, acknowledged, cleared).
  rules.onAlarm((alarm, change) => realtime.publishAlarm({ ...publicAlarm(alarm), change }));

  const storage = startStorageConsumer({
    log, worker: storageWorker, logger: logger.child({ component: 'storage' }),
    onOffsetReset: (partition) => metrics.consumerOffsetResets.inc({ group: STORAGE_GROUP, topic: TELEMETRY_TOPIC, partition }),
    onStored(outcome) {
      metrics.pointsStored.inc(outcome.points);
      for (const s of outcome.skipped) metrics.storageRecordsSkipped.inc({ reason: s.kind });
      realtime.countStored(outcome.messages);
    },
  });

  const mqtt = await startMqttBroker({ registry, ingest, metrics, logger: logger.child({ component: 'mqtt' }), maxPayloadBytes: config.maxPayloadBytes, ...mqttLimits });
  rules.start((topic, payload, qos, retain) => mqtt.publish(topic, payload, qos, retain));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      ready = false;
      progress.stop();
      await mqtt.close();
      await realtime.close();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      // Not caughtUp(): a storage group whose batches fail would never get there.
      if (!(await storage.drain())) logger.warn('stopping while storage batches fail: what is not stored yet is stored from the log after the next start');
      await storage.stop();
      await rules.stop();
      await storageWorker.close();
      await log.close();
      db.close();
      dataDirLock.release();
    })();
    return stopping;
  };

  let ports: { mqtt: number; http: number };
  try {
    ports = {
      mqtt: await listen(mqtt.server, { port: config.mqttPort, host: config.host, what: 'MQTT', flag: '--mqtt-port / MQTT_PORT' }),
      http: await listen(httpServer, { port: config.httpPort, host: config.host, what: 'HTTP', flag: '--http-port / HTTP_PORT' }),
    };
  } catch (err) {
    await stop();
    throw err;
  }
  fs.writeFileSync(path.join(config.dataDir, 'ports.json'), JSON.stringify(ports));
  progress.start();
  ready = true;

  return {
    ports,
    adminToken,
    adminTokenGenerated: generated,
    storageCaughtUp: () => storage.caughtUp(),
    rulesCaughtUp: () => rules.caughtUp(),
    stop,
  };
}

interface ListenOn {
  port: number;
  host: string;
  /** The server, for the error message: MQTT or HTTP. */
  what: string;
  /** The option that sets the port, for the error message. */
  flag: string;
}

/** Listens; a port that cannot be had fails with a message naming the server and the option to change. */
function listen(server: http.Server | import('node:net').Server, on: ListenOn): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      const where = `${on.host}:${on.port}`;
      const why = err.code === 'EADDRINUSE' ? `is already in use (another Sluice or broker?)`
        : err.code === 'EACCES' ? 'needs privileges this process lacks (ports below 1024)'
        : err.code === 'EADDRNOTAVAIL' ? `is not an address of this machine (--host / HOST)` : `cannot be listened on: ${err.message}`;
      reject(new StartupError(`the ${on.what} port ${where} ${why}; choose another with ${on.flag}`, { cause: err }));
    };
    server.once('error', failed);
    server.listen(on.port, on.host, () => {
      server.off('error', failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
