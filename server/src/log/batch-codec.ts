import { crc32c } from '@node-rs/crc32';
import { keyBytes } from './key-bytes.js';
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

/** Header objects that are frozen (as ingest's are) are encoded once. */
const headerBlockCache = new WeakMap<object, Buffer>();
const NO_HEADERS = Buffer.from([0, 0]);

/** u16 headerCount, then (u16 nameLength name u16 valueLength value)*. */
function headerBlock(headers: Record<string, string> | undefined): Buffer {
  if (headers === undefined) return NO_HEADERS;
  const cached = headerBlockCache.get(headers);
  if (cached !== undefined) return cached;
  const parts: Buffer[] = [];
  let count = 0;
  for (const name in headers) {
    for (const text of [name, headers[name]!]) {
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > 0xffff) throw new RangeError(`header "${name}" is over 65535 bytes`);
      parts.push(Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes);
    }
    count++;
  }
  const block = Buffer.concat([Buffer.from([count >> 8, count & 0xff]), ...parts]);
  if (Object.isFrozen(headers)) headerBlockCache.set(headers, block);
  return block;
}

export function encodeBatch(records: readonly LogRecord[], baseOffset: number): Buffer {
  let total = BATCH_HEADER_BYTES;
  const keys = new Array<Buffer>(records.length);
  const headers = new Array<Buffer>(records.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const k = (keys[i] = keyBytes(r.key));
    const h = (headers[i] = headerBlock(r.headers));
    total += RECORD_FIXED_BYTES - 2 + k.length + h.length + r.value.length;
  }
  const buf = Buffer.allocUnsafe(total);
  writeUint64(buf, baseOffset, 0);
  buf.writeUInt32BE(total - BATCH_PREFIX_BYTES, 8);
  buf[16] = MAGIC;
  buf[17] = 0;
  buf.writeUInt16BE(0, 18);
  buf.writeUInt32BE(records.length, 20);
  let maxTimestamp = 0;
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
    pos = writeRecord(buf, r, keys[i]!, headers[i]!, pos);
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
    const length = u32(buf, p);
    const offset = info.baseOffset + i;
    if (offset < fromOffset) {
      p += 4 + length;
      continue;
    }
    let q = p + 4;
    const timestamp = u32(buf, q) * 0x1_0000_0000 + u32(buf, q + 4);
    q += 8;
    const keyLength = u16(buf, q);
    q += 2;
    const key = decodeKey(buf, q, keyLength);
    q += keyLength;
    const headerCount = u16(buf, q);
    const headerStart = q;
    q += 2;
    let headers: Record<string, string> | undefined;
    if (headerCount > 0) {
      for (let h = 0; h < headerCount; h++) {
        q += 2 + u16(buf, q);
        q += 2 + u16(buf, q);
      }
      headers = decodeHeaders(buf, headerStart, q);
    }
    const valueLength = u32(buf, q);
    q += 4;
    out.push({ topic, partition, offset, key, value: buf.subarray(q, q + valueLength), timestamp, headers });
    p += 4 + length;
  }
}

const u16 = (b: Buffer, p: number) => (b[p]! << 8) | b[p + 1]!;
const u32 = (b: Buffer, p: number) => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

/**
 * Keys repeat (one per device), so decoded keys are kept by a hash of their bytes and reused
 * when the bytes match: no new string per record. The cache starts over when full.
 */
const decodedKeys = new Map<number, { bytes: Buffer; text: string }>();
const MAX_DECODED_KEYS = 50_000;

function decodeKey(buf: Buffer, start: number, length: number): string {
  if (length < 8) return buf.toString('utf8', start, start + length);
  // A hash of four sampled words and the length; the bytes are compared in full on a hit.
  const last = start + length - 4;
  const h = (Math.imul(u32(buf, start) ^ length, 0x01000193) ^ Math.imul(u32(buf, last), 0x5bd1e995)
    ^ Math.imul(u32(buf, start + (length >> 2)), 0x9e3779b1) ^ u32(buf, start + (length >> 1))) >>> 0;
  const hit = decodedKeys.get(h);
  if (hit !== undefined && hit.bytes.length === length) {
    const bytes = hit.bytes;
    let i = 0;
    while (i < length && bytes[i] === buf[start + i]) i++;
    if (i === length) return hit.text;
  }
  const text = buf.toString('utf8', start, start + length);
  if (decodedKeys.size >= MAX_DECODED_KEYS) decodedKeys.clear();
  decodedKeys.set(h, { bytes: Buffer.from(buf.subarray(start, start + length)), text });
  return text;
}

/** The last header block decoded, and its (frozen, shared) object: consecutive records repeat it. */
let lastHeaderBytes = Buffer.alloc(0);
let lastHeaders: Record<string, string> = Object.freeze({});

function decodeHeaders(buf: Buffer, start: number, end: number): Record<string, string> {
  const n = end - start;
  if (n === lastHeaderBytes.length) {
    let same = true;
    for (let i = 0; i < n; i++) if (buf[start + i] !== lastHeaderBytes[i]) { same = false; break; }
    if (same) return lastHeaders;
  }
  const headers: Record<string, string> = {};
  const count = buf.readUInt16BE(start);
  let q = start + 2;
  for (let h = 0; h < count; h++) {
    const nl = buf.readUInt16BE(q); q += 2;
    const name = buf.toString('utf8', q, q + nl); q += nl;
    const vl = buf.readUInt16BE(q); q += 2;
    headers[name] = buf.toString('utf8', q, q + vl); q += vl;
  }
  lastHeaderBytes = Buffer.from(buf.subarray(start, end));
  lastHeaders = Object.freeze(headers);
  return lastHeaders;
}

function writeRecord(buf: Buffer, r: LogRecord, key: Buffer, headers: Buffer, start: number): number {
  let pos = start + 4;
  pos = writeUint64(buf, r.timestamp, pos);
  buf.writeUInt16BE(key.length, pos);
  pos += 2;
  // TypedArray.set: cheaper than Buffer.copy for the small pieces a record is made of.
  buf.set(key, pos);
  pos += key.length;
  buf.set(headers, pos);
  pos += headers.length;
  buf.writeUInt32BE(r.value.length, pos);
  pos += 4;
  buf.set(r.value, pos);
  pos += r.value.length;
  buf.writeUInt32BE(pos - start - 4, start);
  return pos;
}

export function writeUint64(buf: Buffer, value: number, pos: number): number {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
  return pos + 8;
}

export function readUint64(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * 0x1_0000_0000 + buf.readUInt32BE(pos + 4);
}
