import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SluiceError } from '../server/src/errors.js';
import { encodeBatch, readUint64 } from '../server/src/log/batch-codec.js';
import { Segment } from '../server/src/log/segment.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, tempDir, within } from './support/test-server.js';

/** One segment on its own (segment.ts): what its appends write to its files, its syncs, a write or sync the disk refuses, deleting it. */
describe('a segment\'s writes', () => {
  const open = new Set<Segment>();
  const track = (segment: Segment) => {
    open.add(segment);
    return segment;
  };
  /** Closes it now (and not again in afterEach). */
  const release = (segment: Segment) => {
    open.delete(segment);
    segment.close();
  };
  afterEach(() => {
    for (const segment of open) segment.close();
    open.clear();
  });
  const file = (dir: string, base: number, ext: 'log' | 'index' | 'timeindex') => path.join(dir, `${String(base).padStart(20, '0')}.${ext}`);
  /** Appends one record as its own batch; returns the batch's size. */
  const appendOne = (segment: Segment, timestamp: number, now = 1_000) => {
    const batch = encodeBatch([record('k', `value-${String(segment.endOffset).padStart(4, '0')}`, timestamp)], segment.endOffset);
    segment.append(batch, 1, timestamp, now);
    return batch.length;
  };
  const batchBytes = encodeBatch([record('k', 'value-0000')], 0).length;
  /** The .index file as (relative offset, position) pairs. */
  const offsetEntries = (dir: string, base: number) => {
    const bytes = fs.readFileSync(file(dir, base, 'index'));
    return Array.from({ length: bytes.length / 8 }, (_, i) => [bytes.readUInt32BE(i * 8), bytes.readUInt32BE(i * 8 + 4)]);
  };
  /** The .timeindex file as (timestamp, relative offset) pairs. */
  const timeEntries = (dir: string, base: number) => {
    const bytes = fs.readFileSync(file(dir, base, 'timeindex'));
    return Array.from({ length: bytes.length / 12 }, (_, i) => [readUint64(bytes, i * 12), bytes.readUInt32BE(i * 12 + 8)]);
  };
  /** A segment whose .log is the device `device` (its index files are ordinary files). */
  const onDevice = (device: string) => {
    const dir = tempDir();
    fs.symlinkSync(device, file(dir, 0, 'log'));
    return track(Segment.create(dir, 0, 4096));
  };

  it('starts with empty index files, even where an old segment of the same base left some', () => {
    const dir = tempDir();
    fs.writeFileSync(file(dir, 10, 'index'), Buffer.alloc(64, 1));
    fs.writeFileSync(file(dir, 10, 'timeindex'), Buffer.alloc(48, 1));
    const segment = track(Segment.create(dir, 10, 4096));
    expect(fs.statSync(file(dir, 10, 'index')).size).toBe(0);
    expect(fs.statSync(file(dir, 10, 'timeindex')).size).toBe(0);
    appendOne(segment, 5_000);
    expect(offsetEntries(dir, 10)).toEqual([[0, 0]]);
    expect(timeEntries(dir, 10)).toEqual([[5_000, 0]]);
  });

  it('writes an index entry for the first batch and for each once indexIntervalBytes were written since the last, as it appends', () => {
    const dir = tempDir();
    const every = track(Segment.create(dir, 0, batchBytes)); // exactly one batch per interval
    for (let i = 0; i < 3; i++) appendOne(every, 5_000);
    expect(offsetEntries(dir, 0)).toEqual([[0, 0], [1, batchBytes], [2, 2 * batchBytes]]);
    const sparse = track(Segment.create(dir, 100, batchBytes + 1)); // a little more than one batch
    for (let i = 0; i < 5; i++) appendOne(sparse, 5_000);
    expect(offsetEntries(dir, 100)).toEqual([[0, 0], [2, 2 * batchBytes], [4, 4 * batchBytes]]);
  });

  it('keeps in its time index the largest timestamp so far at each index entry, and the newest one at the seal', () => {
    const dir = tempDir();
    const segment = track(Segment.create(dir, 0, batchBytes));
    for (const t of [5_000, 3_000, 8_000, 8_000, 2_000]) appendOne(segment, t);
    expect(timeEntries(dir, 0)).toEqual([[5_000, 0], [8_000, 2]]);
    expect(segment.maxTimestamp).toBe(8_000);
    segment.seal(false);
    expect(timeEntries(dir, 0)).toEqual([[5_000, 0], [8_000, 2]]); // nothing newer after the last entry
    const sealed = track(Segment.create(dir, 50, 100_000)); // one index entry: the first batch
    for (const t of [5_000, 7_000, 9_000]) appendOne(sealed, t);
    expect(timeEntries(dir, 50)).toEqual([[5_000, 0]]);
    sealed.seal(false);
    expect(timeEntries(dir, 50)).toEqual([[5_000, 0], [9_000, 2]]);
  });

  it('takes records stamped 0 as stamped 0', () => {
    const dir = tempDir();
    const segment = track(Segment.create(dir, 0, 4096));
    expect(segment.maxTimestamp).toBe(-1); // no records: nothing to age by
    appendOne(segment, 0);
    expect(segment.maxTimestamp).toBe(0);
    expect(timeEntries(dir, 0)).toEqual([[0, 0]]);
  });

  it('ages from the clock time of its first append, even when that is 0', () => {
    const segment = track(Segment.create(tempDir(), 0, 4096));
    expect(segment.openedAt).toBe(-1);
    appendOne(segment, 5_000, 0);
    appendOne(segment, 5_000, 50);
    expect(segment.openedAt).toBe(0);
  });

  it('deletes its three files and closes them, also when an index file is already gone', () => {
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const dir = tempDir();
    const segment = track(Segment.create(dir, 0, 4096));
    appendOne(segment, 5_000);
    fs.rmSync(file(dir, 0, 'timeindex'));
    open.delete(segment);
    const before = fds();
    segment.delete();
    expect(fds()).toBe(before - 3);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('fails a write the disk refuses as full with LOG_FULL, and changes nothing', () => {
    const segment = onDevice('/dev/full'); // every write fails with ENOSPC
    const err = (() => { try { appendOne(segment, 5_000); } catch (e) { return e; } })() as SluiceError;
    expect(err).toBeInstanceOf(SluiceError);
    expect(err).toMatchObject({ code: 'LOG_FULL', message: `disk full: the log cannot write to ${segment.file} (ENOSPC)` });
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect({ size: segment.size, endOffset: segment.endOffset, openedAt: segment.openedAt }).toEqual({ size: 0, endOffset: 0, openedAt: -1 });
  });

  it('fails a write that goes wrong otherwise with LOG_IO, saying why', () => {
    const dir = tempDir();
    execFileSync('mkfifo', [file(dir, 0, 'log')]); // a pipe: a write at a position fails with ESPIPE
    const segment = track(Segment.create(dir, 0, 4096));
    const err = (() => { try { appendOne(segment, 5_000); } catch (e) { return e; } })() as SluiceError;
    expect(err).toBeInstanceOf(SluiceError);
    expect(err.code).toBe('LOG_IO');
    expect(err.message).toMatch(new RegExp(`^log write to ${segment.file} failed: ESPIPE`));
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ESPIPE');
    expect(segment.size).toBe(0);
  });

  it('syncs only after appends, and after a failed sync tries again at the next one', async () => {
    const segment = onDevice('/dev/null'); // writes vanish, and every fdatasync fails with EINVAL
    await expect(within(2000, 'a sync of a clean segment', segment.syncAsync())).resolves.toBeUndefined();
    expect(() => segment.syncNow()).not.toThrow();
    appendOne(segment, 5_000);
    await expect(within(2000, 'the failed sync', segment.syncAsync())).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(within(2000, 'the sync tried again', segment.syncAsync())).rejects.toMatchObject({ code: 'EINVAL' });
    expect(() => segment.syncNow()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => segment.syncNow()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('syncs when it is sealed only when asked to', () => {
    const segment = onDevice('/dev/null');
    appendOne(segment, 5_000);
    expect(() => segment.seal(false)).not.toThrow();
    expect(() => segment.seal(true)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('counts the records a recovery keeps from its own base offset', () => {
    const dir = tempDir();
    const segment = track(Segment.create(dir, 100, 4096));
    for (let i = 0; i < 3; i++) appendOne(segment, 5_000);
    release(segment);
    fs.appendFileSync(file(dir, 100, 'log'), Buffer.alloc(10, 1));
    const { logger, lines } = capturingLogger();
    const recovered = track(Segment.recoverActive(dir, 100, 4096, logger));
    expect(recovered.endOffset).toBe(103);
    expect(lines.find((l) => l.msg.includes('damaged bytes'))).toMatchObject({ truncatedBytes: 10, validRecords: 3 });
  });
});
