import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkBatch, encodeBatch, readUint64 } from '../server/src/log/batch-codec.js';
import { FileLog, type FileLogOptions } from '../server/src/log/file-log.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/** Segment files after a stop or a crash (segment.ts): what is checked, rebuilt, cut off or skipped. */
describe('segments on disk', () => {
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
  const segmentFile = (dir: string, base: number, ext = 'log') => path.join(partitionDir(dir), `${String(base).padStart(20, '0')}.${ext}`);
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
  const appendEach = async (log: FileLog, n: number) => {
    for (let i = 0; i < n; i++) await log.append('t', record('k', `value-${String(i).padStart(4, '0')}`));
  };
  const batchBytes = encodeBatch([record('k', 'value-0000')], 0).length;
  /** Appends one at a time, record i stamped `timestamp(i)`. */
  const appendStamped = async (log: FileLog, n: number, timestamp: (i: number) => number) => {
    for (let i = 0; i < n; i++) await log.append('t', record('k', `value-${String(i).padStart(4, '0')}`, timestamp(i)));
  };
  /** 2048-byte segments: 23 records each, so 0 and 23 are sealed and 46 is active after 60 records. */
  const small = (indexIntervalBytes: number) => ({ retention: { segmentBytes: 2048, indexIntervalBytes, retentionMs: null } });
  const T0 = 1_700_000_000_000;

  it('cuts the active segment off at a batch whose base offset does not follow the one before', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.ensureTopic('t', 1);
    await appendEach(first, 5);
    await first.close();
    const file = segmentFile(dir, 0);
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32BE(77, 3 * batchBytes + 4); // the fourth batch says it starts at offset 77 (not covered by its CRC)
    fs.writeFileSync(file, bytes);
    const { logger, lines } = capturingLogger();
    const log = open(dir, {}, logger);
    expect((await readAll(log)).map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(lines.find((l) => l.msg.includes('damaged bytes'))).toMatchObject({
      level: 40, file, truncatedBytes: 2 * batchBytes, validRecords: 3, reason: 'batch offset 77 where 3 was expected',
      msg: `log recovery: cut ${2 * batchBytes} damaged bytes off the end of the segment`,
    });
    expect(fs.statSync(file).size).toBe(3 * batchBytes);
    expect(await log.append('t', record('k', 'next'))).toEqual({ partition: 0, offset: 3 });
  });

  it('opens an active segment with only whole batches without a word, and one with a torn header as torn', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.ensureTopic('t', 1);
    await appendEach(first, 3);
    await first.close();
    const quiet = capturingLogger();
    const again = open(dir, {}, quiet.logger);
    expect((await again.offsets('t', 0)).end).toBe(3);
    expect(quiet.lines.filter((l) => l.level >= 40)).toEqual([]);
    await again.close();
    fs.appendFileSync(segmentFile(dir, 0), Buffer.alloc(10, 1)); // less than a batch header
    const { logger, lines } = capturingLogger();
    const third = open(dir, {}, logger);
    expect((await third.offsets('t', 0)).end).toBe(3);
    expect(lines.find((l) => l.msg.includes('damaged bytes'))).toMatchObject({ truncatedBytes: 10, reason: 'torn write' });
    expect(fs.statSync(segmentFile(dir, 0)).size).toBe(3 * batchBytes);
  });

  it('rebuilds a sealed segment\'s index whose last entry points at the wrong batch', async () => {
    const dir = tempDir();
    const settings = { retention: { segmentBytes: 2048, indexIntervalBytes: 1 } };
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const index = segmentFile(dir, 0, 'index');
    const original = fs.readFileSync(index);
    const tampered = Buffer.from(original);
    // The last entry (relative offset, position): keep its offset, point it one byte past the
    // start of the batch before: still in order and inside the segment, but not a batch start.
    const last = tampered.length - 8;
    tampered.writeUInt32BE(tampered.readUInt32BE(last - 8 + 4) + 1, last + 4);
    fs.writeFileSync(index, tampered);
    const { logger, lines } = capturingLogger();
    const log = open(dir, settings, logger);
    expect(lines.some((l) => l.msg.includes('index is missing or damaged'))).toBe(true);
    expect(fs.readFileSync(index)).toEqual(original);
    const recordsInFirst = Math.floor(2048 / batchBytes);
    expect((await log.read('t', 0, recordsInFirst - 1, 1)).map((r) => r.offset)).toEqual([recordsInFirst - 1]);
    expect((await readAll(log, 1)).map((r) => r.offset)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('trusts a sealed segment\'s index that fits, without rebuilding it', async () => {
    const dir = tempDir();
    const settings = { retention: { segmentBytes: 2048, indexIntervalBytes: 200 } };
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const { logger, lines } = capturingLogger();
    const log = open(dir, settings, logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect((await readAll(log, 1)).map((r) => r.offset)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('removes index files whose segment is gone (a crash in the middle of retention), and keeps the others', async () => {
    const dir = tempDir();
    const first = open(dir, { retention: { segmentBytes: 1024 } });
    await first.ensureTopic('t', 1);
    await appendEach(first, 40);
    await first.close();
    fs.rmSync(segmentFile(dir, 0)); // retention deleted the .log, then the process died
    const names = fs.readdirSync(partitionDir(dir));
    expect(names).toContain('00000000000000000000.index');
    fs.writeFileSync(path.join(partitionDir(dir), 'notes.index'), 'not ours');
    const log = open(dir, { retention: { segmentBytes: 1024 } });
    const after = fs.readdirSync(partitionDir(dir));
    expect(after).not.toContain('00000000000000000000.index');
    expect(after).not.toContain('00000000000000000000.timeindex');
    expect(after).toContain('notes.index');
    const logs = after.filter((f) => f.endsWith('.log'));
    for (const f of logs) {
      expect(after).toContain(f.replace('.log', '.index'));
      expect(after).toContain(f.replace('.log', '.timeindex'));
    }
    const { start, end } = await log.offsets('t', 0);
    expect(start).toBe(Number(logs.sort()[0]!.slice(0, 20)));
    expect(end).toBe(40);
  });

  it('scans an active segment of more than one 4 MiB chunk, and one batch larger than a chunk, after a restart', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.ensureTopic('t', 1);
    const mib = 'm'.repeat(1024 * 1024 - 100);
    for (let i = 0; i < 5; i++) await first.append('t', record('k', `${i}${mib}`)); // batches across the chunk boundary
    await first.append('t', record('k', 'b'.repeat(5 * 1024 * 1024))); // one batch larger than a chunk
    await first.append('t', record('k', 'last'));
    await first.close();
    const { logger, lines } = capturingLogger();
    const log = open(dir, {}, logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 7 });
    const all = await readAll(log, 1);
    expect(all.map((r) => r.value.length)).toEqual([...Array.from({ length: 5 }, () => mib.length + 1), 5 * 1024 * 1024, 4]);
    expect(all.map((r) => r.value[0])).toEqual([...'01234'].map((c) => c.charCodeAt(0)).concat(['b'.charCodeAt(0), 'l'.charCodeAt(0)]));
    expect(await log.append('t', record('k', 'more'))).toEqual({ partition: 0, offset: 7 });
  });

  it('skips a batch in a sealed segment whose length runs past the end of the segment', async () => {
    const dir = tempDir();
    const settings = { retention: { segmentBytes: 2048, indexIntervalBytes: 1 } };
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const file = segmentFile(dir, 0);
    const bytes = fs.readFileSync(file);
    const recordsInFirst = bytes.length / batchBytes;
    bytes.writeUInt32BE(100_000, 2 * batchBytes + 8); // the third batch says it is 100 kB long
    fs.writeFileSync(file, bytes);
    const { logger, lines } = capturingLogger();
    const log = open(dir, settings, logger);
    const offsets = (await readAll(log)).map((r) => r.offset);
    expect(offsets).toEqual(Array.from({ length: 60 }, (_, i) => i).filter((o) => o !== 2));
    expect(log.stats.corruptRecordsSkipped).toBe(1);
    expect(lines.find((l) => l.msg.includes('skipped 1 records'))).toMatchObject({ level: 50, reason: 'batch runs past the end of the segment', skipped: 1 });
    expect(recordsInFirst).toBeGreaterThan(3);
  });

  it('skips to the next segment when a sealed segment is damaged after its last index entry', async () => {
    const dir = tempDir();
    const settings = { retention: { segmentBytes: 2048, indexIntervalBytes: 100_000 } }; // one entry per segment
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const file = segmentFile(dir, 0);
    const bytes = fs.readFileSync(file);
    const recordsInFirst = bytes.length / batchBytes;
    bytes[5 * batchBytes + 45] = bytes[5 * batchBytes + 45]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    const log = open(dir, settings);
    // Records before the damage are served; the rest of that segment cannot be found without
    // an index entry, so reading goes on at the next segment.
    expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect((await log.read('t', 0, 5, 1)).map((r) => r.offset)[0]).toBe(recordsInFirst);
    expect(log.stats.corruptRecordsSkipped).toBe(recordsInFirst - 5);
    const check = checkBatch(fs.readFileSync(file), 5 * batchBytes);
    expect(check).toMatchObject({ ok: false, reason: 'crc' });
  });

  it('cuts a later active segment\'s damaged tail, and rebuilds its index files to the batches it kept', async () => {
    const dir = tempDir();
    const first = open(dir, small(1));
    await first.ensureTopic('t', 1);
    await appendStamped(first, 30, (i) => T0 + i);
    await first.close();
    expect(fs.statSync(segmentFile(dir, 23)).size).toBe(7 * batchBytes);
    const index = fs.readFileSync(segmentFile(dir, 23, 'index'));
    const timeIndex = fs.readFileSync(segmentFile(dir, 23, 'timeindex'));
    expect([index.length, timeIndex.length]).toEqual([7 * 8, 7 * 12]);
    const bytes = fs.readFileSync(segmentFile(dir, 23));
    bytes[5 * batchBytes + 45] = bytes[5 * batchBytes + 45]! ^ 0xff; // the sixth batch
    fs.writeFileSync(segmentFile(dir, 23), bytes);
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(1), logger);
    expect(lines.find((l) => l.msg.includes('damaged bytes'))).toMatchObject({ truncatedBytes: 2 * batchBytes, validRecords: 5, reason: 'batch crc' });
    expect(fs.readFileSync(segmentFile(dir, 23, 'index'))).toEqual(index.subarray(0, 5 * 8));
    expect(fs.readFileSync(segmentFile(dir, 23, 'timeindex'))).toEqual(timeIndex.subarray(0, 5 * 12));
    expect((await log.offsets('t', 0)).end).toBe(28);
  });

  it('rebuilds a sealed segment\'s time index that names an offset past its records', async () => {
    const dir = tempDir();
    const first = open(dir, small(1));
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const timeIndex = segmentFile(dir, 23, 'timeindex');
    const original = fs.readFileSync(timeIndex);
    expect(original.length).toBe(12); // one entry: the first batch's timestamp, at relative offset 0
    const tampered = Buffer.from(original);
    tampered.writeUInt32BE(23, 8); // the segment holds relative offsets 0 to 22
    fs.writeFileSync(timeIndex, tampered);
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(1), logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([
      expect.objectContaining({ level: 40, file: segmentFile(dir, 23), msg: 'log recovery: the segment index is missing or damaged; rebuilding it' }),
    ]);
    expect(fs.readFileSync(timeIndex)).toEqual(original);
    expect((await readAll(log)).map((r) => r.offset)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('trusts the index of a sealed segment whose records are all stamped 0', async () => {
    const dir = tempDir();
    const first = open(dir, small(200));
    await first.ensureTopic('t', 1);
    await appendStamped(first, 30, () => 0);
    await first.close();
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(200), logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect((await readAll(log)).map((r) => r.timestamp)).toEqual(Array.from({ length: 30 }, () => 0));
  });

  it('says where a sealed segment whose index it rebuilds is damaged, and readers skip from there', async () => {
    const dir = tempDir();
    const first = open(dir, small(1));
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    fs.rmSync(segmentFile(dir, 0, 'index'));
    const bytes = fs.readFileSync(segmentFile(dir, 0));
    bytes[3 * batchBytes + 45] = bytes[3 * batchBytes + 45]! ^ 0xff; // the fourth batch
    fs.writeFileSync(segmentFile(dir, 0), bytes);
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(1), logger);
    expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
      'log recovery: the segment index is missing or damaged; rebuilding it',
      'log recovery: a sealed segment has a damaged batch; readers will skip it',
    ]);
    expect(lines.find((l) => l.level === 50)).toMatchObject({ file: segmentFile(dir, 0), position: 3 * batchBytes, reason: 'batch crc' });
    // The rebuilt index ends at the damage: nothing after it in that segment can be found.
    expect((await readAll(log)).map((r) => r.offset)).toEqual([0, 1, 2, ...Array.from({ length: 37 }, (_, i) => 23 + i)]);
    expect(log.stats.corruptRecordsSkipped).toBe(20);
  });

  it('rebuilds a later sealed segment\'s index as the roll wrote it, and the one the roll wrote is trusted', async () => {
    const dir = tempDir();
    const first = open(dir, small(500)); // an index entry every sixth batch: the last ones come after the last entry
    await first.ensureTopic('t', 1);
    await appendStamped(first, 60, (i) => T0 + i);
    await first.close();
    const index = fs.readFileSync(segmentFile(dir, 23, 'index'));
    const timeIndex = fs.readFileSync(segmentFile(dir, 23, 'timeindex'));
    const times = Array.from({ length: timeIndex.length / 12 }, (_, i) => [readUint64(timeIndex, i * 12) - T0, timeIndex.readUInt32BE(i * 12 + 8)]);
    // The roll adds the newest timestamp, at the segment's last relative offset.
    expect(times).toEqual([[23, 0], [29, 6], [35, 12], [41, 18], [45, 22]]);
    const quiet = capturingLogger();
    const again = open(dir, small(500), quiet.logger);
    expect(quiet.lines.filter((l) => l.level >= 40)).toEqual([]);
    await again.close();
    fs.rmSync(segmentFile(dir, 23, 'index'));
    fs.rmSync(segmentFile(dir, 23, 'timeindex'));
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(500), logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([expect.objectContaining({ level: 40, file: segmentFile(dir, 23) })]);
    expect(fs.readFileSync(segmentFile(dir, 23, 'index'))).toEqual(index);
    expect(fs.readFileSync(segmentFile(dir, 23, 'timeindex'))).toEqual(timeIndex);
    expect((await readAll(log)).map((r) => r.timestamp - T0)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('rebuilds a sealed segment\'s index whose last entry points into the last bytes of the segment', async () => {
    const dir = tempDir();
    const first = open(dir, small(1));
    await first.ensureTopic('t', 1);
    await appendEach(first, 60);
    await first.close();
    const index = segmentFile(dir, 0, 'index');
    const original = fs.readFileSync(index);
    const tampered = Buffer.from(original);
    tampered.writeUInt32BE(23 * batchBytes - 4, tampered.length - 4); // 4 bytes before the end: no room for a batch header
    fs.writeFileSync(index, tampered);
    const { logger, lines } = capturingLogger();
    const log = open(dir, small(1), logger);
    expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual(['log recovery: the segment index is missing or damaged; rebuilding it']);
    expect(fs.readFileSync(index)).toEqual(original);
    expect((await log.read('t', 0, 22, 1)).map((r) => r.offset)).toEqual([22]);
  });

  it('keeps an active segment whose last batch is larger than a scan chunk', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.ensureTopic('t', 1);
    await first.append('t', record('k', 'small'));
    await first.close();
    const second = open(dir);
    await second.append('t', record('k', 'b'.repeat(5 * 1024 * 1024))); // a 4 MiB chunk starts at it: it is read whole
    await second.close();
    const { logger, lines } = capturingLogger();
    const log = open(dir, {}, logger);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 2 });
    expect((await log.read('t', 0, 1, 1)).map((r) => r.value.length)).toEqual([5 * 1024 * 1024]);
  });
});
