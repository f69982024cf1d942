import { startConsumer, type Consumer, type ConsumerOptions } from '../log/consumer.js';
import type { Log, StoredRecord } from '../log/types.js';
import type { Logger } from '../logger.js';
import type { Device, DeviceRegistry } from '../storage/device-registry.js';
import { messageKind, TELEMETRY_TOPIC, userPropertiesOf } from '../telemetry/device-message.js';
import { parseTelemetryPayload } from '../telemetry/payload.js';
import type { RecentEntries } from '../telemetry/recent-entries.js';
import type { RuleDevice, RuleMessage } from './message.js';
import type { RuleEngine } from './rule-engine.js';

export const RULES_GROUP = 'rules';

export interface RulesConsumerOptions {
  log: Log;
  registry: DeviceRegistry;
  engine: RuleEngine;
  logger: Logger;
  /**
   * Called after each batch went through the rules, with where the partition now stands (sinks
   * flush here) — and whenever the position moves without a batch (start, idle skip, offset
   * reset), so the window checkpoint always has every partition's true position.
   */
  afterBatch?: (partition: number, nextOffset: number) => void | Promise<void>;
  onOffsetReset?: ConsumerOptions['onOffsetReset'];
  /**
   * The window checkpoint's offset of a partition. The checkpoint, not the group's committed
   * offset, says where the rules group resumes: the committed offset can be ahead of the window
   * state saved with the checkpoint. A partition it does not cover (never checkpointed) is read
   * from the earliest offset, never from the committed one nor past the end.
   */
  startAt?: (partition: number) => number | undefined;
  /** Values ingest parsed already, taken instead of parsing the record again. */
  recentEntries?: RecentEntries;
}

/**
 * The `rules` consumer group: each telemetry entry of the log becomes one RuleMessage and runs
 * through the rule engine, beside the storage group, so rules never slow ingestion down.
 */
export function startRulesConsumer(options: RulesConsumerOptions): Consumer {
  const { log, registry, engine, logger, afterBatch, onOffsetReset, startAt, recentEntries } = options;
  const devices = new WeakMap<Device, RuleDevice>();
  const ruleDevice = (d: Device): RuleDevice => {
    let r = devices.get(d);
    if (!r) devices.set(d, (r = { id: d.id, name: d.name, type: d.type, attributes: d.attributes }));
    return r;
  };
  return startConsumer({
    log, logger, group: RULES_GROUP, topic: TELEMETRY_TOPIC, onOffsetReset,
    startAt: (partition) => startAt?.(partition) ?? 'earliest',
    onPosition: afterBatch,
    idle: () => !engine.hasEnabledRules(),
    handle(records) {
      engine.process(toMessages(records, registry, ruleDevice, (d) => engine.wantsDevice(d), recentEntries));
      const last = records[records.length - 1]!;
      return afterBatch?.(last.partition, last.offset + 1);
    },
  });
}

export function toMessages(records: readonly StoredRecord[], registry: DeviceRegistry, ruleDevice: (d: Device) => RuleDevice,
  wanted: (d: RuleDevice) => boolean = () => true, recent?: RecentEntries): RuleMessage[] {
  const messages: RuleMessage[] = [];
  for (const record of records) {
    if (messageKind(record) !== 'telemetry') continue;
    const device = registry.find(record.key);
    if (!device) continue;
    const d = ruleDevice(device);
    if (!wanted(d)) continue;
    let entries = recent?.take(record.partition, record.offset);
    if (!entries) {
      const parsed = parseTelemetryPayload(record.value, record.timestamp);
      if (!parsed.ok) continue;
      entries = parsed.entries;
    }
    // MQTT 5 user properties of the PUBLISH, for every message of its payload.
    const userProperties = userPropertiesOf(record);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const metadata = userProperties === undefined ? {} : { userProperties };
      messages.push({ deviceId: device.id, ts: entry.ts, values: entry.values, metadata, device: d, offset: record.offset, partition: record.partition, entry: i });
    }
  }
  return messages;
}

export const WINDOW_RULES_GROUP = 'rules-windows';

/**
 * The `rules-windows` consumer group: final window results from the `windows` topic run through
 * the rules with `"input": "windows"` — values are the aggregates, ts the window end, the device
 * the group when it is a device (else a stand-in named after the group), metadata the window —
 * with `replaces`, the starts of earlier results this one supersedes (a merged session window).
 */
export function startWindowRulesConsumer(options: Omit<RulesConsumerOptions, 'afterBatch' | 'startAt'> & {
  topic: string;
  afterBatch?: () => void | Promise<void>;
  /** How the group's offsets are committed (by default at once): once what the batches wrote is durable. */
  commit?: ConsumerOptions['commit'];
}): Consumer {
  const { log, registry, engine, logger, onOffsetReset, topic, afterBatch, commit } = options;
  return startConsumer({
    log, logger, group: WINDOW_RULES_GROUP, topic, onOffsetReset, commit,
    idle: () => !engine.hasEnabledRules('windows'),
    handle(records) {
      const messages: RuleMessage[] = [];
      for (const record of records) {
        let r: { rule: string; node: string; group: string; start: number; end: number; values: Record<string, number | null>; final: boolean; update?: boolean; replaces?: unknown };
        try {
          r = JSON.parse(record.value.toString('utf8')) as typeof r;
        } catch {
          continue;
        }
        if (!r.final) continue;
        const d = registry.find(r.group);
        const device: RuleDevice = d ? { id: d.id, name: d.name, type: d.type, attributes: d.attributes } : { id: r.group, name: r.group, type: 'window-group', attributes: {} };
        if (!engine.wantsDevice(device, 'windows')) continue;
        const values: Record<string, number> = {};
        for (const [k, v] of Object.entries(r.values)) if (v !== null) values[k] = v;
        messages.push({
          deviceId: device.id, ts: r.end, values, device, offset: record.offset, partition: record.partition,
          metadata: { windowRule: r.rule, windowNode: r.node, windowStart: r.start, windowEnd: r.end, update: r.update === true, replaces: replacedStarts(r.replaces) },
        });
      }
      engine.process(messages, 'windows');
      return afterBatch?.();
    },
  });
}

/** The starts a window record supersedes: its `replaces` when that is a list of times, else none. */
function replacedStarts(replaces: unknown): number[] {
  return Array.isArray(replaces) && replaces.every((s) => Number.isSafeInteger(s)) ? replaces as number[] : [];
}
