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

export interface Log {
  /** Creates the topic if it does not exist; an existing topic keeps its partition count. */
  ensureTopic(name: string, partitions: number): Promise<number>;
  partitionCount(topic: string): number;
  /**
   * Appends one record to the partition chosen by its key. Resolves once the record is durable
   * as the flush policy defines it (written for `interval`/`never`, fsynced for `always`).
   */
  append(topic: string, record: LogRecord): Promise<AppendResult>;
  /** Records from `offset` on, at least one if any exists, about `maxBytes` in all. */
  read(topic: string, partition: number, offset: number, maxBytes: number): StoredRecord[];
  /** Resolves when the partition holds a record at `offset` (or the signal aborts). */
  waitFor(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void>;
  commit(group: string, topic: string, partition: number, nextOffset: number): void;
  /** The next offset the group should read; the partition's start offset when nothing was committed. */
  committed(group: string, topic: string, partition: number): number;
  describeTopics(): TopicDescription[];
  describeGroups(): GroupDescription[];
  /** Flushes everything pending, fsyncs and closes files. */
  close(): Promise<void>;
}
