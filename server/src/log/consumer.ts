import type { Logger } from '../logger.js';
import type { Log, StoredRecord } from './types.js';

export interface ConsumerOptions {
  log: Log;
  group: string;
  topic: string;
  logger: Logger;
  /** Handles one batch of one partition; the batch is committed once this resolves. */
  handle: (records: StoredRecord[]) => void | Promise<void>;
  maxBatchBytes?: number;
}

export interface Consumer {
  /** Stops after the batch in hand, commits it, and resolves. */
  stop(): Promise<void>;
  /** Resolves once every partition's committed offset has reached the end present now. */
  caughtUp(): Promise<void>;
}

/**
 * A consumer group member that owns every partition of a topic: each partition is read in
 * order from the group's committed offset, handed over in batches, and committed after the
 * handler succeeds (at-least-once). A failing batch is retried after a pause, never skipped.
 */
export function startConsumer(options: ConsumerOptions): Consumer {
  const { log, group, topic, logger, handle } = options;
  const maxBytes = options.maxBatchBytes ?? 1024 * 1024;
  const abort = new AbortController();
  const partitions = log.partitionCount(topic);
  const progressWaiters: (() => void)[] = [];

  const positions = Array.from({ length: partitions }, (_, p) => log.committed(group, topic, p));

  const notifyProgress = () => {
    for (const w of progressWaiters.splice(0)) w();
  };

  async function runPartition(partition: number): Promise<void> {
    let offset = positions[partition]!;
    while (!abort.signal.aborted) {
      let records: StoredRecord[];
      try {
        records = log.read(topic, partition, offset, maxBytes);
        if (records.length === 0) {
          await log.waitFor(topic, partition, offset, abort.signal);
          continue;
        }
        await handle(records);
      } catch (err) {
        logger.error({ err, group, topic, partition, offset }, 'consumer batch failed; retrying');
        await delay(500, abort.signal);
        continue;
      }
      offset = records[records.length - 1]!.offset + 1;
      positions[partition] = offset;
      log.commit(group, topic, partition, offset);
      notifyProgress();
    }
  }

  const running = Array.from({ length: partitions }, (_, p) => runPartition(p).catch((err) => {
    logger.fatal({ err, group, topic, partition: p }, 'consumer stopped on an unexpected error');
  }));

  return {
    async stop() {
      abort.abort();
      await Promise.all(running);
      notifyProgress();
    },
    async caughtUp() {
      const targets = Array.from({ length: partitions }, (_, p) => log.describeTopics().find((t) => t.name === topic)!.partitions[p]!.endOffset);
      while (!abort.signal.aborted && positions.some((pos, p) => pos! < targets[p]!)) {
        await new Promise<void>((resolve) => progressWaiters.push(resolve));
      }
    },
  };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
