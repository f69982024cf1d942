import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBatch } from '../server/src/log/batch-codec.js';
import { FileLog, type FileLogOptions } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/** Reads of a partition whose segments lost records or hold a damaged batch (partition-log.ts read). */
describe('partition log reads', () => {
  const opened: FileLog[] = [];
  const open = (dir: string, options: FileLogOptions = {}, logger = silentLogger) => {
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0, ...options });
    opened.push(log);
    return log;
  };
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
  });
  const settings = { retention: { segmentBytes: 1024, indexIntervalBytes: 1 } };
  const batchBytes = encodeBatch([record('k', 'value-0000')], 0).length;
  const perSegment = Math.floor(1024 / batchBytes);
  const segmentFile = (dir: string, base: number) => path.join(dir, 'log', 't', '0', `${String(base).padStart(20, '0')}.log`);
  /** A closed log of `segments` full segments and `extra` records in the active one, each record its own batch. */
  const segmentsOnDisk = async (segments: number, extra: number) => {
    const dir = tempDir();
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    for (let i = 0; i < segments * perSegment + extra; i++) await first.append('t', record('k', `value-${String(i).padStart(4, '0')}`));
    await first.close();
    return dir;
  };

  it('reads on at the next segment past records lost from the end of a sealed one, counting nothing as damaged', async () => {
    const dir = await segmentsOnDisk(1, 3);
    fs.truncateSync(segmentFile(dir, 0), 5 * batchBytes); // the segment lost its tail at a batch boundary
    const { logger, lines } = capturingLogger();
    const log = open(dir, settings, logger);
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: perSegment + 3 });
    expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect((await log.read('t', 0, 5, 1 << 20)).map((r) => r.offset)).toEqual([perSegment, perSegment + 1, perSegment + 2]);
    expect((await log.read('t', 0, perSegment - 1, 1)).map((r) => r.offset)).toEqual([perSegment]);
    expect(log.stats.corruptRecordsSkipped).toBe(0);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('refuses a read in records lost from a sealed segment while nothing follows them, and reads on once something does', async () => {
    // A read that gave nothing below the end would send a follower straight back to read again, forever.
    const dir = await segmentsOnDisk(1, 3);
    fs.truncateSync(segmentFile(dir, 0), 5 * batchBytes);
    fs.truncateSync(segmentFile(dir, perSegment), 0); // and the active segment lost everything
    const log = open(dir, settings);
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: perSegment });
    await expect(log.read('t', 0, 5, 1 << 20)).rejects.toMatchObject({
      code: 'LOG_CORRUPT', message: `t/0: records 5 to ${perSegment - 1} are missing from the log, nothing readable after them`,
    });
    expect(await log.read('t', 0, perSegment, 1 << 20)).toEqual([]); // at the end: nothing yet, as always
    expect(await log.append('t', record('k', 'after'))).toEqual({ partition: 0, offset: perSegment });
    expect((await log.read('t', 0, 5, 1 << 20)).map((r) => r.value.toString())).toEqual(['after']);
  });

  it('counts as skipped only the records of a damaged batch, not those lost before it', async () => {
    const dir = await segmentsOnDisk(2, 1);
    fs.truncateSync(segmentFile(dir, 0), 5 * batchBytes);
    const second = segmentFile(dir, perSegment);
    const bytes = fs.readFileSync(second);
    bytes[45] = bytes[45]! ^ 0xff; // inside the first batch of the second segment
    fs.writeFileSync(second, bytes);
    const { logger, lines } = capturingLogger();
    const log = open(dir, settings, logger);
    expect((await log.read('t', 0, 5, 1 << 20)).map((r) => r.offset)[0]).toBe(perSegment + 1);
    expect(log.stats.corruptRecordsSkipped).toBe(1);
    expect(lines.find((l) => l.msg.includes('of a damaged batch'))).toMatchObject({ level: 50, skipped: 1, msg: 'log read: skipped 1 records of a damaged batch' });
  });

  it('refuses a read at a damaged batch with nothing readable after it, naming the file, the byte and why', async () => {
    const dir = tempDir();
    const log = open(dir);
    await log.ensureTopic('t', 1);
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `value-${String(i).padStart(4, '0')}`));
    const file = segmentFile(dir, 0);
    const bytes = fs.readFileSync(file);
    bytes[2 * batchBytes + 45] = bytes[2 * batchBytes + 45]! ^ 0xff; // the last batch, damaged under the running log
    fs.writeFileSync(file, bytes);
    // What comes before the damage is served; the damaged batch never.
    expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.offset)).toEqual([0, 1]);
    await expect(log.read('t', 0, 2, 1 << 20)).rejects.toMatchObject({
      code: 'LOG_CORRUPT', message: `t/0: damaged batch at byte ${2 * batchBytes} of ${file} (crc), nothing readable after it`,
    });
  });
});
