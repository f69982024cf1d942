import { crc32c } from '@node-rs/crc32';
import type { LogRecord, StoredRecord } from './types.js';

/**
 * One record on disk, as docs/log.md describes it (all integers big-endian):
 *   u32 frameLength (bytes after this field) | u32 crc32c(bytes after the crc)
 *   u64 offset | u64 timestamp | u16 keyLength key | u16 headerCount (u16 len name, u16 len value)*
 *   u32 valueLength value
 */
export const FRAME_HEADER_BYTES = 8;
const FIXED_BODY_BYTES = 8 + 8 + 2 + 2 + 4;

export function encodeRecord(record: LogRecord, offset: number): Buffer {
  const key = Buffer.from(record.key, 'utf8');
  const headerEntries = record.headers ? Object.entries(record.headers) : [];
  const encodedHeaders = headerEntries.map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  let headerBytes = 0;
  for (const [k, v] of encodedHeaders) headerBytes += 4 + k.length + v.length;
  const bodyLength = FIXED_BODY_BYTES + key.length + headerBytes + record.value.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyLength);
  frame.writeUInt32BE(4 + bodyLength, 0);
  let pos = 8;
  pos = writeUint64(frame, offset, pos);
  pos = writeUint64(frame, record.timestamp, pos);
  frame.writeUInt16BE(key.length, pos); pos += 2;
  pos += key.copy(frame, pos);
  frame.writeUInt16BE(encodedHeaders.length, pos); pos += 2;
  for (const [k, v] of encodedHeaders) {
    frame.writeUInt16BE(k.length, pos); pos += 2;
    pos += k.copy(frame, pos);
    frame.writeUInt16BE(v.length, pos); pos += 2;
    pos += v.copy(frame, pos);
  }
  frame.writeUInt32BE(record.value.length, pos); pos += 4;
  record.value.copy(frame, pos);
  frame.writeUInt32BE(crc32c(frame.subarray(8)), 4);
  return frame;
}

export type FrameCheck =
  | { ok: true; frameBytes: number; offset: number }
  | { ok: false; reason: 'incomplete' | 'crc' | 'malformed' };

/** Checks the frame that starts at `pos` without decoding it: used by recovery and by reads. */
export function checkFrame(buf: Buffer, pos: number): FrameCheck {
  if (buf.length - pos < FRAME_HEADER_BYTES) return { ok: false, reason: 'incomplete' };
  const frameLength = buf.readUInt32BE(pos);
  if (frameLength < 4 + FIXED_BODY_BYTES) return { ok: false, reason: 'malformed' };
  const frameBytes = 4 + frameLength;
  if (buf.length - pos < frameBytes) return { ok: false, reason: 'incomplete' };
  const stored = buf.readUInt32BE(pos + 4);
  if (crc32c(buf.subarray(pos + 8, pos + frameBytes)) !== stored) return { ok: false, reason: 'crc' };
  return { ok: true, frameBytes, offset: readUint64(buf, pos + 8) };
}

/** Decodes a frame already checked with checkFrame. */
export function decodeRecord(buf: Buffer, pos: number, topic: string, partition: number): StoredRecord {
  let p = pos + 8;
  const offset = readUint64(buf, p); p += 8;
  const timestamp = readUint64(buf, p); p += 8;
  const keyLength = buf.readUInt16BE(p); p += 2;
  const key = buf.toString('utf8', p, p + keyLength); p += keyLength;
  const headerCount = buf.readUInt16BE(p); p += 2;
  let headers: Record<string, string> | undefined;
  if (headerCount > 0) {
    headers = {};
    for (let i = 0; i < headerCount; i++) {
      const kl = buf.readUInt16BE(p); p += 2;
      const k = buf.toString('utf8', p, p + kl); p += kl;
      const vl = buf.readUInt16BE(p); p += 2;
      headers[k] = buf.toString('utf8', p, p + vl); p += vl;
    }
  }
  const valueLength = buf.readUInt32BE(p); p += 4;
  const value = buf.subarray(p, p + valueLength);
  return { topic, partition, offset, key, value, timestamp, headers };
}

function writeUint64(buf: Buffer, value: number, pos: number): number {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
  return pos + 8;
}

function readUint64(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * 0x1_0000_0000 + buf.readUInt32BE(pos + 4);
}
