import fs from 'node:fs';
import path from 'node:path';
import type { FsyncPolicy } from '../config.js';
import type { Logger } from '../logger.js';
import { SluiceError } from '../errors.js';
import { GroupOffsets } from './group-offsets.js';
import { PartitionFile } from './partition-file.js';
import { partitionForKey } from './partitioner.js';
import type { AppendResult, GroupDescription, Log, LogRecord, StoredRecord, TopicDescription } from './types.js';

interface PendingAppend {
  partition: PartitionFile;
  resolve: (result: AppendResult) => void;
  reject: (err: Error) => void;
}

interface Waiter {
  offset: number;
  resolve: () => void;
}

/**
 * The embedded log: topics of partitions in files under `<data-dir>/log`. Appends made in the
 * same turn of the event loop are written together (group commit) and acknowledged once
 * written, or once fsynced under `fsync: always`.
 */
export class FileLog implements Log {
  private readonly dir: string;
  private readonly topics = new Map<string, PartitionFile[]>();
  private readonly groups: GroupOffsets;
  private readonly waiters = new Map<PartitionFile, Waiter[]>();
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(dataDir: string, private readonly fsync: FsyncPolicy, private readonly logger: Logger) {
    this.dir = path.join(dataDir, 'log');
    fs.mkdirSync(this.dir, { recursive: true });
    this.groups = new GroupOffsets(path.join(this.dir, '__consumer_offsets'), 100);
    for (const entry of fs.readdirSync(this.dir, { withFileTypes: true })) {
      const meta = path.join(this.dir, entry.name, 'topic.json');
      if (entry.isDirectory() && fs.existsSync(meta)) {
        const { partitions } = JSON.parse(fs.readFileSync(meta, 'utf8')) as { partitions: number };
        this.openTopic(entry.name, partitions);
      }
    }
    if (fsync.mode === 'interval') {
      this.syncTimer = setInterval(() => this.syncAll(), fsync.intervalMs);
      this.syncTimer.unref();
    }
  }

  async ensureTopic(name: string, partitions: number): Promise<number> {
    const existing = this.topics.get(name);
    if (existing) return existing.length;
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(name) || name.startsWith('__')) {
      throw new SluiceError('INVALID_INPUT', `topic name "${name}" must be 1-100 of A-Z a-z 0-9 . _ - and not start with __`);
    }
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'topic.json'), JSON.stringify({ partitions }));
    this.openTopic(name, partitions);
    return partitions;
  }

  partitionCount(topic: string): number {
    return this.partitionsOf(topic).length;
  }

  append(topic: string, record: LogRecord): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new SluiceError('NOT_READY', 'the log is closed'));
    const partitions = this.partitionsOf(topic);
    const partition = partitions[partitionForKey(record.key, partitions.length)]!;
    partition.enqueue(record);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return new Promise((resolve, reject) => this.pending.push({ partition, resolve, reject }));
  }

  read(topic: string, partition: number, offset: number, maxBytes: number): StoredRecord[] {
    return this.partitionFile(topic, partition).read(offset, maxBytes);
  }

  waitFor(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void> {
    const file = this.partitionFile(topic, partition);
    if (file.endOffset > offset || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let list = this.waiters.get(file);
      if (!list) this.waiters.set(file, (list = []));
      const onAbort = () => {
        const l = this.waiters.get(file);
        if (l) this.waiters.set(file, l.filter((w) => w !== waiter));
        resolve();
      };
      const waiter: Waiter = {
        offset,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      list.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  commit(group: string, topic: string, partition: number, nextOffset: number): void {
    this.partitionFile(topic, partition);
    this.groups.set(group, topic, partition, nextOffset);
  }

  committed(group: string, topic: string, partition: number): number {
    return this.groups.get(group, topic, partition) ?? 0;
  }

  describeTopics(): TopicDescription[] {
    return [...this.topics].map(([name, partitions]) => ({
      name,
      partitions: partitions.map((p) => ({ partition: p.partition, startOffset: 0, endOffset: p.endOffset, bytes: p.bytes })),
    }));
  }

  describeGroups(): GroupDescription[] {
    return this.groups.entries().filter((e) => this.topics.has(e.topic)).map(({ group, topic, partitions }) => ({
      name: group,
      topic,
      partitions: this.partitionsOf(topic).map((p) => {
        const committed = partitions[p.partition] ?? 0;
        return { partition: p.partition, committed, lag: Math.max(0, p.endOffset - committed) };
      }),
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.groups.persist();
    for (const partitions of this.topics.values()) {
      for (const p of partitions) {
        p.sync();
        p.close();
      }
    }
    for (const list of this.waiters.values()) for (const w of list) w.resolve();
    this.waiters.clear();
  }

  private flush(): void {
    this.flushScheduled = false;
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    const firstOffsets = new Map<PartitionFile, number>();
    const failures = new Map<PartitionFile, Error>();
    for (const { partition } of pending) {
      if (firstOffsets.has(partition) || failures.has(partition)) continue;
      try {
        firstOffsets.set(partition, partition.writeQueued().firstOffset);
      } catch (err) {
        failures.set(partition, err as Error);
        this.logger.error({ err }, 'log append failed');
      }
    }
    if (this.fsync.mode === 'always') {
      for (const p of firstOffsets.keys()) {
        try { p.sync(); } catch (err) { failures.set(p, err as Error); firstOffsets.delete(p); }
      }
    }
    // Offsets were given in queue order, so counting through `pending` in the same order
    // hands each append its own offset.
    const next = new Map(firstOffsets);
    for (const { partition, resolve, reject } of pending) {
      const failure = failures.get(partition);
      if (failure) { reject(failure); continue; }
      const offset = next.get(partition)!;
      next.set(partition, offset + 1);
      resolve({ partition: partition.partition, offset });
    }
    for (const p of firstOffsets.keys()) this.wake(p);
  }

  private wake(file: PartitionFile): void {
    const list = this.waiters.get(file);
    if (!list || list.length === 0) return;
    const end = file.endOffset;
    const keep: Waiter[] = [];
    for (const w of list) (w.offset < end ? w.resolve() : keep.push(w));
    this.waiters.set(file, keep);
  }

  private syncAll(): void {
    for (const partitions of this.topics.values()) {
      for (const p of partitions) {
        try { p.sync(); } catch (err) { this.logger.error({ err, topic: p.topic, partition: p.partition }, 'log fsync failed'); }
      }
    }
  }

  private openTopic(name: string, count: number): void {
    const partitions: PartitionFile[] = [];
    for (let i = 0; i < count; i++) {
      partitions.push(new PartitionFile(path.join(this.dir, name, String(i)), name, i, this.logger));
    }
    this.topics.set(name, partitions);
  }

  private partitionsOf(topic: string): PartitionFile[] {
    const partitions = this.topics.get(topic);
    if (!partitions) throw new SluiceError('NOT_FOUND', `no topic "${topic}"`);
    return partitions;
  }

  private partitionFile(topic: string, partition: number): PartitionFile {
    const file = this.partitionsOf(topic)[partition];
    if (!file) throw new SluiceError('NOT_FOUND', `topic "${topic}" has no partition ${partition}`);
    return file;
  }
}
