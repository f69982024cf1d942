import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { BATCH_HEADER_BYTES, checkBatch, decodeBatch, readUint64 } from './batch-codec.js';
import { SegmentIndex } from './segment-index.js';
import type { StoredRecord } from './types.js';

const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;
const MIN_READ_BYTES = 64 * 1024;

export function segmentFileName(baseOffset: number, ext: 'log' | 'index' | 'timeindex'): string {
  return `${String(baseOffset).padStart(20, '0')}.${ext}`;
}

export type SegmentRead =
  | { ok: true }
  /** A batch at `position` failed its check: nothing from there on in this segment was served. */
  | { ok: false; position: number; reason: string };

/**
 * One segment of a partition: `<baseOffset>.log` of record batches with its sparse `.index` and
 * `.timeindex`. Only the newest segment of a partition (the active one) is appended to.
 */
export class Segment {
  readonly baseOffset: number;
  readonly file: string;
  readonly index: SegmentIndex;
  private readonly fd: number;
  /** Bytes of whole, valid batches: where the next batch goes. */
  size = 0;
  /** The offset the next record appended here gets. */
  endOffset: number;
  maxTimestamp = -1;
  /** Clock time of the first append (or of opening, after a restart): a segment rolls by age from it. */
  openedAt = -1;
  private bytesSinceIndexEntry = 0;
  private dirty = false;

  private constructor(dir: string, baseOffset: number, private readonly indexIntervalBytes: number) {
    this.baseOffset = baseOffset;
    this.endOffset = baseOffset;
    this.file = path.join(dir, segmentFileName(baseOffset, 'log'));
    this.fd = fs.openSync(this.file, fs.existsSync(this.file) ? 'r+' : 'w+');
    this.index = new SegmentIndex(path.join(dir, segmentFileName(baseOffset, 'index')), path.join(dir, segmentFileName(baseOffset, 'timeindex')));
  }

  static create(dir: string, baseOffset: number, indexIntervalBytes: number): Segment {
    const segment = new Segment(dir, baseOffset, indexIntervalBytes);
    segment.index.reset();
    return segment;
  }

  /**
   * Opens the newest segment of a partition after a stop or a crash: every batch is checked, the
   * indexes are rebuilt, and a torn or corrupt tail is cut off and reported.
   */
  static recoverActive(dir: string, baseOffset: number, indexIntervalBytes: number, logger: Logger): Segment {
    const segment = new Segment(dir, baseOffset, indexIntervalBytes);
    segment.index.reset();
    const fileSize = fs.fstatSync(segment.fd).size;
    const damage = segment.scan(fileSize);
    if (segment.size < fileSize) {
      logger.warn({ file: segment.file, truncatedBytes: fileSize - segment.size, validRecords: segment.endOffset - baseOffset, reason: damage ?? 'torn write' },
        `log recovery: cut ${fileSize - segment.size} damaged bytes off the end of the segment`);
      fs.ftruncateSync(segment.fd, segment.size);
      fs.fsyncSync(segment.fd);
    }
    segment.index.flush();
    return segment;
  }

  /**
   * Opens a sealed segment whose records end at `endOffset` (the next segment's base offset).
   * Its indexes are trusted when they fit the segment; otherwise they are rebuilt by a scan.
   */
  static openSealed(dir: string, baseOffset: number, endOffset: number, indexIntervalBytes: number, logger: Logger): Segment {
    const segment = new Segment(dir, baseOffset, indexIntervalBytes);
    const fileSize = fs.fstatSync(segment.fd).size;
    segment.size = fileSize;
    segment.endOffset = endOffset;
    // An index without a time entry would leave the segment without a newest timestamp, and
    // retention by age would never delete it: such an index is rebuilt too.
    if (segment.index.load(fileSize, endOffset - baseOffset) && segment.indexFitsData() && (fileSize === 0 || segment.index.lastTimestamp >= 0)) {
      segment.maxTimestamp = segment.index.lastTimestamp;
      return segment;
    }
    logger.warn({ file: segment.file }, 'log recovery: the segment index is missing or damaged; rebuilding it');
    segment.index.reset();
    segment.size = 0;
    segment.endOffset = baseOffset;
    const damage = segment.scan(fileSize);
    if (damage) logger.error({ file: segment.file, position: segment.size, reason: damage }, 'log recovery: a sealed segment has a damaged batch; readers will skip it');
    segment.size = fileSize;
    segment.endOffset = endOffset;
    segment.index.addTime(segment.maxTimestamp, Math.max(0, endOffset - baseOffset - 1));
    segment.index.flush();
    return segment;
  }

  get recordCount(): number {
    return this.endOffset - this.baseOffset;
  }

  /** Writes one encoded batch at the end; throws LOG_FULL or LOG_IO and leaves nothing torn behind. */
  append(batch: Buffer, recordCount: number, maxTimestamp: number, now: number): void {
    try {
      writeFully(this.fd, batch, this.size);
    } catch (err) {
      try { fs.ftruncateSync(this.fd, this.size); } catch { /* the error below says what happened */ }
      const code = (err as NodeJS.ErrnoException).code;
      const full = code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
      throw new SluiceError(full ? 'LOG_FULL' : 'LOG_IO',
        full ? `disk full: the log cannot write to ${this.file} (${code})` : `log write to ${this.file} failed: ${(err as Error).message}`, { cause: err });
    }
    if (this.openedAt < 0) this.openedAt = now;
    this.noteBatch(batch.length, recordCount, maxTimestamp);
    this.index.flush();
    this.dirty = true;
  }

