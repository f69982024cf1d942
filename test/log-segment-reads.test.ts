import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBatch } from '../server/src/log/batch-codec.js';
import { Segment } from '../server/src/log/segment.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, tempDir } from './support/test-server.js';

/** Reads of one segment on its own (segment.ts): how much it reads, where it stops, what it says of a damaged batch. */
describe('a segment\'s reads', () => {
  const open: Segment[] = [];
  afterEach(() => {
    for (const segment of open.splice(0)) segment.close();
  });
  const minReadBytes = 64 * 1024;
  const value = (offset: number, bytes: number) => `${offset}:`.padEnd(bytes, '.');
  /** A new segment of `count` batches of one record each, every value `valueBytes` long. */
  const segmentOf = (count: number, valueBytes: number, indexIntervalBytes = 4096) => {
    const dir = tempDir();
    const segment = Segment.create(dir, 0, indexIntervalBytes);
    open.push(segment);
    for (let i = 0; i < count; i++) segment.append(encodeBatch([record('k', value(i, valueBytes), 5_000)], i), 1, 5_000, 1_000);
    return { dir, segment, batchBytes: segment.size / count };
  };
  const read = (segment: Segment, offset: number, maxBytes: number) => {
    const out: StoredRecord[] = [];
    const result = segment.read(offset, maxBytes, 't', 0, out);
    return { result, out, offsets: out.map((r) => r.offset) };
  };
  /** Overwrites the length field of the batch at `position` so that it says the batch is `claimedBytes` long. */
  const claimLength = (segment: Segment, position: number, claimedBytes: number) => {
    const fd = fs.openSync(segment.file, 'r+');
    try {
      const field = Buffer.alloc(4);
      field.writeUInt32BE(claimedBytes - 12, 0); // the length counts the bytes after the 12-byte prefix
      fs.writeSync(fd, field, 0, 4, position + 8);
    } finally {
      fs.closeSync(fd);
    }
  };

  it('reads nothing at its end, without looking at its batches', () => {
    const { segment, batchBytes } = segmentOf(5, 20, 1);
    const fd = fs.openSync(segment.file, 'r+');
    fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 5 * batchBytes - 2); // the last batch is damaged
    fs.closeSync(fd);
    expect(read(segment, 5, 1 << 20)).toEqual({ result: { ok: true }, out: [], offsets: [] });
    expect(read(segment, 4, 1 << 20).result).toEqual({ ok: false, position: 4 * batchBytes, reason: 'crc' });
  });

  it('serves whole batches up to maxBytes, exactly when batches fill it, and one batch even for a maxBytes of 0', () => {
    const { segment, batchBytes } = segmentOf(10, 20, 1);
    expect(read(segment, 0, 0)).toMatchObject({ result: { ok: true }, offsets: [0] });
    expect(read(segment, 0, 1)).toMatchObject({ result: { ok: true }, offsets: [0] });
    expect(read(segment, 0, 2 * batchBytes)).toMatchObject({ result: { ok: true }, offsets: [0, 1] });
    expect(read(segment, 0, 2 * batchBytes + 1)).toMatchObject({ result: { ok: true }, offsets: [0, 1, 2] });
    expect(read(segment, 3, 3 * batchBytes)).toMatchObject({ result: { ok: true }, offsets: [3, 4, 5] });
    expect(read(segment, 7, 1 << 20)).toMatchObject({ result: { ok: true }, offsets: [7, 8, 9] });
  });

  it('reads about maxBytes from the disk, at least 64 KiB, up to a batch start it knows, and the rest of the segment in one read when maxBytes covers it', () => {
    const { segment, batchBytes } = segmentOf(1000, 1000); // about 1 MiB, an index entry about every 4 KiB
    // A record's value is a view into the bytes its read took from the disk.
    const readBytes = (r: StoredRecord) => r.value.buffer.byteLength;
    for (const [from, maxBytes] of [[0, 1], [500, 1], [0, 100_000], [300, 200_000]] as const) {
      const { result, out } = read(segment, from, maxBytes);
      expect(result).toEqual({ ok: true });
      expect(out.map((r) => r.value.toString())).toEqual(out.map((_, i) => value(from + i, 1000)));
      const bound = Math.max(maxBytes, minReadBytes);
      for (const r of out) expect(readBytes(r), `from ${from}, ${maxBytes} bytes: offset ${r.offset}`).toBeLessThanOrEqual(bound);
      // Not much less either: the read ends at the last indexed batch start below the bound.
      expect(readBytes(out[0]!), `from ${from}, ${maxBytes} bytes`).toBeGreaterThan(bound - 4096 - batchBytes);
    }
    const rest = read(segment, 0, segment.size);
    expect(rest.offsets).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(new Set(rest.out.map((r) => r.value.buffer)).size).toBe(1);
    expect(readBytes(rest.out[0]!)).toBe(segment.size);
  });

  it('serves each offset once and in order, when a batch repeats the offsets of the one before', () => {
    const dir = tempDir();
    const segment = Segment.create(dir, 0, 1);
    open.push(segment);
    const append = (base: number, text: string) => segment.append(encodeBatch([record('k', text)], base), 1, 5_000, 1_000);
    append(0, 'a');
    append(1, 'b');
    append(2, 'c');
    append(2, 'c again'); // a batch that says it holds offset 2 (the base offset is not covered by the CRC)
    append(4, 'e');
    const all = read(segment, 0, 1 << 20);
    expect(all.result).toEqual({ ok: true });
    expect(all.out.map((r) => [r.offset, r.value.toString()])).toEqual([[0, 'a'], [1, 'b'], [2, 'c'], [4, 'e']]);
    expect(read(segment, 1, 1 << 20).offsets).toEqual([1, 2, 4]);
  });

  describe('a batch whose length field is damaged', () => {
    // 200 batches of about 1 KiB, an index entry every fourth: a first read of 64 KiB ends well before the end.
    const damaged = () => segmentOf(200, 1000);

    it('is read whole when it ends inside the segment, and then fails its CRC', () => {
      const { segment, batchBytes } = damaged();
      claimLength(segment, batchBytes, segment.size - batchBytes); // the second batch says it runs to the end
      expect(read(segment, 2, 1)).toEqual({ result: { ok: false, position: batchBytes, reason: 'crc' }, out: [], offsets: [] });
      expect(read(segment, 0, 1)).toMatchObject({ result: { ok: true }, offsets: [0] });
    });

    it('is reported where it starts when it runs past the end of the segment', () => {
      const { segment, batchBytes } = damaged();
      claimLength(segment, batchBytes, segment.size - batchBytes + 10);
      expect(read(segment, 2, 1)).toEqual({ result: { ok: false, position: batchBytes, reason: 'batch runs past the end of the segment' }, out: [], offsets: [] });
    });

    it('ends a read of several chunks there, with the records before it served', () => {
      const { segment, batchBytes } = segmentOf(200, 1000, 1); // an index entry at every batch
      // A first read of 94.5 batches ends at the 95th batch start (the last one the index knows
      // below it), so the second read starts at the damaged batch.
      claimLength(segment, 94 * batchBytes, segment.size - 94 * batchBytes);
      const { result, offsets } = read(segment, 0, Math.floor(94.5 * batchBytes));
      expect(result).toEqual({ ok: false, position: 94 * batchBytes, reason: 'crc' });
      expect(offsets).toEqual(Array.from({ length: 94 }, (_, i) => i));
    });
  });

  it('opens an empty sealed segment as it is, without rebuilding its index', () => {
    const dir = tempDir();
    Segment.create(dir, 10, 4096).close();
    const { logger, lines } = capturingLogger();
    const sealed = Segment.openSealed(dir, 10, 10, 4096, logger);
    open.push(sealed);
    expect(lines).toEqual([]);
    expect({ size: sealed.size, recordCount: sealed.recordCount, maxTimestamp: sealed.maxTimestamp }).toEqual({ size: 0, recordCount: 0, maxTimestamp: -1 });
    expect(read(sealed, 10, 1 << 20).result).toEqual({ ok: true });
  });
});
