import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../server/src/clock.js';
import { checkBatch, encodeBatch } from '../server/src/log/batch-codec.js';
import { FileLog, type FileLogOptions } from '../server/src/log/file-log.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/** Partitions and segments on disk (partition-log.ts, segment.ts), through a real FileLog in a temp dir. */
class ManualClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now() { return this.t; }
}

describe('partition log', () => {
  const opened: FileLog[] = [];
  const open = (dir: string, options: FileLogOptions = {}, logger = silentLogger) => {
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0, ...options });
    opened.push(log);
    return log;
  };
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
  });
  const partitionDir = (dir: string) => path.join(dir, 'log', 't', '0');
  const segmentSizes = (dir: string) => fs.readdirSync(partitionDir(dir)).filter((f) => f.endsWith('.log')).sort()
    .map((f) => fs.statSync(path.join(partitionDir(dir), f)).size);
  const readAll = async (log: FileLog, maxBytes = 4096) => {
    const out: StoredRecord[] = [];
    let offset = (await log.offsets('t', 0)).start;
    for (;;) {
      const batch = await log.read('t', 0, offset, maxBytes);
      if (batch.length === 0) return out;
      out.push(...batch);
      offset = batch[batch.length - 1]!.offset + 1;
    }
  };
  const appendEach = async (log: FileLog, n: number, timestamp = () => 1_700_000_000_000) => {
    for (let i = 0; i < n; i++) await log.append('t', record('k', `value-${String(i).padStart(4, '0')}`, timestamp()));
  };
  /** A closed log with sealed segments of known sizes, no retention. */
  const segmentsOnDisk = async () => {
    const dir = tempDir();
    const first = open(dir, { retention: { segmentBytes: 1024, retentionMs: null } });
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    return { dir, sizes: segmentSizes(dir) };
  };

  it('deletes the oldest segment when exactly the retention bytes are left, and not when one byte less would be', async () => {
    const { dir, sizes } = await segmentsOnDisk();
    expect(sizes.length).toBeGreaterThan(3);
    const total = sizes.reduce((a, b) => a + b, 0);
    const atLimit = total - sizes[0]! - sizes[1]!; // two segments can go, leaving exactly this
    const justOver = open(dir, { retention: { segmentBytes: 1024, retentionMs: null, retentionBytes: atLimit + 1 } });
    expect(await justOver.enforceRetention()).toMatchObject({ segments: 1 });
    await justOver.close();
    const { logger, lines } = capturingLogger();
    const log = open(dir, { retention: { segmentBytes: 1024, retentionMs: null, retentionBytes: atLimit } }, logger);
    const before = (await log.offsets('t', 0)).start;
    const { segments, records } = await log.enforceRetention();
    expect(segments).toBe(1);
    const [topic] = await log.describeTopics();
    expect(topic!.partitions[0]!.bytes).toBe(atLimit);
    const { start } = await log.offsets('t', 0);
    expect(records).toBe(start - before);
    expect(records).toBeGreaterThan(0);
    expect(segmentSizes(dir)).toEqual(sizes.slice(2));
    expect(lines.find((l) => l.msg.includes('log retention'))).toMatchObject({
      level: 30, topic: 't', partition: 0, segments: 1, startOffset: start, msg: `log retention: deleted 1 old segment(s), ${records} records`,
    });
    expect((await log.enforceRetention())).toEqual({ segments: 0, records: 0 });
    expect(lines.filter((l) => l.msg.includes('log retention'))).toHaveLength(1);
  });

  it('deletes by age only what is older than the retention time, to the millisecond, and never the active segment', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const log = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: 1000, retentionBytes: null } });
    await log.ensureTopic('t', 1);
    const t0 = clock.t;
    await appendEach(log, 20, () => t0);
    const segments = segmentSizes(dir).length;
    expect(segments).toBeGreaterThan(1);
    clock.t = t0 + 1000; // exactly the retention time: kept
    expect(await log.enforceRetention()).toEqual({ segments: 0, records: 0 });
    clock.t = t0 + 1001;
    const { segments: deleted } = await log.enforceRetention();
    expect(deleted).toBe(segments - 1);
    expect(segmentSizes(dir)).toHaveLength(1);
    expect((await log.offsets('t', 0)).end).toBe(20);
  });

  it('keeps everything when neither retention applies', async () => {
    const { dir, sizes } = await segmentsOnDisk();
    const clock = new ManualClock(1_700_000_000_000 + 10 * 365 * 24 * 3600 * 1000);
    const log = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: null, retentionBytes: null } });
    expect(await log.enforceRetention()).toEqual({ segments: 0, records: 0 });
    expect(segmentSizes(dir)).toEqual(sizes);
  });

  it('cuts a flush of more than 1 MiB into batches of about 1 MiB, each readable on its own', async () => {
    const dir = tempDir();
    const log = open(dir);
    await log.ensureTopic('t', 1);
    const value = 'x'.repeat(100 * 1024);
    const results = await Promise.all(Array.from({ length: 25 }, () => log.append('t', record('k', value))));
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const bytes = fs.readFileSync(path.join(partitionDir(dir), '00000000000000000000.log'));
    const batches: { baseOffset: number; recordCount: number }[] = [];
    for (let pos = 0; pos < bytes.length;) {
      const check = checkBatch(bytes, pos);
      if (!check.ok) throw new Error(`batch at ${pos}: ${check.reason}`);
      batches.push({ baseOffset: check.baseOffset, recordCount: check.recordCount });
      pos += check.batchBytes;
    }
    // ~100 KiB records: a batch takes them until it holds 1 MiB, so 11, 11, 3.
    expect(batches).toEqual([{ baseOffset: 0, recordCount: 11 }, { baseOffset: 11, recordCount: 11 }, { baseOffset: 22, recordCount: 3 }]);
    // A read of a little gets one whole batch; from inside a batch, the rest of it.
    expect((await log.read('t', 0, 0, 1)).map((r) => r.offset)).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect((await log.read('t', 0, 13, 1)).map((r) => r.offset)).toEqual(Array.from({ length: 9 }, (_, i) => 13 + i));
    expect((await readAll(log, 1)).every((r) => r.value.length === value.length)).toBe(true);
  });

  it('reads a batch larger than one read chunk whole, alone or after small ones', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { indexIntervalBytes: 1 } });
    await log.ensureTopic('t', 1);
    await log.append('t', record('k', 'small'));
    await log.append('t', record('k', 'y'.repeat(300 * 1024)));
    await log.append('t', record('k', 'after'));
    expect((await log.read('t', 0, 0, 10)).map((r) => r.value.length)).toEqual([5]);
    // Under maxBytes after the first batch: the big one is read too, whole.
    expect((await log.read('t', 0, 0, 1000)).map((r) => r.value.length)).toEqual([5, 300 * 1024]);
    expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.value.length)).toEqual([5, 300 * 1024, 5]);
    expect((await log.read('t', 0, 1, 1)).map((r) => r.value.length)).toEqual([300 * 1024]);
    expect((await log.read('t', 0, 2, 1)).map((r) => r.value.toString())).toEqual(['after']);
    await log.close();
    // The same after a restart, when the active segment was scanned to rebuild its index.
    const again = open(dir, { retention: { indexIntervalBytes: 1 } });
    expect((await again.read('t', 0, 1, 1)).map((r) => r.value.length)).toEqual([300 * 1024]);
    expect((await readAll(again, 1)).map((r) => r.offset)).toEqual([0, 1, 2]);
  });

  it('reads about maxBytes across segments and index entries, from any offset', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 4096, indexIntervalBytes: 200 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 300);
    const batchBytes = encodeBatch([record('k', 'value-0000')], 0).length;
    const recordsPerSegment = Math.floor(4096 / batchBytes);
    expect(segmentSizes(dir)[0]).toBe(recordsPerSegment * batchBytes);
    for (const from of [0, 1, 57, 63, 64, 150, 299]) {
      for (const maxBytes of [1, 100, 500, 5000, 1 << 20]) {
        const got = await log.read('t', 0, from, maxBytes);
        expect(got.length, `from ${from}, ${maxBytes} bytes`).toBeGreaterThan(0);
        expect(got.map((r) => r.offset)).toEqual(got.map((_, i) => from + i));
        expect(got.map((r) => r.value.toString())).toEqual(got.map((_, i) => `value-${String(from + i).padStart(4, '0')}`));
        // Each record here is its own batch: a read stops at the first batch that reaches maxBytes
        // (or at the end of a segment).
        if (maxBytes < 4096) expect(got.length).toBeLessThanOrEqual(Math.max(1, Math.ceil(maxBytes / batchBytes)));
        if (maxBytes <= 500) expect(got.length, `from ${from}, ${maxBytes} bytes`).toBe(Math.min(Math.max(1, Math.ceil(maxBytes / batchBytes)), recordsPerSegment - (from % recordsPerSegment), 300 - from));
      }
    }
    const small = await log.read('t', 0, 0, 500);
    expect(small.length).toBe(Math.ceil(500 / batchBytes));
    await log.close();
    const again = open(dir, { retention: { segmentBytes: 4096, indexIntervalBytes: 200 } });
    expect((await readAll(again, 300)).map((r) => r.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('rolls a segment by age from its first append, counted again from a restart', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const options = { clock, retention: { segmentMs: 1000, retentionMs: null } };
    const log = open(dir, options);
    await log.ensureTopic('t', 1);
    clock.t += 5000; // an empty segment does not age
    await appendEach(log, 1, () => clock.t);
    clock.t += 999;
    await appendEach(log, 1, () => clock.t);
    expect(segmentSizes(dir)).toHaveLength(1);
    clock.t += 1;
    await appendEach(log, 1, () => clock.t);
    expect(segmentSizes(dir)).toHaveLength(2);
    await log.close();
    clock.t += 10_000;
    const again = open(dir, options);
    clock.t += 999; // the age of a segment found at start counts from the start
    await again.append('t', record('k', 'v', clock.t));
    expect(segmentSizes(dir)).toHaveLength(2);
    clock.t += 1;
    await again.append('t', record('k', 'v', clock.t));
    expect(segmentSizes(dir)).toHaveLength(3);
    expect((await readAll(again)).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
  });

  it('rolls by size before a batch that would not fit, never leaving a segment empty', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 1024 } });
    await log.ensureTopic('t', 1);
    await log.append('t', record('k', 'z'.repeat(3000))); // larger than a segment: it gets one of its own
    await appendEach(log, 30);
    const sizes = segmentSizes(dir);
    expect(sizes[0]).toBeGreaterThan(3000);
    for (const s of sizes.slice(1, -1)) {
      expect(s).toBeLessThanOrEqual(1024);
      expect(s).toBeGreaterThan(1024 - 69); // full: the next batch of 69 bytes did not fit
    }
    expect(sizes.every((s) => s > 0)).toBe(true);
  });

  it('fails appends with LOG_IO when a new segment cannot be made, keeps what was written, and says so', async () => {
    const dir = tempDir();
    const { logger, lines } = capturingLogger();
    const log = open(dir, { retention: { segmentBytes: 1024 } }, logger);
    await log.ensureTopic('t', 1);
    await appendEach(log, 10);
    // The partition's directory is gone: the next roll cannot create its segment file.
    const aside = `${partitionDir(dir)}-aside`;
    fs.renameSync(partitionDir(dir), aside);
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => log.append('t', record('k', `late-${i}`.padEnd(60, '.')))));
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({
      code: 'LOG_IO', message: expect.stringMatching(/^log write failed: ENOENT/), cause: expect.objectContaining({ code: 'ENOENT' }),
    });
    const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ offset: number }>).value.offset);
    expect(ok).toEqual(ok.map((_, i) => 10 + i)); // the ones before the failure, in order
    expect(results.slice(0, ok.length).every((r) => r.status === 'fulfilled')).toBe(true);
    expect(log.stats.appendErrors).toBe(1);
    expect(lines.find((l) => l.msg === 'log append failed')).toMatchObject({ level: 50, topic: 't', partition: 0 });
    expect((await log.offsets('t', 0)).end).toBe(10 + ok.length);
    fs.renameSync(aside, partitionDir(dir));
  });

  it('refuses keys, headers and header counts too large for the format, counting bytes not characters', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    const threeByte = '€'; // 3 bytes in UTF-8
    await expect(log.append('t', record(threeByte.repeat(21_846), 'v'))).rejects.toThrow(/key of 65538 bytes is over the 65535-byte limit/);
    expect(await log.append('t', record(threeByte.repeat(21_845), 'v'))).toMatchObject({ offset: 0 });
    expect(await log.append('t', record('k'.repeat(65_535), 'v'))).toMatchObject({ offset: 1 });
    await expect(log.append('t', record('k'.repeat(65_536), 'v'))).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(log.append('t', { key: 'k', value: Buffer.from('v'), timestamp: 1, headers: { [threeByte.repeat(21_846)]: 'v' } })).rejects.toThrow(/record header "€€€/);
    await expect(log.append('t', { key: 'k', value: Buffer.from('v'), timestamp: 1, headers: { h: threeByte.repeat(21_846) } })).rejects.toThrow(/record header "h" is over the 65535-byte limit/);
    expect(await log.append('t', { key: 'k', value: Buffer.from('v'), timestamp: 1, headers: { h: threeByte.repeat(21_845) } })).toMatchObject({ offset: 2 });
    const many = Object.fromEntries(Array.from({ length: 65_536 }, (_, i) => [`h${i}`, '']));
    await expect(log.append('t', { key: 'k', value: Buffer.from('v'), timestamp: 1, headers: many })).rejects.toThrow(/a record has 65536 headers, more than 65535/);
    const read = await log.read('t', 0, 0, 1 << 22);
    expect(read.map((r) => r.key.length)).toEqual([21_845, 65_535, 1]);
  });
});
