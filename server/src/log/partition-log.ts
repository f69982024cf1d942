import fs from 'node:fs';
import { SluiceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { encodeBatch } from './batch-codec.js';
import { Segment } from './segment.js';
import type { TopicSettings } from './topic-settings.js';
import type { LogRecord, StoredRecord } from './types.js';

/** A batch is cut at about this many bytes, so one flush of a busy partition is a few writes. */
const MAX_BATCH_BYTES = 1024 * 1024;
const RECORD_OVERHEAD_BYTES = 32;
const MAX_KEY_BYTES = 0xffff;

export interface PartitionEvents {
  /** A reader met a damaged batch and skipped `skipped` records to go on. */
  corruptSkipped(skipped: number): void;
}

/**
 * One partition: its segments in offset order, the newest one taking appends. Appends are
 * queued and written as batches by writeQueued (group commit); only written records are read.
 */
export class PartitionLog {
  private segments: Segment[];
  private queued: LogRecord[] = [];
  private syncing: Promise<void> | undefined;
  private syncAgain: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly dir: string,
    readonly topic: string,
    readonly partition: number,
    private readonly settings: () => TopicSettings,
    private readonly logger: Logger,
    private readonly events: PartitionEvents,
    private readonly now: () => number,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.segments = this.openSegments();
  }

  get startOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  get endOffset(): number {
    return this.active.endOffset;
  }

  get bytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.size;
    return n;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  enqueue(record: LogRecord): void {
    if (record.key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(record.key) > MAX_KEY_BYTES) {
      throw new SluiceError('INVALID_INPUT', `record key of ${Buffer.byteLength(record.key)} bytes is over the ${MAX_KEY_BYTES}-byte limit`);
    }
    if (record.headers) {
      let count = 0;
      for (const name in record.headers) {
        count++;
        for (const text of [name, record.headers[name]!]) {
          if (text.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(text) > MAX_KEY_BYTES) {
            throw new SluiceError('INVALID_INPUT', `record header "${name.slice(0, 50)}" is over the ${MAX_KEY_BYTES}-byte limit`);
          }
        }
      }
      if (count > MAX_KEY_BYTES) throw new SluiceError('INVALID_INPUT', `a record has ${count} headers, more than ${MAX_KEY_BYTES}`);
    }
    this.queued.push(record);
  }

  /**
   * Writes every queued record, in batches of about 1 MiB, rolling segments as needed. The
   * first `written` records got offsets from `firstOffset` on; when a write fails, `error` says
   * why and the records after `written` are not in the log.
   */
  writeQueued(now: number): { firstOffset: number; written: number; error?: SluiceError } {
    const records = this.queued;
    const firstOffset = this.endOffset;
    this.queued = [];
    let start = 0;
    while (start < records.length) {
      let end = start;
      let bytes = 0;
      let maxTimestamp = 0;
      // bytes starts at 0: every batch takes at least one record.
      while (end < records.length && bytes < MAX_BATCH_BYTES) {
        const r = records[end++]!;
        bytes += r.value.length + r.key.length + RECORD_OVERHEAD_BYTES;
        if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
      }
      const slice = start === 0 && end === records.length ? records : records.slice(start, end);
      try {
        const batch = encodeBatch(slice, this.endOffset);
        this.rollIfDue(batch.length, now);
        this.active.append(batch, slice.length, maxTimestamp, now);
      } catch (err) {
        const error = err instanceof SluiceError ? err : new SluiceError('LOG_IO', `log write failed: ${(err as Error).message}`, { cause: err });
        return { firstOffset, written: start, error };
      }
      start = end;
    }
    return { firstOffset, written: records.length };
  }

  /**
   * Records from `offset` on, about `maxBytes` of them (at least one batch when any exist).
   * `offset === endOffset` gives none; an offset outside [startOffset, endOffset] is an error.
   * Once closed it refuses with NOT_READY: its descriptors are closed, and their numbers may by
   * now belong to other files.
   */
  read(offset: number, maxBytes: number): StoredRecord[] {
    if (this.closed) throw new SluiceError('NOT_READY', `the log is closed: ${this.topic}/${this.partition} cannot be read`);
    const out: StoredRecord[] = [];
    if (offset === this.endOffset) return out;
    if (!Number.isSafeInteger(offset) || offset < this.startOffset || offset > this.endOffset) {
      throw new SluiceError('OFFSET_OUT_OF_RANGE',
        `offset ${offset} is outside ${this.topic}/${this.partition}'s range [${this.startOffset}, ${this.endOffset}]`,
        { details: { startOffset: this.startOffset, endOffset: this.endOffset } });
    }
    let i = this.segmentIndexFor(offset);
    let next = offset;
    while (i < this.segments.length && out.length === 0) {
      const segment = this.segments[i]!;
      const result = segment.read(next, maxBytes, this.topic, this.partition, out);
      if (!result.ok) {
        // Never serve a damaged batch: serve what came before it, or go on at the next batch the
        // index knows, or at the next segment.
        if (out.length > 0) break;
        const resume = segment.resumeAfter(result.position) ?? this.segments[i + 1]?.baseOffset;
        if (resume === undefined || resume <= next) {
          throw new SluiceError('LOG_CORRUPT', `${this.topic}/${this.partition}: damaged batch at byte ${result.position} of ${segment.file} (${result.reason}), nothing readable after it`);
        }
        this.logger.error({ topic: this.topic, partition: this.partition, file: segment.file, position: result.position, reason: result.reason, skipped: resume - next },
          `log read: skipped ${resume - next} records of a damaged batch`);
        this.events.corruptSkipped(resume - next);
        next = resume;
        i = this.segmentIndexFor(next);
        continue;
      }
      // Either records were read (and the loop ends) or none from `next` on are in this segment,
      // which lost them off its end: go on at the next one.
      i++;
      next = this.segments[i]?.baseOffset ?? next;
    }
    // Below the end, an empty answer would send a follower straight back to read again, forever.
    if (out.length === 0) throw new SluiceError('LOG_CORRUPT', `${this.topic}/${this.partition}: records ${offset} to ${this.endOffset - 1} are missing from the log, nothing readable after them`);
    return out;
  }

  /**
   * fdatasync of the active segment, in the background. Calls made while one runs share the
   * next one, so a caller's writes are always covered by the sync it waits for.
   */
  sync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain ??= this.syncing.then(() => {
        this.syncAgain = undefined;
        return this.sync();
      }, (err: unknown) => {
        // Who waited for the failed one shares its failure; the syncs after it start afresh.
        this.syncAgain = undefined;
        throw err;
      });
      return this.syncAgain;
    }
    const running = this.active.syncAsync().then(
      () => { this.syncing = undefined; },
      (err: unknown) => { this.syncing = undefined; throw new SluiceError('LOG_IO', `fsync of ${this.topic}/${this.partition} failed: ${(err as Error).message}`, { cause: err }); },
    );
    this.syncing = running;
    return running;
  }

  /** Deletes whole old segments past the topic's retention; never the active one. */
  enforceRetention(now: number): { segments: number; records: number } {
    const { retentionMs, retentionBytes } = this.settings();
    let total = this.bytes;
    let deleted = 0;
    const before = this.startOffset;
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const tooOld = retentionMs !== null && oldest.maxTimestamp >= 0 && now - oldest.maxTimestamp > retentionMs;
      const tooBig = retentionBytes !== null && total - oldest.size >= retentionBytes;
      if (!tooOld && !tooBig) break;
      this.segments.shift();
      oldest.delete();
      total -= oldest.size;
      deleted++;
    }
    if (deleted > 0) {
      this.logger.info({ topic: this.topic, partition: this.partition, segments: deleted, startOffset: this.startOffset },
        `log retention: deleted ${deleted} old segment(s), ${this.startOffset - before} records`);
    }
    return { segments: deleted, records: this.startOffset - before };
  }

  /** Waits for background syncs, syncs (when asked) and closes every segment. */
  async close(sync: boolean): Promise<void> {
    this.closed = true;
    // A background fdatasync still running on a descriptor must finish before it is closed.
    await this.syncing?.catch(() => {});
    await this.syncAgain?.catch(() => {});
    try {
      if (sync) this.active.syncNow();
    } finally {
      // A failed last fsync is the caller's to report; the files are closed all the same.
      for (const s of this.segments) s.close();
    }
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private rollIfDue(nextBatchBytes: number, now: number): void {
    const active = this.active;
    if (active.size === 0) return;
    const { segmentBytes, segmentMs, fsyncOnRoll } = this.settings();
    const full = active.size + nextBatchBytes > segmentBytes;
    const old = active.openedAt >= 0 && now - active.openedAt >= segmentMs;
    if (!full && !old) return;
    active.seal(fsyncOnRoll);
    this.segments.push(Segment.create(this.dir, active.endOffset, this.settings().indexIntervalBytes));
    this.logger.debug({ topic: this.topic, partition: this.partition, baseOffset: active.endOffset, reason: full ? 'size' : 'age' }, 'log: rolled a new segment');
  }

  private segmentIndexFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  private openSegments(): Segment[] {
    const bases = fs.readdirSync(this.dir)
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => Number(f.slice(0, 20)))
      .sort((a, b) => a - b);
    const { indexIntervalBytes } = this.settings();
    if (bases.length === 0) return [Segment.create(this.dir, 0, indexIntervalBytes)];
    const segments: Segment[] = [];
    for (let i = 0; i < bases.length - 1; i++) {
      segments.push(Segment.openSealed(this.dir, bases[i]!, bases[i + 1]!, indexIntervalBytes, this.logger));
    }
    const active = Segment.recoverActive(this.dir, bases[bases.length - 1]!, indexIntervalBytes, this.logger);
    if (active.size > 0) active.openedAt = this.now();
    segments.push(active);
    this.removeStrayIndexes(new Set(bases));
    return segments;
  }

  /** Index files whose segment is gone (a crash in the middle of retention). */
  private removeStrayIndexes(bases: Set<number>): void {
    for (const f of fs.readdirSync(this.dir)) {
      const m = /^(\d{20})\.(index|timeindex)$/.exec(f);
      if (m && !bases.has(Number(m[1]))) fs.rmSync(`${this.dir}/${f}`, { force: true });
    }
  }
}
