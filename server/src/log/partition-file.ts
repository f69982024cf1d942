import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { SluiceError } from '../errors.js';
import { checkFrame, decodeRecord, encodeRecord } from './record-codec.js';
import type { LogRecord, StoredRecord } from './types.js';

const SEGMENT_NAME = '00000000000000000000.log';
const RECOVERY_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * One partition of a topic: an append-only file of framed records and an in-memory table from
 * offset to file position, rebuilt by scanning the file when it opens. Appends are queued and
 * written in one writev per flush (group commit); only written records are readable.
 */
export class PartitionFile {
  readonly topic: string;
  readonly partition: number;
  private readonly fd: number;
  private readonly positions: number[] = [];
  private size = 0;
  private queuedRecords: LogRecord[] = [];
  dirty = false;

  constructor(dir: string, topic: string, partition: number, logger: Logger) {
    this.topic = topic;
    this.partition = partition;
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, SEGMENT_NAME);
    this.fd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w+');
    this.recover(file, logger);
  }

  get endOffset(): number {
    return this.positions.length;
  }

  get bytes(): number {
    return this.size;
  }

  get pendingCount(): number {
    return this.queuedRecords.length;
  }

  enqueue(record: LogRecord): void {
    this.queuedRecords.push(record);
  }

  /** Writes every queued record in one writev; returns the first offset written. */
  writeQueued(): { firstOffset: number; count: number } {
    const records = this.queuedRecords;
    const firstOffset = this.positions.length;
    if (records.length === 0) return { firstOffset, count: 0 };
    this.queuedRecords = [];
    const frames: Buffer[] = [];
    const positions: number[] = [];
    let pos = this.size;
    for (let i = 0; i < records.length; i++) {
      const frame = encodeRecord(records[i]!, firstOffset + i);
      frames.push(frame);
      positions.push(pos);
      pos += frame.length;
    }
    try {
      writeAll(this.fd, frames, this.size);
    } catch (err) {
      // Leave no torn frame behind: the next write starts where the last whole one ended.
      try { fs.ftruncateSync(this.fd, this.size); } catch { /* the error below says what happened */ }
      const code = (err as NodeJS.ErrnoException).code;
      throw new SluiceError(code === 'ENOSPC' || code === 'EDQUOT' ? 'LOG_FULL' : 'LOG_CORRUPT',
        `log write failed on ${this.topic}/${this.partition}: ${(err as Error).message}`, { cause: err });
    }
    for (const p of positions) this.positions.push(p);
    this.size = pos;
    this.dirty = true;
    return { firstOffset, count: records.length };
  }

  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fs.fdatasyncSync(this.fd);
  }

  read(offset: number, maxBytes: number): StoredRecord[] {
    const end = this.positions.length;
    if (offset >= end || offset < 0) return [];
    const start = this.positions[offset]!;
    // Read whole records up to maxBytes, and always at least one.
    let last = offset + 1;
    while (last < end && this.positions[last]! - start < maxBytes) last++;
    const stop = last < end ? this.positions[last]! : this.size;
    const buf = Buffer.allocUnsafe(stop - start);
    fs.readSync(this.fd, buf, 0, buf.length, start);
    const out: StoredRecord[] = [];
    let pos = 0;
    for (let o = offset; o < last; o++) {
      const check = checkFrame(buf, pos);
      if (!check.ok || check.offset !== o) {
        throw new SluiceError('LOG_CORRUPT', `record ${this.topic}/${this.partition}@${o} is corrupt (${check.ok ? 'offset mismatch' : check.reason})`);
      }
      out.push(decodeRecord(buf, pos, this.topic, this.partition));
      pos += check.frameBytes;
    }
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Scans the file; a torn or corrupt tail (a crash mid-write) is cut off and reported. */
  private recover(file: string, logger: Logger): void {
    const fileSize = fs.fstatSync(this.fd).size;
    let pos = 0;
    let carry = Buffer.alloc(0);
    let carryStart = 0;
    let badReason: string | undefined;
    while (pos < fileSize && badReason === undefined) {
      const chunk = Buffer.allocUnsafe(Math.min(RECOVERY_CHUNK_BYTES, fileSize - pos));
      const n = fs.readSync(this.fd, chunk, 0, chunk.length, pos);
      pos += n;
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let p = 0;
      for (;;) {
        const check = checkFrame(buf, p);
        if (!check.ok) {
          if (check.reason !== 'incomplete') badReason = check.reason;
          break;
        }
        if (check.offset !== this.positions.length) { badReason = 'offset out of sequence'; break; }
        this.positions.push(carryStart + p);
        p += check.frameBytes;
      }
      carry = buf.subarray(p);
      carryStart += p;
    }
    this.size = carryStart;
    if (this.size < fileSize) {
      logger.warn({ file, truncatedBytes: fileSize - this.size, validRecords: this.positions.length, reason: badReason ?? 'torn write' },
        'log recovery: cutting off a damaged tail');
      fs.ftruncateSync(this.fd, this.size);
      fs.fsyncSync(this.fd);
    }
  }
}

function writeAll(fd: number, buffers: Buffer[], position: number): void {
  let pending = buffers;
  let pos = position;
  while (pending.length > 0) {
    const written = fs.writevSync(fd, pending.slice(0, 1024), pos);
    pos += written;
    let remaining = written;
    let i = 0;
    while (i < pending.length && remaining >= pending[i]!.length) remaining -= pending[i++]!.length;
    pending = pending.slice(i);
    if (remaining > 0 && pending.length > 0) pending[0] = pending[0]!.subarray(remaining);
  }
}
