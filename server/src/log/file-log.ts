import fs from 'node:fs';
import path from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import type { FsyncPolicy } from '../config.js';
import { SluiceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { GroupOffsets } from './group-offsets.js';
import { PartitionLog } from './partition-log.js';
import { partitionForKey } from './partitioner.js';
import {
  defaultRetention, readTopicFile, retentionOverrides, writeTopicFile,
  type RetentionOverrides, type RetentionSettings, type TopicSettings,
} from './topic-settings.js';
import type {
  AppendResult, GroupDescription, Log, LogRecord, PartitionOffsets, StoredRecord, TopicDescription,
} from './types.js';

export interface FileLogOptions {
  clock?: Clock;
  /** Defaults for every topic; a topic's own overrides (ensureTopic) win. */
  retention?: Partial<RetentionSettings>;
  /** How often retention runs; 0 turns the timer off (tests call enforceRetention). */
  retentionCheckMs?: number;
}

/** What the log did, for /metrics. */
export interface FileLogStats {
  recordsAppended: number;
  bytesAppended: number;
  batchesWritten: number;
  segmentsDeleted: number;
  recordsDeletedByRetention: number;
  corruptRecordsSkipped: number;
  appendErrors: number;
  /** Damaged consumer-offsets files and invalid partition offsets found at start (read again from the earliest). */
  consumerOffsetsDiscarded: number;
}

interface Topic {
  overrides: RetentionOverrides;
  partitions: PartitionLog[];
  /** key → partition, remembered: keys (device ids) repeat on every message. */
  partitionOfKey: Map<string, PartitionLog>;
}

const MAX_REMEMBERED_KEYS = 100_000;

/**
 * The embedded log: topics of partitions of segments under `<data-dir>/log` (docs/log.md).
 * Appends made in the same turn of the event loop are written together, in batches of about
 * 1 MiB per partition (group commit), and acknowledged once written — or once fsynced under
 * `always`.
 */
export class FileLog implements Log {
  readonly stats: FileLogStats = {
    recordsAppended: 0, bytesAppended: 0, batchesWritten: 0, segmentsDeleted: 0,
    recordsDeletedByRetention: 0, corruptRecordsSkipped: 0, appendErrors: 0, consumerOffsetsDiscarded: 0,
  };
  private readonly dir: string;
  private readonly topics = new Map<string, Topic>();
  private readonly groups: GroupOffsets;
  private readonly waiters = new Map<PartitionLog, Set<{ offset: number; wake: () => void }>>();
  private readonly lastReads = new Map<PartitionLog, { offset: number; maxBytes: number; records: StoredRecord[] }>();
  private readonly clock: Clock;
  private readonly defaults: RetentionSettings;
  // Appends waiting for the next flush, as parallel arrays: no object per append on the hot path.
  private pendingPartitions: PartitionLog[] = [];
  private pendingResolves: ((result: AppendResult) => void)[] = [];
  private pendingRejects: ((err: Error) => void)[] = [];
  private readonly capture = (resolve: (result: AppendResult) => void, reject: (err: Error) => void) => {
    this.pendingResolves.push(resolve);
    this.pendingRejects.push(reject);
  };
  private flushScheduled = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(dataDir: string, private readonly fsync: FsyncPolicy, private readonly logger: Logger, options: FileLogOptions = {}) {
    this.dir = path.join(dataDir, 'log');
    this.clock = options.clock ?? systemClock;
    this.defaults = { ...defaultRetention, ...options.retention };
    fs.mkdirSync(this.dir, { recursive: true });
    this.groups = new GroupOffsets(path.join(this.dir, '__consumer_offsets'), 100, logger, (n) => { this.stats.consumerOffsetsDiscarded += n; });
    for (const entry of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('__')) continue;
      const file = readTopicFile(path.join(this.dir, entry.name));
      if (!file) continue;
      const { partitions, ...overrides } = file;
      this.openTopic(entry.name, partitions, overrides);
    }
    if (fsync.mode === 'interval') this.every(fsync.intervalMs, () => this.syncAll());
    const retentionCheckMs = options.retentionCheckMs ?? 60_000;
    if (retentionCheckMs > 0) {
      this.every(retentionCheckMs, () => {
        this.enforceRetention().catch((err: unknown) => this.logger.error({ err }, 'log retention failed; trying again at the next check'));
      });
    }
  }

  async ensureTopic(name: string, partitions: number, retention: RetentionOverrides = {}): Promise<number> {
    const existing = this.topics.get(name);
    if (existing) return existing.partitions.length;
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(name) || name.startsWith('__')) {
      throw new SluiceError('INVALID_INPUT', `topic name "${name}" must be 1-100 of A-Z a-z 0-9 . _ - and not start with __`);
    }
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) {
      throw new SluiceError('INVALID_INPUT', `partitions must be 1..1024, got ${partitions}`);
    }
    const overrides = retentionOverrides.safeParse(retention);
    if (!overrides.success) {
      throw new SluiceError('INVALID_INPUT', `topic "${name}": ${overrides.error.issues[0]!.path.join('.')}: ${overrides.error.issues[0]!.message}`);
    }
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    writeTopicFile(dir, { partitions, ...overrides.data });
    this.openTopic(name, partitions, overrides.data);
    return partitions;
  }

  partitionCount(topic: string): number {
    return this.topic(topic).partitions.length;
  }

  /** The settings a topic runs with: the log's defaults and the topic's overrides. */
  settingsOf(topic: string): TopicSettings {
    const t = this.topic(topic);
    return { ...this.defaults, ...t.overrides, partitions: t.partitions.length, fsyncOnRoll: this.fsync.mode !== 'never' };
  }

  append(topic: string, record: LogRecord): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new SluiceError('NOT_READY', 'the log is closed'));
    const t = this.topics.get(topic);
    if (!t) return Promise.reject(new SluiceError('NOT_FOUND', `no topic "${topic}"`));
    let partition = t.partitionOfKey.get(record.key);
    if (partition === undefined) {
      if (t.partitionOfKey.size >= MAX_REMEMBERED_KEYS) t.partitionOfKey.clear();
      partition = t.partitions[partitionForKey(record.key, t.partitions.length)]!;
      t.partitionOfKey.set(record.key, partition);
    }
    try {
      partition.enqueue(record);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    this.pendingPartitions.push(partition);
    return new Promise(this.capture);
  }

  /**
   * The last read of each partition is kept: another consumer group asking for the same offset
   * and size gets the same records (fewer than there may be by now, which a read may give)
   * without reading and decoding them again. Groups that keep pace — storage and rules — thus
   * read the log once.
   */
  async read(topic: string, partition: number, offset: number, maxBytes: number): Promise<StoredRecord[]> {
    const p = this.partition(topic, partition);
    const last = this.lastReads.get(p);
    if (last !== undefined && last.offset === offset && last.maxBytes === maxBytes && offset >= p.startOffset) return last.records;
    const records = p.read(offset, maxBytes);
    if (records.length > 0) this.lastReads.set(p, { offset, maxBytes, records });
    return records;
  }

  waitFor(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void> {
    const p = this.partition(topic, partition);
    if (p.endOffset > offset || signal?.aborted || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(p);
      if (!set) this.waiters.set(p, (set = new Set()));
      const waiter = {
        offset,
        wake: () => {
          set.delete(waiter);
          signal?.removeEventListener('abort', waiter.wake);
          resolve();
        },
      };
      set.add(waiter);
      signal?.addEventListener('abort', waiter.wake, { once: true });
    });
  }

  async offsets(topic: string, partition: number): Promise<PartitionOffsets> {
    const p = this.partition(topic, partition);
    return { start: p.startOffset, end: p.endOffset };
  }

  commit(group: string, topic: string, partition: number, nextOffset: number): void {
    this.partition(topic, partition);
    this.groups.set(group, topic, partition, nextOffset);
  }

  async committed(group: string, topic: string, partition: number): Promise<number | undefined> {
    this.partition(topic, partition);
    return this.groups.get(group, topic, partition);
  }

  async describeTopics(): Promise<TopicDescription[]> {
    return [...this.topics].map(([name, t]) => ({
      name,
      partitions: t.partitions.map((p) => ({ partition: p.partition, startOffset: p.startOffset, endOffset: p.endOffset, bytes: p.bytes })),
    }));
  }

  async describeGroups(): Promise<GroupDescription[]> {
    return this.groups.entries().filter((e) => this.topics.has(e.topic)).map(({ group, topic, partitions }) => ({
      name: group,
      topic,
      partitions: this.topic(topic).partitions.map((p) => {
        const committed = partitions[p.partition] ?? p.startOffset;
        return { partition: p.partition, committed, lag: Math.max(0, p.endOffset - Math.max(committed, p.startOffset)) };
      }),
    }));
  }

  /** Deletes old segments past each topic's retention (also runs on a timer). */
  async enforceRetention(): Promise<{ segments: number; records: number }> {
    const now = this.clock.now();
    const total = { segments: 0, records: 0 };
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        const { segments, records } = p.enforceRetention(now);
        total.segments += segments;
        total.records += records;
      }
    }
    this.stats.segmentsDeleted += total.segments;
    this.stats.recordsDeletedByRetention += total.records;
    return total;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.groups.close();
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        try {
          await p.close(this.fsync.mode !== 'never');
        } catch (err) {
          this.logger.error({ err, topic: p.topic, partition: p.partition }, 'log: closing a partition failed');
        }
      }
    }
    for (const set of this.waiters.values()) for (const w of [...set]) w.wake();
    this.waiters.clear();
  }

  /** Writes what was appended since the last flush: one batch per partition, then acks. */
  private flush(): void {
    this.flushScheduled = false;
    const partitions = this.pendingPartitions;
    if (partitions.length === 0) return;
    const resolves = this.pendingResolves;
    const rejects = this.pendingRejects;
    this.pendingPartitions = [];
    this.pendingResolves = [];
    this.pendingRejects = [];
    const now = this.clock.now();
    const written = new Map<PartitionLog, { next: number; left: number; error?: SluiceError }>();
    for (const partition of partitions) {
      if (written.has(partition)) continue;
      const bytesBefore = partition.bytes;
      const result = partition.writeQueued(now);
      written.set(partition, { next: result.firstOffset, left: result.written, error: result.error });
      this.stats.recordsAppended += result.written;
      this.stats.batchesWritten++;
      this.stats.bytesAppended += partition.bytes - bytesBefore;
      if (result.error) {
        this.stats.appendErrors++;
        this.logger.error({ err: result.error, topic: partition.topic, partition: partition.partition }, 'log append failed');
      }
    }
    const settle = () => {
      // Offsets were given in queue order, so walking `pending` in the same order hands each
      // append its own offset; appends after a failed write get its error.
      for (let i = 0; i < partitions.length; i++) {
        const partition = partitions[i]!;
        const w = written.get(partition)!;
        if (w.left > 0) {
          w.left--;
          resolves[i]!({ partition: partition.partition, offset: w.next++ });
        } else {
          rejects[i]!(w.error ?? new SluiceError('LOG_IO', 'the log could not write the record'));
        }
      }
    };
    for (const p of written.keys()) this.wake(p);
    if (this.fsync.mode !== 'always') return settle();
    const syncs = [...written].filter(([, w]) => w.left > 0).map(([p, w]) => p.sync().catch((err: SluiceError) => {
      this.logger.error({ err, topic: p.topic, partition: p.partition }, 'log fsync failed');
      w.left = 0;
      w.error = err;
    }));
    void Promise.all(syncs).then(settle);
  }

  private wake(p: PartitionLog): void {
    const set = this.waiters.get(p);
    if (!set || set.size === 0) return;
    const end = p.endOffset;
    for (const w of [...set]) if (w.offset < end) w.wake();
  }

  private syncAll(): void {
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        p.sync().catch((err: unknown) => this.logger.error({ err, topic: p.topic, partition: p.partition }, 'log fsync failed'));
      }
    }
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private openTopic(name: string, count: number, overrides: RetentionOverrides): void {
    const partitions: PartitionLog[] = [];
    const settings = () => this.settingsOf(name);
    const topic: Topic = { overrides, partitions, partitionOfKey: new Map() };
    this.topics.set(name, topic);
    for (let i = 0; i < count; i++) {
      partitions.push(new PartitionLog(path.join(this.dir, name, String(i)), name, i, settings, this.logger, {
        corruptSkipped: (n) => { this.stats.corruptRecordsSkipped += n; },
      }, () => this.clock.now()));
    }
  }

  private topic(name: string): Topic {
    const t = this.topics.get(name);
    if (!t) throw new SluiceError('NOT_FOUND', `no topic "${name}"`);
    return t;
  }

  private partition(topic: string, partition: number): PartitionLog {
    const p = this.topic(topic).partitions[partition];
    if (!p) throw new SluiceError('NOT_FOUND', `topic "${topic}" has no partition ${partition}`);
    return p;
  }
}
