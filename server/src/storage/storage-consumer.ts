import { startConsumer, type Consumer, type ConsumerOptions } from '../log/consumer.js';
import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';
import { TELEMETRY_TOPIC } from '../telemetry/device-message.js';
import { packRecords } from './packed-records.js';
import type { StorageWorkerClient } from './storage-worker-client.js';
import type { WriteOutcome } from './storage-writer.js';

export const STORAGE_GROUP = 'storage';

export interface StorageConsumerOptions {
  log: Log;
  worker: StorageWorkerClient;
  logger: Logger;
  /** Called after each batch is committed to SQLite (metrics, the live `stats`). */
  onStored?: (outcome: WriteOutcome) => void;
  onOffsetReset?: ConsumerOptions['onOffsetReset'];
}

/**
 * The `storage` consumer group: telemetry log → SQLite. The log is read here; the batches go to
 * the storage worker thread (one transaction per batch), so SQLite's work does not hold up the
 * broker. A batch is committed once the worker has written it.
 */
export function startStorageConsumer(options: StorageConsumerOptions): Consumer {
  const { log, logger, worker, onStored, onOffsetReset } = options;
  return startConsumer({
    log, logger, group: STORAGE_GROUP, topic: TELEMETRY_TOPIC, onOffsetReset,
    async handle(records) {
      const packed = packRecords(records);
      const { partition } = packed;
      const outcome = await worker.writeRecords(packed);
      for (const s of outcome.skipped) {
        logger.warn({ topic: TELEMETRY_TOPIC, partition, offset: s.offset, reason: s.reason }, 'skipping a log record that does not parse');
      }
      onStored?.(outcome);
    },
  });
}
