import { Worker } from 'node:worker_threads';
import { startConsumer, type Consumer, type ConsumerOptions } from '../log/consumer.js';
import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';
import { TELEMETRY_TOPIC } from '../telemetry/device-message.js';
import { packRecords, transferList } from './packed-records.js';
import type { WriteReply, WriteRequest } from './storage-worker.js';
import type { WriteOutcome } from './storage-writer.js';

export const STORAGE_GROUP = 'storage';

export interface StorageConsumerOptions {
  log: Log;
  dataDir: string;
  logger: Logger;
  /** Whether anyone watches live: then each batch comes back with what was stored. */
  wantsLiveTelemetry?: () => boolean;
  /** Called after each batch is committed to SQLite: metrics and the live push hang here. */
  onStored?: (outcome: WriteOutcome) => void;
  onOffsetReset?: ConsumerOptions['onOffsetReset'];
}

/**
 * The `storage` consumer group: telemetry log → SQLite. The log is read here; the batches go to
 * a worker thread with its own SQLite connection (one transaction per batch), so SQLite's work
 * does not hold up the broker. A batch is committed once the worker has written it.
 */
export function startStorageConsumer(options: StorageConsumerOptions): Consumer {
  const { log, logger, onStored, onOffsetReset, wantsLiveTelemetry = () => false } = options;
  const worker = new Worker(new URL('./storage-worker-entry.mjs', import.meta.url), { workerData: { dataDir: options.dataDir } });
  const waiting = new Map<number, { resolve: (o: WriteOutcome) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let workerError: Error | undefined;
  worker.on('message', (reply: WriteReply | 'closed') => {
    if (reply === 'closed') return;
    const w = waiting.get(reply.id);
    waiting.delete(reply.id);
    if ('error' in reply) w?.reject(new Error(`storage worker: ${reply.error}`));
    else w?.resolve(reply.outcome);
  });
  const failAll = (err: Error) => {
    workerError = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', (err) => {
    logger.fatal({ err }, 'the storage worker failed');
    failAll(err);
  });
  worker.on('exit', (code) => failAll(new Error(`the storage worker exited (${code})`)));

  const consumer = startConsumer({
    log, logger, group: STORAGE_GROUP, topic: TELEMETRY_TOPIC, onOffsetReset,
    async handle(records) {
      if (workerError) throw workerError;
      const packed = packRecords(records);
      const outcome = await new Promise<WriteOutcome>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, packed, live: wantsLiveTelemetry() } satisfies WriteRequest, transferList(packed));
      });
      for (const s of outcome.skipped) {
        logger.warn({ topic: TELEMETRY_TOPIC, partition: packed.partition, offset: s.offset, reason: s.reason }, 'skipping a log record that does not parse');
      }
      onStored?.(outcome);
    },
  });

  return {
    caughtUp: () => consumer.caughtUp(),
    async stop() {
      await consumer.stop();
      if (workerError) return;
      const closed = new Promise<void>((resolve) => worker.on('message', (m) => { if (m === 'closed') resolve(); }));
      worker.postMessage('close');
      await closed;
      await worker.terminate();
    },
  };
}
