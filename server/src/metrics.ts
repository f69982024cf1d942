import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { FileLogStats } from './log/file-log.js';
import type { Log } from './log/types.js';
import type { WebhookStats } from './rules/webhook-sender.js';

/** Every Prometheus metric Sluice exports, in one registry served at /metrics. */
export function createMetrics(log: Log, logStats?: FileLogStats) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  // Counted per message: plain numbers here, handed to prom-client when /metrics is read (its
  // labelled inc() hashes and validates the labels on every call).
  const accepted = { mqtt: { telemetry: 0, attributes: 0 }, http: { telemetry: 0, attributes: 0 } };
  const reported = { mqtt: { telemetry: 0, attributes: 0 }, http: { telemetry: 0, attributes: 0 } };
  return {
    registry,
    /** Counts one device message accepted into the log. */
    countMessageIn(transport: keyof typeof accepted, kind: keyof typeof accepted.mqtt): void {
      accepted[transport][kind]++;
    },
    messagesIn: new Counter({
      name: 'sluice_messages_in_total', help: 'Device messages accepted into the log', labelNames: ['transport', 'kind'] as const, registers: [registry],
      collect() {
        for (const transport of ['mqtt', 'http'] as const) {
          for (const kind of ['telemetry', 'attributes'] as const) {
            const delta = accepted[transport][kind] - reported[transport][kind];
            if (delta > 0) this.inc({ transport, kind }, delta);
            reported[transport][kind] = accepted[transport][kind];
          }
        }
      },
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
    storageRecordsSkipped: new Counter({
      name: 'sluice_storage_records_skipped_total', help: 'Log records the storage group skipped, each alone (the rest of its batch was stored), by reason: unparsable, unwritable',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    telemetryListenerErrors: new Counter({
      name: 'sluice_telemetry_listener_errors_total', help: 'Errors thrown after a telemetry append by what ingest hands the values to (live push, rules); the device was acknowledged all the same',
      registers: [registry],
    }),
    mqttClients: new Gauge({
      name: 'sluice_mqtt_clients', help: 'Connected MQTT clients', registers: [registry],
    }),
    mqttConnectionsRefused: new Counter({
      name: 'sluice_mqtt_connections_refused_total', help: 'MQTT connections refused at accept or before their CONNECT was accepted, by reason (unknown tokens: sluice_auth_failures_total)',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    mqttDisconnects: new Counter({
      name: 'sluice_mqtt_disconnects_total', help: 'Connected MQTT clients the broker disconnected for breaking a limit, by reason', labelNames: ['reason'] as const, registers: [registry],
    }),
    mqttQueuedDropped: new Counter({
      name: 'sluice_mqtt_queued_messages_dropped_total', help: 'Messages not queued for an offline MQTT session because its queue was full (the newest are dropped)', registers: [registry],
    }),
    mqttOutboundDropped: new Counter({
      name: 'sluice_mqtt_outbound_dropped_total',
      help: 'Messages to MQTT clients not sent, by reason (client_maximum_packet_size: larger than the client takes; slow_subscriber: QoS 0 to a client that does not read; retained_store_full: not retained, the store is at its cap)',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    mqttSessionsDropped: new Counter({
      name: 'sluice_mqtt_sessions_dropped_total', help: 'Offline persistent MQTT sessions dropped, by reason (expired, device_limit, device_deleted)', labelNames: ['reason'] as const, registers: [registry],
    }),
    logEndOffset: new Gauge({
      name: 'sluice_log_end_offset', help: 'Next offset of each log partition', labelNames: ['topic', 'partition'] as const, registers: [registry],
      async collect() {
        for (const t of await log.describeTopics()) for (const p of t.partitions) this.set({ topic: t.name, partition: p.partition }, p.endOffset);
      },
    }),
    logStartOffset: new Gauge({
      name: 'sluice_log_start_offset', help: 'Oldest offset still in each log partition', labelNames: ['topic', 'partition'] as const, registers: [registry],
      async collect() {
        for (const t of await log.describeTopics()) for (const p of t.partitions) this.set({ topic: t.name, partition: p.partition }, p.startOffset);
      },
    }),
    logBytes: new Gauge({
      name: 'sluice_log_bytes', help: 'Bytes on disk of each log partition', labelNames: ['topic', 'partition'] as const, registers: [registry],
      async collect() {
        for (const t of await log.describeTopics()) for (const p of t.partitions) this.set({ topic: t.name, partition: p.partition }, p.bytes);
      },
    }),
    consumerLag: new Gauge({
      name: 'sluice_consumer_lag', help: 'Records not yet processed by a consumer group', labelNames: ['group', 'topic', 'partition'] as const, registers: [registry],
      async collect() {
        for (const g of await log.describeGroups()) for (const p of g.partitions) this.set({ group: g.name, topic: g.topic, partition: p.partition }, p.lag);
      },
    }),
    consumerOffsetResets: new Counter({
      name: 'sluice_consumer_offset_resets_total', help: 'Times a consumer group offset was outside the log and jumped to the nearest valid one',
      labelNames: ['group', 'topic', 'partition'] as const, registers: [registry],
    }),
    ...(logStats ? fileLogMetrics(registry, logStats) : {}),
    /** What the values kept for the rules group take (RecentEntries), read when /metrics is scraped. */
    registerRecentValues(read: () => { bytes: number; evicted: number }) {
      new Gauge({
        name: 'sluice_rules_recent_values_bytes', help: 'Heap bytes (estimated) of the parsed values kept for the rules group', registers: [registry],
        collect() { this.set(read().bytes); },
      });
      new Counter({
        name: 'sluice_rules_recent_values_evicted_total', help: 'Parsed values dropped to stay within their memory budget (the rules group parses those records again)', registers: [registry],
        collect() { this.reset(); this.inc(read().evicted); },
      });
    },
    /** Rule node counters and webhook outcomes, read when /metrics is scraped. */
    registerRuleStats(read: () => { rule: string; nodes: { id: string; in: number; out: number; dropped: number; errors: number; limited?: Record<string, number | undefined> }[] }[], webhooks: WebhookStats,
      alarmOutbox?: Readonly<{ delivered: number; failedAttempts: number; pending: number; inFlight: number }>) {
      if (alarmOutbox) {
        new Gauge({
          name: 'sluice_alarm_notifications', help: 'Alarm webhook notifications: delivered and failed_attempts since start; pending (in the outbox) and in_flight now',
          labelNames: ['outcome'] as const, registers: [registry],
          collect() {
            this.set({ outcome: 'delivered' }, alarmOutbox.delivered);
            this.set({ outcome: 'failed_attempts' }, alarmOutbox.failedAttempts);
            this.set({ outcome: 'pending' }, alarmOutbox.pending);
            this.set({ outcome: 'in_flight' }, alarmOutbox.inFlight);
          },
        });
      }
      new Gauge({
        name: 'sluice_rule_node_messages', help: 'Messages per rule node since the rule was (re)loaded, by outcome', labelNames: ['rule', 'node', 'outcome'] as const, registers: [registry],
        collect() {
          this.reset();
          for (const r of read()) {
            for (const n of r.nodes) {
              for (const outcome of ['in', 'out', 'dropped', 'errors'] as const) this.set({ rule: r.rule, node: n.id, outcome }, n[outcome]);
            }
          }
        },
      });
      new Gauge({
        name: 'sluice_rule_node_limited', help: 'Times a rule node hit a limit since the rule was (re)loaded: messages failed (eval_budget, window_open_windows, window_groups, device_keys: a save beyond its device key cap) or keys forgotten early (dedupe_keys)',
        labelNames: ['rule', 'node', 'limit'] as const, registers: [registry],
        collect() {
          this.reset();
          for (const r of read()) for (const n of r.nodes) for (const [limit, count] of Object.entries(n.limited ?? {})) this.set({ rule: r.rule, node: n.id, limit }, count ?? 0);
        },
      });
      new Gauge({
        name: 'sluice_webhook_requests', help: 'Webhook requests by outcome since start (in_flight, queued, pending: now)', labelNames: ['outcome'] as const, registers: [registry],
        collect() {
          for (const outcome of ['sent', 'failed', 'retried', 'dropped', 'pending', 'in_flight', 'queued', 'timed_out'] as const) this.set({ outcome }, webhooks[outcome]);
        },
      });
    },
    // Gateway API and device credentials (issue 19); their rejections are also in sluice_messages_rejected_total.
    gatewayMessages: new Counter({
      name: 'sluice_gateway_messages_total', help: 'Messages gateways published on v1/gateway/*, by topic (connect, disconnect, telemetry, attributes, attributes_request, rpc, claim, other) and outcome (accepted, rejected)',
      labelNames: ['topic', 'outcome'] as const, registers: [registry],
    }),
    gatewaySubDevicesCreated: new Counter({
      name: 'sluice_gateway_sub_devices_created_total', help: 'Sub-devices gateways created by naming them', registers: [registry],
    }),
    devicePasswordChecks: new Counter({
      name: 'sluice_device_password_checks_total', help: 'MQTT basic password checks by outcome (good, cached: good without hashing, wrong, busy: refused, too many waiting)',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Counters the embedded log keeps itself, read when /metrics is scraped. */
function fileLogMetrics(registry: Registry, stats: FileLogStats) {
  const counter = (name: string, help: string, read: () => number) => new Counter({
    name, help, registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
  return {
    logRecordsAppended: counter('sluice_log_records_appended_total', 'Records written to the log', () => stats.recordsAppended),
    logBytesAppended: counter('sluice_log_bytes_appended_total', 'Bytes of record batches written to the log', () => stats.bytesAppended),
    logBatchesWritten: counter('sluice_log_batches_written_total', 'Group-commit flushes of a partition (one or more batches each)', () => stats.batchesWritten),
    logSegmentsDeleted: counter('sluice_log_segments_deleted_total', 'Log segments deleted by retention', () => stats.segmentsDeleted),
    logCorruptSkipped: counter('sluice_log_corrupt_records_skipped_total', 'Records readers skipped because their batch was damaged', () => stats.corruptRecordsSkipped),
    consumerOffsetsDiscarded: counter('sluice_consumer_offsets_discarded_total', 'Damaged consumer-offsets files and invalid partition offsets found at start; those partitions are read again from the earliest offset', () => stats.consumerOffsetsDiscarded),
  };
}
