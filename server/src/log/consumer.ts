import { SluiceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isValidOffset } from './offsets-file.js';
import type { Log, StoredRecord } from './types.js';

export interface ConsumerOptions {
  log: Log;
  group: string;
  topic: string;
  logger: Logger;
  /** Handles one batch of one partition; the batch is committed once this resolves. */
  handle: (records: StoredRecord[]) => void | Promise<void>;
  maxBatchBytes?: number;
  /**
   * Called when the group's offset was outside the log (behind retention, or past the end after
   * a damaged tail was cut off) and the consumer jumped to the nearest valid one.
   */
  onOffsetReset?: (partition: number, from: number, to: number) => void;
  retryDelayMs?: number;
  /**
   * While this says true the group has nothing to do (e.g. no rules): it moves its offsets to the
   * end without reading, so it neither spends time on the log nor builds up a backlog.
   */
  idle?: () => boolean;
  /**
   * Where to start a partition instead of the group's committed offset (a checkpoint's offsets):
   * an offset, `'earliest'` (the partition's start offset), or undefined for the committed one.
   * Anything that is not an offset (a checkpoint's `null`, 1.5, -3) counts as `'earliest'`:
   * re-reading is safe, skipping is not.
   */
  startAt?: (partition: number) => number | 'earliest' | undefined;
  /**
   * Called whenever the group's position on a partition is set other than by a handled batch —
   * where it starts, an idle skip to the end, an offset reset — so that a caller keeping its own
   * record of positions (the rules group's window checkpoint) stays in step with the consumer.
   */
  onPosition?: (partition: number, nextOffset: number) => void | Promise<void>;
  /**
   * How the group's offset is committed; by default at once. A group whose handler's effects
   * become durable only later (storage: at SQLite's next WAL checkpoint) commits then. Commits
   * must land in the order they are made.
   */
  commit?: (partition: number, nextOffset: number) => void;
}

export interface Consumer {
  /** Stops after the batch in hand, commits it, and resolves. */
  stop(): Promise<void>;
  /**
   * Resolves once every partition's committed offset has reached the end present now; rejects
   * when a partition stopped short of it on its own (the log was closed under the consumer).
   */
  caughtUp(): Promise<void>;
}

/**
 * A consumer group member that owns every partition of a topic: each partition is read in
 * order from the group's committed offset (the earliest one when it has none), handed over in
 * batches, and committed after the handler succeeds (at-least-once). A failing batch is retried
 * after a pause, never skipped. Waiting for new records wakes on the append, without polling.
 * When the log is closed under it, the consumer says so and stops (it never spins on it), and
 * caughtUp() rejects if it had not got there.
 */
