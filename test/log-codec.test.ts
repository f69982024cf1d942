import { crc32c } from '@node-rs/crc32';
import { describe, expect, it } from 'vitest';
import { BATCH_HEADER_BYTES, checkBatch, decodeBatch, encodeBatch, readUint64, writeUint64 } from '../server/src/log/batch-codec.js';
import type { LogRecord, StoredRecord } from '../server/src/log/types.js';

/** The record batch format of docs/log.md, byte by byte (batch-codec.ts). */
const decodeAll = (buf: Buffer, fromOffset = 0): StoredRecord[] => {
  const check = checkBatch(buf, 0);
  if (!check.ok) throw new Error(`batch not ok: ${check.reason}`);
  const out: StoredRecord[] = [];
  decodeBatch(buf, 0, check, fromOffset, 't', 3, out);
  return out;
};
const rec = (key: string, value: string, timestamp: number, headers?: Record<string, string>): LogRecord => ({ key, value: Buffer.from(value), timestamp, headers });

describe('batch codec', () => {
  it('writes the header fields where docs/log.md says, big-endian, and a CRC32C of bytes 16 to the end', () => {
    const buf = encodeBatch([rec('k', 'ab', 1000), rec('kk', 'c', 3000), rec('k', '', 2000)], 0x1_0000_0005);
    expect(readUint64(buf, 0)).toBe(0x1_0000_0005);
    expect(buf.readUInt32BE(8)).toBe(buf.length - 12);
    expect([buf[16], buf[17], buf.readUInt16BE(18)]).toEqual([2, 0, 0]);
    expect(buf.readUInt32BE(20)).toBe(3);
    expect(readUint64(buf, 24)).toBe(1000); // the first record's
    expect(readUint64(buf, 32)).toBe(3000); // the largest, not the last
    // record 0: u32 length | u64 timestamp | u16 keyLength key | u16 headerCount | u32 valueLength value
    const r0 = BATCH_HEADER_BYTES;
    expect(buf.readUInt32BE(r0)).toBe(8 + 2 + 1 + 2 + 4 + 2);
    expect(readUint64(buf, r0 + 4)).toBe(1000);
    expect(buf.readUInt16BE(r0 + 12)).toBe(1);
    expect(buf.toString('utf8', r0 + 14, r0 + 15)).toBe('k');
    expect(buf.readUInt16BE(r0 + 15)).toBe(0);
    expect(buf.readUInt32BE(r0 + 17)).toBe(2);
    expect(buf.toString('utf8', r0 + 21, r0 + 23)).toBe('ab');
    expect(buf.length).toBe(BATCH_HEADER_BYTES + 23 + 23 + 21);
    expect(checkBatch(buf, 0)).toEqual({ ok: true, baseOffset: 0x1_0000_0005, recordCount: 3, batchBytes: buf.length, firstTimestamp: 1000, maxTimestamp: 3000 });
  });

  it('reads back keys, values, timestamps past 2^32 and headers, offsets from the base', () => {
    const big = 0xffff_ffff + 2; // a u64 with both halves in use
    const ts = 1_700_000_000_123;
    const buf = encodeBatch([
      rec('dév-ü', '{"a":1}', ts, { kind: 'telemetry', 'ключ': 'значение' }),
      rec('', 'empty key', big),
      rec('k', '', 0, {}),
    ], 42);
    const out = decodeAll(buf);
    expect(out.map((r) => ({ ...r, value: r.value.toString() }))).toEqual([
      { topic: 't', partition: 3, offset: 42, key: 'dév-ü', value: '{"a":1}', timestamp: ts, headers: { kind: 'telemetry', 'ключ': 'значение' } },
      { topic: 't', partition: 3, offset: 43, key: '', value: 'empty key', timestamp: big, headers: undefined },
      { topic: 't', partition: 3, offset: 44, key: 'k', value: '', timestamp: 0, headers: undefined },
    ]);
    expect(checkBatch(buf, 0)).toMatchObject({ firstTimestamp: ts, maxTimestamp: ts });
    // From an offset inside the batch: the records before it are skipped.
    expect(decodeAll(buf, 44).map((r) => r.offset)).toEqual([44]);
    expect(decodeAll(buf, 43).map((r) => r.key)).toEqual(['', 'k']);
    expect(decodeAll(buf, 45)).toEqual([]);
  });

  it('round-trips u64 values exactly', () => {
    const b = Buffer.alloc(8);
    for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]) {
      expect(writeUint64(b, v, 0)).toBe(8);
      expect(readUint64(b, 0)).toBe(v);
    }
    expect(b.readUInt32BE(0)).toBe(0x1f_ffff);
  });

  it('tells a batch cut short, a flipped byte and a header that is not a batch apart', () => {
    const buf = encodeBatch([rec('k', 'hello', 5), rec('k', 'world', 6)], 0);
    expect(checkBatch(buf.subarray(0, BATCH_HEADER_BYTES - 1), 0)).toEqual({ ok: false, reason: 'incomplete' });
    expect(checkBatch(buf.subarray(0, BATCH_HEADER_BYTES), 0)).toEqual({ ok: false, reason: 'incomplete', batchBytes: buf.length });
    expect(checkBatch(buf.subarray(0, buf.length - 1), 0)).toEqual({ ok: false, reason: 'incomplete', batchBytes: buf.length });
    for (const at of [12, 16 + 4, buf.length - 1]) {
      const flipped = Buffer.from(buf);
      flipped[at] = flipped[at]! ^ 0x10;
      expect(checkBatch(flipped, 0), `byte ${at}`).toMatchObject({ ok: false, reason: 'crc', batchBytes: buf.length });
    }
    const badMagic = Buffer.from(buf);
    badMagic[16] = 1;
    expect(checkBatch(badMagic, 0)).toEqual({ ok: false, reason: 'malformed' });
    const tooShort = Buffer.from(buf);
    tooShort.writeUInt32BE(BATCH_HEADER_BYTES - 12 - 1, 8);
    expect(checkBatch(tooShort, 0)).toEqual({ ok: false, reason: 'malformed' });
    const headerOnly = Buffer.from(buf);
    headerOnly.writeUInt32BE(BATCH_HEADER_BYTES - 12, 8); // the smallest length that is allowed
    expect(checkBatch(headerOnly, 0)).toMatchObject({ ok: false, reason: 'crc', batchBytes: BATCH_HEADER_BYTES });
    // A batch after another: positions are relative to `pos`.
    const two = Buffer.concat([buf, encodeBatch([rec('x', 'y', 7)], 2)]);
    expect(checkBatch(two, buf.length)).toMatchObject({ ok: true, baseOffset: 2, recordCount: 1 });
    const out: StoredRecord[] = [];
    const second = checkBatch(two, buf.length);
    if (!second.ok) throw new Error('second batch');
    decodeBatch(two, buf.length, second, 0, 't', 0, out);
    expect(out.map((r) => [r.offset, r.key, r.value.toString()])).toEqual([[2, 'x', 'y']]);
  });

  it('decodes every key exactly, however alike (keys of 8+ bytes are cached by a hash of sampled bytes)', () => {
    // These keys differ only in bytes the hash does not sample (4, 9, 14, 15 of 20): they collide.
    const keys = ['abcd0fghi0klmn00qrst', 'abcd1fghi1klmn11qrst', 'abcd0fghi0klmn01qrst', 'abcdXfghi0klmn00qrst', 'abcd0fgh', 'abcd1fgh'];
    for (let round = 0; round < 3; round++) {
      const out = decodeAll(encodeBatch(keys.map((k) => rec(k, k, 1)), 0));
      expect(out.map((r) => r.key)).toEqual(keys);
    }
    // A key one byte longer or shorter than a cached one, same sampled words.
    const out = decodeAll(encodeBatch(['abcd0fghi0klmn00qrst', 'abcd0fghi0klmn00qrs', 'abcd0fghi0klmn00qrstu'].map((k) => rec(k, k, 1)), 0));
    expect(out.map((r) => r.key)).toEqual(['abcd0fghi0klmn00qrst', 'abcd0fghi0klmn00qrs', 'abcd0fghi0klmn00qrstu']);
  });

  it('decodes a key that collides with a longer cached key it is the start of as itself', () => {
    // These two hash alike under the key cache's hash (found by search): the short one is the first 8 bytes of the long one.
    const long = 'GPWHmp4XAzgfWb23xssAmNILIbahGD83';
    const short = 'GPWHmp4X';
    const out = decodeAll(encodeBatch([rec(long, '1', 1), rec(short, '2', 1), rec(long, '3', 1)], 0));
    expect(out.map((r) => r.key)).toEqual([long, short, long]);
  });

  it('decodes a key that collides with a cached key of the same length differing in every byte as itself', () => {
    // These two hash alike under the key cache's hash (found by search), and no byte of one equals the other's at the same place.
    const keys = ['CQ8sYw4a0IUWaiiwIykE6Y2sSyWICuUq', 'zTlrVvpflvf5JrxBhbT5NXr1TztlpTph'];
    const out = decodeAll(encodeBatch([rec(keys[0]!, '1', 1), rec(keys[1]!, '2', 1), rec(keys[0]!, '3', 1)], 0));
    expect(out.map((r) => r.key)).toEqual([keys[0], keys[1], keys[0]]);
  });

  it('decodes no more records than the batch holds, nor more than its header counts (a batch its writer miscounted, CRC and all)', () => {
    const miscounted = (recordCount: number) => {
      const buf = encodeBatch([rec('a', '1', 1), rec('b', '2', 2), rec('c', '3', 3)], 10);
      buf.writeUInt32BE(recordCount, 20);
      buf.writeUInt32BE(crc32c(buf.subarray(16)), 12);
      return buf;
    };
    const decode = (buf: Buffer) => {
      // Another batch follows, as in a segment: what lies past the end is records too.
      const two = Buffer.concat([buf, encodeBatch([rec('d', '4', 4), rec('e', '5', 5)], 13)]);
      const check = checkBatch(two, 0);
      if (!check.ok) throw new Error(`batch not ok: ${check.reason}`);
      const out: StoredRecord[] = [];
      decodeBatch(two, 0, check, 0, 't', 0, out);
      return out.map((r) => [r.offset, r.key, r.value.toString()]);
    };
    expect(decode(miscounted(5))).toEqual([[10, 'a', '1'], [11, 'b', '2'], [12, 'c', '3']]);
    expect(decode(miscounted(2))).toEqual([[10, 'a', '1'], [11, 'b', '2']]);
  });

  it('decodes headers of the same size but other bytes anew (the last header block is reused only when equal)', () => {
    const out = decodeAll(encodeBatch([
      rec('k', '1', 1, { kind: 'aa' }), rec('k', '2', 1, { kind: 'aa' }), rec('k', '3', 1, { kind: 'ab' }),
      rec('k', '4', 1, { kinc: 'ab' }), rec('k', '5', 1, { kind: 'abc' }), rec('k', '6', 1, { a: 'b', c: 'd' }),
    ], 0));
    expect(out.map((r) => r.headers)).toEqual([{ kind: 'aa' }, { kind: 'aa' }, { kind: 'ab' }, { kinc: 'ab' }, { kind: 'abc' }, { a: 'b', c: 'd' }]);
    expect(out[1]!.headers).toBe(out[0]!.headers);
    expect(Object.isFrozen(out[0]!.headers)).toBe(true);
  });

  it('encodes a frozen header object once, and a mutable one as it is each time', () => {
    const frozen = Object.freeze({ kind: 'attributes' });
    const mutable: Record<string, string> = { kind: 'one' };
    const first = decodeAll(encodeBatch([rec('k', 'a', 1, frozen), rec('k', 'b', 1, mutable)], 0));
    mutable.kind = 'two';
    const second = decodeAll(encodeBatch([rec('k', 'a', 1, frozen), rec('k', 'b', 1, mutable)], 0));
    expect([...first, ...second].map((r) => r.headers)).toEqual([{ kind: 'attributes' }, { kind: 'one' }, { kind: 'attributes' }, { kind: 'two' }]);
  });

  it('refuses a header name or value over 65535 bytes', () => {
    expect(() => encodeBatch([rec('k', 'v', 1, { h: 'x'.repeat(65_536) })], 0)).toThrow(/header "h" is over 65535 bytes/);
    expect(() => encodeBatch([rec('k', 'v', 1, { ['n'.repeat(65_536)]: 'x' })], 0)).toThrow(RangeError);
    expect(decodeAll(encodeBatch([rec('k', 'v', 1, { h: 'x'.repeat(65_535) })], 0))[0]!.headers!.h).toHaveLength(65_535);
  });

  it('encodes an empty batch as a valid batch of no records', () => {
    const buf = encodeBatch([], 7);
    expect(buf.length).toBe(BATCH_HEADER_BYTES);
    expect(checkBatch(buf, 0)).toEqual({ ok: true, baseOffset: 7, recordCount: 0, batchBytes: BATCH_HEADER_BYTES, firstTimestamp: 0, maxTimestamp: 0 });
  });
});
