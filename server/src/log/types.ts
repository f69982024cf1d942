import type { RetentionOverrides } from './topic-settings.js';

/**
 * The log interface: what ingest appends to and consumers read from. The embedded file log
 * implements it now; a Kafka-backed log can implement it later (docs/log.md).
 */

export interface LogRecord {
  /** Partitioning key: the device id for telemetry. */
  key: string;
  value: Buffer;
  /** Milliseconds since the epoch: when the record was appended. */
  timestamp: number;
  headers?: Record<string, string>;
}

export interface StoredRecord extends LogRecord {
  topic: string;
  partition: number;
  offset: number;
}

export interface AppendResult {
  partition: number;
  offset: number;
}

export interface PartitionDescription {
  partition: number;
  startOffset: number;
  /** The offset the next record will get: records are [startOffset, endOffset). */
  endOffset: number;
  bytes: number;
}

export interface TopicDescription {
  name: string;
  partitions: PartitionDescription[];
}

export interface GroupDescription {
  name: string;
  topic: string;
  partitions: { partition: number; committed: number; lag: number }[];
}

export interface PartitionOffsets {
  /** The oldest offset still in the log (retention deletes what is before it). */
  start: number;
  /** The offset the next record will get. */
  end: number;
}

/**
 * What every log implementation offers: the embedded FileLog now, a Kafka-backed log later
 * (docs/log.md). Everything that may need the network in another implementation is async.
 */
export interface Log {
  /**
   * Creates the topic if it does not exist; an existing topic keeps its partition count.
   * `retention` overrides the log's defaults for this topic (and is stored with it).
   */
  ensureTopic(name: string, partitions: number, retention?: RetentionOverrides): Promise<number>;
  partitionCount(topic: string): number;
  /**
   * Appends one record to the partition chosen by its key. Resolves once the record is durable
   * as the flush policy defines it (written for `interval`/`never`, fsynced for `always`).
   * Rejects with LOG_FULL when the disk is full and LOG_IO on other write errors.
   */
  append(topic: string, record: LogRecord): Promise<AppendResult>;
  /**
   * Records from `offset` on, at least one if any exists, about `maxBytes` in all. `offset`
   * equal to the end gives none; outside [start, end] it rejects with OFFSET_OUT_OF_RANGE.
   * Offsets are dense, except where a damaged batch had to be skipped. Once the log is closed it
   * rejects with NOT_READY.
   */
  read(topic: string, partition: number, offset: number, maxBytes: number): Promise<StoredRecord[]>;
  /** Resolves when the partition holds a record at `offset` (or the signal aborts): no polling. */
  waitFor(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void>;
  offsets(topic: string, partition: number): Promise<PartitionOffsets>;
  /** Stores the group's next offset to read; durable within a short interval. */
  commit(group: string, topic: string, partition: number, nextOffset: number): void;
  /** The group's committed next offset; undefined when the group never committed one. */
  committed(group: string, topic: string, partition: number): Promise<number | undefined>;
  describeTopics(): Promise<TopicDescription[]>;
  describeGroups(): Promise<GroupDescription[]>;
  /** Flushes everything pending, fsyncs and closes files. */
  close(): Promise<void>;
}
