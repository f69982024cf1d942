import fs from 'node:fs';
import { readUint64, writeUint64 } from './batch-codec.js';

const OFFSET_ENTRY_BYTES = 8;
const TIME_ENTRY_BYTES = 12;

/**
 * The sparse indexes of one segment, kept in memory and appended to their files:
 *   .index      u32 relativeOffset | u32 position        (a batch start every ~indexIntervalBytes)
 *   .timeindex  u64 timestamp | u32 relativeOffset       (the largest timestamp so far, when it grows)
 * Both are derived data: when they are missing or do not fit the segment they are rebuilt from it.
 */
export class SegmentIndex {
  private offsets: number[] = [];
  private positions: number[] = [];
  private times: number[] = [];
  private timeOffsets: number[] = [];
  private pendingOffsetBytes: Buffer[] = [];
  private pendingTimeBytes: Buffer[] = [];
  private readonly indexFd: number;
  private indexFileBytes = 0;
  private timeIndexFileBytes = 0;
  private readonly timeIndexFd: number;

  constructor(readonly indexFile: string, readonly timeIndexFile: string) {
    this.indexFd = fs.openSync(indexFile, fs.existsSync(indexFile) ? 'r+' : 'w+');
    this.timeIndexFd = fs.openSync(timeIndexFile, fs.existsSync(timeIndexFile) ? 'r+' : 'w+');
  }

  get entryCount(): number {
    return this.offsets.length;
  }

  get lastTimestamp(): number {
    return this.times.length > 0 ? this.times[this.times.length - 1]! : -1;
  }

  /** Adds an offset entry; written to the file by flush(). */
  addOffset(relativeOffset: number, position: number): void {
    this.offsets.push(relativeOffset);
    this.positions.push(position);
    const b = Buffer.allocUnsafe(OFFSET_ENTRY_BYTES);
    b.writeUInt32BE(relativeOffset, 0);
    b.writeUInt32BE(position, 4);
    this.pendingOffsetBytes.push(b);
  }

  /** Adds a time entry when `timestamp` is larger than every one before. */
  addTime(timestamp: number, relativeOffset: number): void {
    if (timestamp <= this.lastTimestamp) return;
    this.times.push(timestamp);
    this.timeOffsets.push(relativeOffset);
    const b = Buffer.allocUnsafe(TIME_ENTRY_BYTES);
    writeUint64(b, timestamp, 0);
    b.writeUInt32BE(relativeOffset, 8);
    this.pendingTimeBytes.push(b);
  }

  /** The last entry at or before `relativeOffset`: where a scan for it may start. */
  floor(relativeOffset: number): { relativeOffset: number; position: number } {
    let lo = 0;
    let hi = this.offsets.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offsets[mid]! <= relativeOffset) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found < 0 ? { relativeOffset: 0, position: 0 } : { relativeOffset: this.offsets[found]!, position: this.positions[found]! };
  }

  /** The largest indexed batch start at or before `position` (0 when none). */
  batchStartAtOrBefore(position: number): number {
    let lo = 0;
    let hi = this.positions.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! <= position) { found = this.positions[mid]!; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  /** The first entry whose position is after `position`, if any: where a reader resumes past damage. */
  nextAfter(position: number): { relativeOffset: number; position: number } | undefined {
    let lo = 0;
    let hi = this.positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! > position) hi = mid; else lo = mid + 1;
    }
    return lo < this.positions.length ? { relativeOffset: this.offsets[lo]!, position: this.positions[lo]! } : undefined;
  }

  /**
   * Appends pending entries to the files. A failed write (disk full) keeps them pending, to be
   * written again at the same place next time: the in-memory index stays right, and a file left
   * short is rebuilt from the segment when it is opened.
   */
  flush(): void {
    if (this.pendingOffsetBytes.length > 0) {
      const bytes = Buffer.concat(this.pendingOffsetBytes);
      if (writeAt(this.indexFd, bytes, this.indexFileBytes)) {
        this.indexFileBytes += bytes.length;
        this.pendingOffsetBytes = [];
      }
    }
    if (this.pendingTimeBytes.length > 0) {
      const bytes = Buffer.concat(this.pendingTimeBytes);
      if (writeAt(this.timeIndexFd, bytes, this.timeIndexFileBytes)) {
        this.timeIndexFileBytes += bytes.length;
        this.pendingTimeBytes = [];
      }
    }
  }

  /** Forgets everything and empties the files, before a rebuild. */
  reset(): void {
    this.offsets = [];
    this.positions = [];
    this.times = [];
    this.timeOffsets = [];
    this.pendingOffsetBytes = [];
    this.pendingTimeBytes = [];
    fs.ftruncateSync(this.indexFd, 0);
    fs.ftruncateSync(this.timeIndexFd, 0);
    this.indexFileBytes = 0;
    this.timeIndexFileBytes = 0;
  }

  /**
   * Loads both files; false when either is missing or does not fit a segment of `segmentBytes`
   * holding relative offsets below `recordCount` (then the caller rebuilds).
   */
  load(segmentBytes: number, recordCount: number): boolean {
    let offsetBytes: Buffer;
    let timeBytes: Buffer;
    try {
      offsetBytes = fs.readFileSync(this.indexFile);
      timeBytes = fs.readFileSync(this.timeIndexFile);
    } catch {
      return false;
    }
    if (offsetBytes.length % OFFSET_ENTRY_BYTES !== 0 || timeBytes.length % TIME_ENTRY_BYTES !== 0) return false;
    if (segmentBytes > 0 && offsetBytes.length === 0) return false;
    const offsets: number[] = [];
    const positions: number[] = [];
    for (let p = 0; p < offsetBytes.length; p += OFFSET_ENTRY_BYTES) {
      const o = offsetBytes.readUInt32BE(p);
      const pos = offsetBytes.readUInt32BE(p + 4);
      const prev = offsets.length - 1;
      if (prev >= 0 ? (o <= offsets[prev]! || pos <= positions[prev]!) : (o !== 0 || pos !== 0)) return false;
      if (o >= recordCount || pos >= segmentBytes) return false;
      offsets.push(o);
      positions.push(pos);
    }
    const times: number[] = [];
    const timeOffsets: number[] = [];
    for (let p = 0; p < timeBytes.length; p += TIME_ENTRY_BYTES) {
      const t = readUint64(timeBytes, p);
      const o = timeBytes.readUInt32BE(p + 8);
      if ((times.length > 0 && (t <= times[times.length - 1]! || o < timeOffsets[timeOffsets.length - 1]!)) || o >= recordCount) return false;
      times.push(t);
      timeOffsets.push(o);
    }
    this.offsets = offsets;
    this.positions = positions;
    this.times = times;
    this.timeOffsets = timeOffsets;
    this.indexFileBytes = offsetBytes.length;
    this.timeIndexFileBytes = timeBytes.length;
    return true;
  }

  /** fsyncs both files (when a segment is sealed). */
  sync(): void {
    fs.fdatasyncSync(this.indexFd);
    fs.fdatasyncSync(this.timeIndexFd);
  }

  close(): void {
    fs.closeSync(this.indexFd);
    fs.closeSync(this.timeIndexFd);
  }
}

/** Writes all of `bytes` at `position`; false when the disk refused. */
function writeAt(fd: number, bytes: Buffer, position: number): boolean {
  try {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
    return true;
  } catch {
    return false;
  }
}