  /**
   * Decodes records from `offset` on into `out`, whole batches, until about `maxBytes` were read
   * (always at least one batch). Every batch is checked against its CRC before it is served.
   */
  read(offset: number, maxBytes: number, topic: string, partition: number, out: StoredRecord[]): SegmentRead {
    if (offset >= this.endOffset) return { ok: true };
    let pos = this.index.floor(offset - this.baseOffset).position;
    let served = 0;
    while (pos < this.size && (served === 0 || served < maxBytes)) {
      // Read up to a batch boundary the index knows, so the last batch read is whole.
      const limit = pos + Math.max(maxBytes - served, MIN_READ_BYTES);
      const boundary = limit >= this.size ? this.size : this.index.batchStartAtOrBefore(limit);
      const end = boundary > pos ? boundary : this.index.nextAfter(pos)?.position ?? this.size;
      let buf = readAt(this.fd, pos, Math.min(this.size, end) - pos);
      let p = 0;
      while (p < buf.length) {
        let check = checkBatch(buf, p);
        if (!check.ok && check.reason === 'incomplete') {
          if (p > 0 && served > 0) break;
          // The batch is larger than what was read: read it whole.
          const needed = check.batchBytes ?? BATCH_HEADER_BYTES;
          if (pos + p + needed > this.size) return { ok: false, position: pos + p, reason: 'batch runs past the end of the segment' };
          buf = readAt(this.fd, pos + p, needed);
          pos += p;
          p = 0;
          check = checkBatch(buf, 0);
        }
        if (!check.ok) return { ok: false, position: pos + p, reason: check.reason };
        const expectedLast = check.baseOffset + check.recordCount;
        if (expectedLast > offset) {
          const before = out.length;
          decodeBatch(buf, p, check, offset, topic, partition, out);
          if (out.length > before) offset = out[out.length - 1]!.offset + 1;
          served += check.batchBytes;
        }
        p += check.batchBytes;
        if (served >= maxBytes) break;
      }
      pos += p;
    }
    return { ok: true };
  }

  /** The first offset readable after damage at `position`, if this segment has one. */
  resumeAfter(position: number): number | undefined {
    const next = this.index.nextAfter(position);
    return next ? this.baseOffset + next.relativeOffset : undefined;
  }

  /** Starts an fdatasync in the background; resolves when it is done. */
  syncAsync(): Promise<void> {
    if (!this.dirty) return Promise.resolve();
    this.dirty = false;
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => {
      if (!err) return resolve();
      this.dirty = true; // not synced after all: the next sync tries again
      reject(err);
    }));
  }

  syncNow(): void {
    if (!this.dirty) return;
    fs.fdatasyncSync(this.fd);
    this.dirty = false; // only once synced: after a failure the next sync tries again, as syncAsync does
  }

  /** No more appends: records the final timestamp entry, and syncs when asked to. */
  seal(sync: boolean): void {
    this.index.addTime(this.maxTimestamp, Math.max(0, this.recordCount - 1));
    this.index.flush();
    if (sync) {
      this.syncNow();
      this.index.sync();
    }
  }

  close(): void {
    fs.closeSync(this.fd);
    this.index.close();
  }

  /** Closes and deletes the segment's files (retention). */
  delete(): void {
    this.close();
    for (const f of [this.file, this.index.indexFile, this.index.timeIndexFile]) fs.rmSync(f, { force: true });
  }

  private noteBatch(batchBytes: number, recordCount: number, maxTimestamp: number): void {
    const relativeOffset = this.endOffset - this.baseOffset;
    if (this.size === 0 || this.bytesSinceIndexEntry >= this.indexIntervalBytes) {
      this.index.addOffset(relativeOffset, this.size);
      this.index.addTime(Math.max(maxTimestamp, this.maxTimestamp), relativeOffset + recordCount - 1);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += batchBytes;
    if (maxTimestamp > this.maxTimestamp) this.maxTimestamp = maxTimestamp;
    this.size += batchBytes;
    this.endOffset += recordCount;
  }

  /** Reads batches from the start, rebuilding the indexes; returns why it stopped early, if it did. */
  private scan(fileSize: number): string | undefined {
    let pos = 0;
    while (pos < fileSize) {
      const buf = readAt(this.fd, pos, Math.min(SCAN_CHUNK_BYTES, fileSize - pos));
      let p = 0;
      for (;;) {
        let check = checkBatch(buf, p);
        if (!check.ok && check.reason === 'incomplete' && p === 0 && check.batchBytes !== undefined && pos + check.batchBytes <= fileSize) {
          // One batch larger than the chunk.
          const whole = readAt(this.fd, pos, check.batchBytes);
          check = checkBatch(whole, 0);
        }
        if (!check.ok) {
          if (check.reason === 'incomplete' && p > 0) break; // the next chunk continues here
          return check.reason === 'incomplete' ? undefined : `batch ${check.reason}`;
        }
        if (check.baseOffset !== this.endOffset) return `batch offset ${check.baseOffset} where ${this.endOffset} was expected`;
        this.noteBatch(check.batchBytes, check.recordCount, check.maxTimestamp);
        p += check.batchBytes;
        if (p >= buf.length) break;
      }
      pos += p;
    }
    return undefined;
  }

  /** A quick check that the last index entry points at the batch it names. */
  private indexFitsData(): boolean {
    if (this.size === 0) return true;
    const last = this.index.floor(Number.MAX_SAFE_INTEGER);
    const header = readAt(this.fd, last.position, BATCH_HEADER_BYTES);
    return header.length === BATCH_HEADER_BYTES && readUint64(header, 0) === this.baseOffset + last.relativeOffset;
  }
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

function writeFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}
