import { startConsumer, type Consumer, type ConsumerOptions } from '../log/consumer.js';
import type { Log } from '../log/types.js';
import { LogRateLimit } from '../log-rate-limit.js';
import type { Logger } from '../logger.js';
import { TELEMETRY_TOPIC } from '../telemetry/device-message.js';
import { packRecords } from './packed-records.js';
import type { StorageWorkerClient } from './storage-worker-client.js';
import type { WriteOutcome } from './storage-writer.js';

export const STORAGE_GROUP = 'storage';

export interface StorageConsumer extends Consumer {
  /**
   * What stopping waits for: true once every partition has stored what the log holds now — or
   * false as soon as a batch fails, since a failing batch is retried until it succeeds (the
   * database is busy, full, failing) and stopping must not wait for that. What was not stored is
   * read again from the log at the next start.
   */
  drain(): Promise<boolean>;
}

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
 * broker. A batch's offset is committed once SQLite has made it durable in sluice.db (the
 * worker's next WAL checkpoint), not merely committed it: whatever SQLite loses — an unsynced WAL
 * on a power loss, a WAL damaged or deleted — is then read again from the log.
 */
export function startStorageConsumer(options: StorageConsumerOptions): StorageConsumer {
  const { log, logger, worker, onStored, onOffsetReset } = options;
  const skipLogLimit = new LogRateLimit();
  // Partitions whose last batch failed (it is being retried).
  const failing = new Set<number>();
  const failureWaiters: (() => void)[] = [];
  const consumer = startConsumer({
    log, logger, group: STORAGE_GROUP, topic: TELEMETRY_TOPIC, onOffsetReset,
    // whenDurable() resolves in call order, so commits land in the order they were made. If the
    // worker fails first the offset stays where it was: those records are read again.
    commit: (partition, nextOffset) => worker.whenDurable().then(
      () => log.commit(STORAGE_GROUP, TELEMETRY_TOPIC, partition, nextOffset),
      (err: unknown) => logger.warn({ err, partition, nextOffset }, 'storage: not committing an offset SQLite did not make durable')),
    async handle(records) {
      const packed = packRecords(records);
      const { partition } = packed;
      let outcome: WriteOutcome;
      try {
        outcome = await worker.writeRecords(packed);
      } catch (err) {
        failing.add(partition);
        for (const w of failureWaiters.splice(0)) w();
        throw err;
      }
      failing.delete(partition);
      for (const s of outcome.skipped) {
        const left = skipLogLimit.take();
        if (left === undefined) continue;
        logger.warn({ topic: TELEMETRY_TOPIC, partition, offset: s.offset, kind: s.kind, reason: s.reason, alsoSkippedSinceLastLine: left },
          s.kind === 'unparsable' ? 'skipping a log record that does not parse' : 'skipping a log record SQLite cannot be given; the rest of its batch is stored');
      }
      onStored?.(outcome);
    },
  });
  return {
    ...consumer,
    // Caught up means stored, durable and committed: the commits waiting for durability were
    // queued before this wait, so they have landed once it resolves.
    async caughtUp() {
      await consumer.caughtUp();
      await worker.whenDurable();
    },
    drain() {
      if (failing.size > 0) return Promise.resolve(false);
      const failed = new Promise<boolean>((resolve) => failureWaiters.push(() => resolve(false)));
      return Promise.race([consumer.caughtUp().then(() => true), failed]);
    },
  };
}
