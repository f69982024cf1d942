import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Log } from './log/types.js';

/** Every Prometheus metric Sluice exports, in one registry served at /metrics. */
export function createMetrics(log: Log) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  return {
    registry,
    messagesIn: new Counter({
      name: 'sluice_messages_in_total', help: 'Device messages accepted into the log', labelNames: ['transport', 'kind'] as const, registers: [registry],
    }),
    messagesRejected: new Counter({
      name: 'sluice_messages_rejected_total', help: 'Device messages rejected, by reason', labelNames: ['transport', 'reason'] as const, registers: [registry],
    }),
    authFailures: new Counter({
      name: 'sluice_auth_failures_total', help: 'Connections or requests refused for an unknown token', labelNames: ['transport'] as const, registers: [registry],
    }),
    logAppendErrors: new Counter({
      name: 'sluice_log_append_errors_total', help: 'Appends the log refused (disk full, I/O error)', registers: [registry],
    }),
    pointsStored: new Counter({
      name: 'sluice_points_stored_total', help: 'Telemetry values written to SQLite', registers: [registry],
    }),
    mqttClients: new Gauge({
      name: 'sluice_mqtt_clients', help: 'Connected MQTT clients', registers: [registry],
    }),
    logEndOffset: new Gauge({
      name: 'sluice_log_end_offset', help: 'Next offset of each log partition', labelNames: ['topic', 'partition'] as const, registers: [registry],
      collect() {
        for (const t of log.describeTopics()) for (const p of t.partitions) this.set({ topic: t.name, partition: p.partition }, p.endOffset);
      },
    }),
    logBytes: new Gauge({
      name: 'sluice_log_bytes', help: 'Bytes on disk of each log partition', labelNames: ['topic', 'partition'] as const, registers: [registry],
      collect() {
        for (const t of log.describeTopics()) for (const p of t.partitions) this.set({ topic: t.name, partition: p.partition }, p.bytes);
      },
    }),
    consumerLag: new Gauge({
      name: 'sluice_consumer_lag', help: 'Records not yet processed by a consumer group', labelNames: ['group', 'topic', 'partition'] as const, registers: [registry],
      collect() {
        for (const g of log.describeGroups()) for (const p of g.partitions) this.set({ group: g.name, topic: g.topic, partition: p.partition }, p.lag);
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
