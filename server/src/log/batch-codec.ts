import { crc32c } from '@node-rs/crc32';
import type { LogRecord, StoredRecord } from './types.js';

/**
 * A record batch on disk, as docs/log.md describes it (integers big-endian). One CRC32C covers
 * everything after the crc field, so a batch is written, checked and skipped as one unit:
 *
 *   0  u64 baseOffset        offset of the first record; the others follow densely
 *   8  u32 batchLength       bytes after this field
 *   12 u32 crc32c            of bytes 16..end
 *   16 u8  magic (2)  u8 attributes (0)  u16 reserved (0)
 *   20 u32 recordCount
 *   24 u64 firstTimestamp
 *   32 u64 maxTimestamp
 *   40 records: u32 length (bytes after this field) | u64 timestamp | u16 keyLength key
 *               | u16 headerCount (u16 nameLength name u16 valueLength value)* | u32 valueLength value
 */
export const BATCH_HEADER_BYTES = 40;
/** The part of the header that says how long the batch is. */
export const BATCH_PREFIX_BYTES = 12;
const MAGIC = 2;
const RECORD_FIXED_BYTES = 4 + 8 + 2 + 2 + 4;

export interface BatchInfo {
  baseOffset: number;
  recordCount: number;
  /** Bytes of the whole batch, header included. */
  batchBytes: number;
  firstTimestamp: number;
  maxTimestamp: number;
}

export type BatchCheck =
  | ({ ok: true } & BatchInfo)
  | { ok: false; reason: 'incomplete' | 'crc' | 'malformed'; batchBytes?: number };

export function encodeBatch(records: readonly LogRecord[], baseOffset: number): Buffer {
  let total = BATCH_HEADER_BYTES;
  for (const r of records) total += recordBytes(r);
  const buf = Buffer.allocUnsafe(total);
  writeUint64(buf, baseOffset, 0);
  buf.writeUInt32BE(total - BATCH_PREFIX_BYTES, 8);
  buf[16] = MAGIC;
  buf[17] = 0;
  buf.writeUInt16BE(0, 18);
  buf.writeUInt32BE(records.length, 20);
  let maxTimestamp = 0;
  let pos = BATCH_HEADER_BYTES;
  for (const r of records) {
    if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
    pos = writeRecord(buf, r, pos);
  }
  writeUint64(buf, records[0]?.timestamp ?? 0, 24);
  writeUint64(buf, maxTimestamp, 32);
  buf.writeUInt32BE(crc32c(buf.subarray(16)), 12);
  return buf;
}

/** Checks the batch that starts at `pos` (header and CRC) without decoding its records. */
export function checkBatch(buf: Buffer, pos: number): BatchCheck {
  if (buf.length - pos < BATCH_HEADER_BYTES) return { ok: false, reason: 'incomplete' };
  const batchBytes = BATCH_PREFIX_BYTES + buf.readUInt32BE(pos + 8);
  if (batchBytes < BATCH_HEADER_BYTES || buf[pos + 16] !== MAGIC) return { ok: false, reason: 'malformed' };
  if (buf.length - pos < batchBytes) return { ok: false, reason: 'incomplete', batchBytes };
  if (crc32c(buf.subarray(pos + 16, pos + batchBytes)) !== buf.readUInt32BE(pos + 12)) return { ok: false, reason: 'crc', batchBytes };
  return {
    ok: true,
    baseOffset: readUint64(buf, pos),
    recordCount: buf.readUInt32BE(pos + 20),
    batchBytes,
    firstTimestamp: readUint64(buf, pos + 24),
    maxTimestamp: readUint64(buf, pos + 32),
  };
}

/**
 * Decodes the records of a batch already checked with checkBatch, skipping those before
 * `fromOffset`, into `out`. Values are views into `buf`, not copies.
 */
export function decodeBatch(buf: Buffer, pos: number, info: BatchInfo, fromOffset: number, topic: string, partition: number, out: StoredRecord[]): void {
  let p = pos + BATCH_HEADER_BYTES;
  const end = pos + info.batchBytes;
  for (let i = 0; i < info.recordCount && p < end; i++) {
    const length = buf.readUInt32BE(p);
    const offset = info.baseOffset + i;
    if (offset < fromOffset) {
      p += 4 + length;
      continue;
    }
    let q = p + 4;
    const timestamp = readUint64(buf, q); q += 8;
    const keyLength = buf.readUInt16BE(q); q += 2;
    const key = buf.toString('utf8', q, q + keyLength); q += keyLength;
    const headerCount = buf.readUInt16BE(q); q += 2;
    let headers: Record<string, string> | undefined;
    if (headerCount > 0) {
      headers = {};
      for (let h = 0; h < headerCount; h++) {
        const nl = buf.readUInt16BE(q); q += 2;
        const name = buf.toString('utf8', q, q + nl); q += nl;
        const vl = buf.readUInt16BE(q); q += 2;
        headers[name] = buf.toString('utf8', q, q + vl); q += vl;
      }
    }
    const valueLength = buf.readUInt32BE(q); q += 4;
    out.push({ topic, partition, offset, key, value: buf.subarray(q, q + valueLength), timestamp, headers });
    p += 4 + length;
  }
}

function recordBytes(r: LogRecord): number {
  let n = RECORD_FIXED_BYTES + Buffer.byteLength(r.key) + r.value.length;
  if (r.headers) for (const name in r.headers) n += 4 + Buffer.byteLength(name) + Buffer.byteLength(r.headers[name]!);
  return n;
}

function writeRecord(buf: Buffer, r: LogRecord, start: number): number {
  let pos = start + 4;
  pos = writeUint64(buf, r.timestamp, pos);
  pos = writeShortString(buf, r.key, pos);
  const countAt = pos;
  pos += 2;
  let count = 0;
  if (r.headers) {
    for (const name in r.headers) {
      pos = writeShortString(buf, name, pos);
      pos = writeShortString(buf, r.headers[name]!, pos);
      count++;
    }
  }
  buf.writeUInt16BE(count, countAt);
  buf.writeUInt32BE(r.value.length, pos); pos += 4;
  pos += r.value.copy(buf, pos);
  buf.writeUInt32BE(pos - start - 4, start);
  return pos;
}

function writeShortString(buf: Buffer, s: string, pos: number): number {
  const n = buf.write(s, pos + 2, 'utf8');
  buf.writeUInt16BE(n, pos);
  return pos + 2 + n;
}

export function writeUint64(buf: Buffer, value: number, pos: number): number {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
  return pos + 8;
}

export function readUint64(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * 0x1_0000_0000 + buf.readUInt32BE(pos + 4);
}
