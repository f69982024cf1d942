import { startConsumer, type Consumer, type ConsumerOptions } from '../log/consumer.js';
import type { Log, StoredRecord } from '../log/types.js';
import type { Logger } from '../logger.js';
import { messageKind, TELEMETRY_TOPIC } from '../telemetry/device-message.js';
import { parseTelemetryPayload } from '../telemetry/payload.js';
import type { DeviceRegistry } from './device-registry.js';
import type { DeviceEntries, StoredBatch, TimeSeriesStore } from './timeseries.js';

export const STORAGE_GROUP = 'storage';

export interface StorageConsumerOptions {
  log: Log;
  store: TimeSeriesStore;
  registry: DeviceRegistry;
  logger: Logger;
  /** Called after each batch is committed to SQLite: the live push hangs here. */
  onStored?: (batch: StoredBatch) => void;
  onOffsetReset?: ConsumerOptions['onOffsetReset'];
}

/** The `storage` consumer group: telemetry log → SQLite, one transaction per batch. */
export function startStorageConsumer(options: StorageConsumerOptions): Consumer {
  const { log, store, registry, logger, onStored, onOffsetReset } = options;
  return startConsumer({
    log, logger, group: STORAGE_GROUP, topic: TELEMETRY_TOPIC, onOffsetReset,
    handle(records) {
      const batch = toBatch(records, registry, logger);
      store.write(batch);
      onStored?.(batch);
    },
  });
}

function toBatch(records: StoredRecord[], registry: DeviceRegistry, logger: Logger): StoredBatch {
  const batch: StoredBatch = { telemetry: [], attributes: [] };
  for (const record of records) {
    // A device deleted after it sent this message: its data went with it.
    if (!registry.exists(record.key)) continue;
    const parsed = parseTelemetryPayload(record.value, record.timestamp);
    if (!parsed.ok) {
      logger.warn({ topic: record.topic, partition: record.partition, offset: record.offset, reason: parsed.reason }, 'skipping a log record that does not parse');
      continue;
    }
    const entries: DeviceEntries = { deviceId: record.key, entries: parsed.entries };
    (messageKind(record) === 'attributes' ? batch.attributes : batch.telemetry).push(entries);
  }
  return batch;
}