export function startConsumer(options: ConsumerOptions): Consumer {
  const { log, group, topic, logger, handle } = options;
  const commit = options.commit ?? ((partition: number, offset: number) => log.commit(group, topic, partition, offset));
  const maxBytes = options.maxBatchBytes ?? 1024 * 1024;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const abort = new AbortController();
  const partitions = log.partitionCount(topic);
  const progressWaiters: (() => void)[] = [];
  const positions: number[] = new Array<number>(partitions).fill(0);
  let started!: () => void;
  const allStarted = new Promise<void>((resolve) => { started = resolve; });
  let startedCount = 0;
  /** Per partition: its position is known (or it ended before that), for caughtUp(). */
  const startedFlags: boolean[] = new Array<boolean>(partitions).fill(false);
  const partitionStarted = (partition: number) => {
    if (startedFlags[partition]) return;
    startedFlags[partition] = true;
    if (++startedCount === partitions) started();
  };
  /** Per partition: its loop has ended, by stop() or on its own (closed log, unexpected error). */
  const ended: boolean[] = new Array<boolean>(partitions).fill(false);
  let closed = false;

  const notifyProgress = () => {
    for (const w of progressWaiters.splice(0)) w();
  };

  async function startOffset(partition: number): Promise<number> {
    const earliest = async () => (await log.offsets(topic, partition)).start;
    const fromCheckpoint = options.startAt?.(partition);
    if (fromCheckpoint === 'earliest') return earliest();
    if (fromCheckpoint !== undefined) {
      if (isValidOffset(fromCheckpoint)) return fromCheckpoint;
      logger.warn({ group, topic, partition, offset: fromCheckpoint },
        `consumer start offset ${String(fromCheckpoint)} of ${topic}/${partition} is not an offset; reading the partition from the earliest offset`);
      return earliest();
    }
    return (await log.committed(group, topic, partition)) ?? earliest();
  }

  /** Tells the caller where a partition now stands; a failure there is logged, the consumer goes on. */
  async function positioned(partition: number, offset: number): Promise<void> {
    try {
      await options.onPosition?.(partition, offset);
    } catch (err) {
      logger.error({ err, group, topic, partition, offset }, 'consumer: recording the position failed');
    }
  }

  async function resetOffset(partition: number, offset: number): Promise<number> {
    const { start, end } = await log.offsets(topic, partition);
    const to = offset < start ? start : end;
    logger.warn({ group, topic, partition, from: offset, to, start, end },
      offset < start
        ? `consumer offset ${offset} fell behind retention; resuming at the earliest offset ${to} (${to - offset} records were deleted unread)`
        : `consumer offset ${offset} is past the end of the log; resuming at ${to}`);
    options.onOffsetReset?.(partition, offset, to);
    commit(partition, to);
    return to;
  }

  /**
   * Waits for a record at `offset`. False when the log was closed instead: the wait ended with no
   * record there and no stop asked for (Log.waitFor ends early only when its signal aborts).
   */
  async function recordArrives(partition: number, offset: number): Promise<boolean> {
    await log.waitFor(topic, partition, offset, abort.signal);
    return abort.signal.aborted || (await log.offsets(topic, partition)).end > offset;
  }

  function logClosed(partition: number, offset: number): void {
    closed = true;
    logger.warn({ group, topic, partition, offset },
      `consumer group "${group}" stops reading ${topic}/${partition} at offset ${offset}: the log was closed`);
  }

  async function runPartition(partition: number): Promise<void> {
    let offset = await startOffset(partition);
    positions[partition] = offset;
    await positioned(partition, offset);
    partitionStarted(partition);
    while (!abort.signal.aborted) {
      if (options.idle?.()) {
        const { end } = await log.offsets(topic, partition);
        if (end > offset) {
          offset = end;
          commit(partition, offset);
          positions[partition] = offset; // after the commit: caughtUp() means committed
          await positioned(partition, offset);
          notifyProgress();
        }
        if (!(await recordArrives(partition, offset))) return logClosed(partition, offset);
        continue;
      }
      let records: StoredRecord[];
      try {
        records = await log.read(topic, partition, offset, maxBytes);
      } catch (err) {
        // Only the log's own answer to this read says where the group stands: the same code from
        // the handler (below) is the handler's failure, and the batch is retried, not skipped.
        if (err instanceof SluiceError && err.code === 'OFFSET_OUT_OF_RANGE') {
          offset = await resetOffset(partition, offset);
          positions[partition] = offset;
          await positioned(partition, offset);
          notifyProgress();
          continue;
        }
        if (err instanceof SluiceError && err.code === 'NOT_READY') return logClosed(partition, offset);
        logger.error({ err, group, topic, partition, offset }, 'consumer batch failed; retrying');
        await delay(retryDelayMs, abort.signal);
        continue;
      }
      if (records.length === 0) {
        if (!(await recordArrives(partition, offset))) return logClosed(partition, offset);
        continue;
      }
      try {
        await handle(records);
      } catch (err) {
        logger.error({ err, group, topic, partition, offset }, 'consumer batch failed; retrying');
        await delay(retryDelayMs, abort.signal);
        continue;
      }
      offset = records[records.length - 1]!.offset + 1;
      commit(partition, offset);
      positions[partition] = offset; // after the commit: caughtUp() means committed
      notifyProgress();
    }
  }

  const running = Array.from({ length: partitions }, (_, p) => runPartition(p).catch((err: unknown) => {
    logger.fatal({ err, group, topic, partition: p }, 'consumer stopped on an unexpected error');
  }).finally(() => {
    // A partition that ended on its own (closed log, unexpected error) makes no more progress:
    // whoever waits in caughtUp() must hear of it.
    ended[p] = true;
    partitionStarted(p);
    notifyProgress();
  }));

  return {
    async stop() {
      abort.abort();
      await Promise.all(running);
      notifyProgress();
    },
    async caughtUp() {
      await allStarted;
      const targets = await Promise.all(Array.from({ length: partitions }, (_, p) => log.offsets(topic, p).then((o) => o.end)));
      const behind = (p: number) => positions[p]! < targets[p]!;
      while (!abort.signal.aborted && positions.some((_, p) => behind(p) && !ended[p])) {
        await new Promise<void>((resolve) => progressWaiters.push(resolve));
      }
      if (!abort.signal.aborted && positions.some((_, p) => behind(p))) {
        throw new SluiceError('NOT_READY', closed
          ? `consumer group "${group}" stopped before it caught up on ${topic}: the log was closed`
          : `consumer group "${group}" stopped before it caught up on ${topic}: see the error logged before`);
      }
    },
  };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // Stopped already (during the batch that failed): no pause, and no 'abort' event will come.
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
