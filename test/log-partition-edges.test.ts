import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../server/src/clock.js';
import { checkBatch } from '../server/src/log/batch-codec.js';
import { FileLog, type FileLogOptions } from '../server/src/log/file-log.js';
import type { LogRecord } from '../server/src/log/types.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/** Boundaries of partition-log.ts: which files are segments, when a segment is full, what close leaves open. */
describe('partition log edges', () => {
  const partitionDir = (dir: string) => path.join(dir, 'log', 't', '0');
  const logFiles = (dir: string) => fs.readdirSync(partitionDir(dir)).filter((f) => /^\d{20}\.log$/.test(f)).sort();
  const opened: FileLog[] = [];
  const open = (dir: string, options: FileLogOptions = {}, logger = silentLogger) => {
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0, ...options });
    opened.push(log);
    return log;
  };
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
  });
  const withHeaders = (headers: Record<string, string>): LogRecord => ({ key: 'k', value: Buffer.from('v'), timestamp: 1, headers });
  /** Record counts of the batches in the partition's first segment file, in order. */
  const batchesOnDisk = (dir: string) => {
    const bytes = fs.readFileSync(path.join(partitionDir(dir), logFiles(dir)[0]!));
    const counts: number[] = [];
    for (let pos = 0; pos < bytes.length;) {
      const check = checkBatch(bytes, pos);
      if (!check.ok) throw new Error(`batch at ${pos}: ${check.reason}`);
      counts.push(check.recordCount);
      pos += check.batchBytes;
    }
    return counts;
  };

  it('takes only <20 digits>.log as segments and removes only <20 digits>.index/.timeindex strays', async () => {
    const dir = tempDir();
    const first = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    await first.ensureTopic('t', 1);
    for (let i = 0; i < 3; i++) await first.append('t', record('k', `v${i}`));
    await first.close();
    const odd = ['x00000000000000000007.log', '00000000000000000007.log.old', 'x00000000000000000007.index', '00000000000000000007.index.old', '00000000000000000007.timeindex.bak'];
    for (const f of odd) fs.writeFileSync(path.join(partitionDir(dir), f), 'not a segment');
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    try {
      expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 3 });
      expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.value.toString())).toEqual(['v0', 'v1', 'v2']);
      for (const f of odd) expect(fs.existsSync(path.join(partitionDir(dir), f)), f).toBe(true);
    } finally {
      await log.close();
    }
  });

  it('fills a segment to exactly segmentBytes before it rolls', async () => {
    const dir = tempDir();
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0, retention: { segmentBytes: 1024 } });
    try {
      await log.ensureTopic('t', 1);
      // 40 header + 38 record bytes + 50 value bytes = 128: eight batches make 1024 exactly.
      for (let i = 0; i < 9; i++) await log.append('t', record('k', `${i}`.padEnd(50, '.')));
      expect(logFiles(dir).map((f) => fs.statSync(path.join(partitionDir(dir), f)).size)).toEqual([1024, 128]);
    } finally {
      await log.close();
    }
  });

  it('deletes by age a segment whose records have timestamp 0', async () => {
    const clock: Clock = { now: () => 10_000 };
    const dir = tempDir();
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { clock, retentionCheckMs: 0, retention: { segmentBytes: 1024, retentionMs: 1000 } });
    try {
      await log.ensureTopic('t', 1);
      for (let i = 0; i < 20; i++) await log.append('t', record('k', `v${i}`.padEnd(50, '.'), 0));
      expect((await log.enforceRetention()).segments).toBeGreaterThan(0);
      expect(logFiles(dir)).toHaveLength(1);
    } finally {
      await log.close();
    }
  });

  it('closes every file it opened, and says nothing about it', async () => {
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    const dir = tempDir();
    const { logger, lines } = capturingLogger();
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0, retention: { segmentBytes: 1024 } });
    await log.ensureTopic('t', 2);
    for (let i = 0; i < 40; i++) await log.append('t', record(`k${i}`, `v${i}`.padEnd(50, '.')));
    expect(fds()).toBeGreaterThan(before + 6);
    await log.close();
    expect(fds()).toBe(before);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('takes header names and values of exactly 65535 one-byte characters, and exactly 65535 headers', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    const longest = 'a'.repeat(65_535);
    expect(await log.append('t', withHeaders({ h: longest }))).toEqual({ partition: 0, offset: 0 });
    expect(await log.append('t', withHeaders({ [longest]: 'v' }))).toEqual({ partition: 0, offset: 1 });
    const most = Object.fromEntries(Array.from({ length: 65_535 }, (_, i) => [`h${i}`, '']));
    expect(await log.append('t', withHeaders(most))).toEqual({ partition: 0, offset: 2 });
    const read = await log.read('t', 0, 0, 1 << 22);
    expect(read[0]!.headers!.h).toBe(longest);
    expect(Object.keys(read[1]!.headers!)).toEqual([longest]);
    expect(Object.keys(read[2]!.headers!)).toHaveLength(65_535);
  });

  it('names only the first 50 characters of a header name that is too long', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await expect(log.append('t', withHeaders({ ['n'.repeat(70_000)]: 'v' }))).rejects.toMatchObject({
      code: 'INVALID_INPUT', message: `record header "${'n'.repeat(50)}" is over the 65535-byte limit`,
    });
  });

  it('ends a batch at the record that brings it to 1 MiB, counting each record as its key, its value and 32 bytes', async () => {
    const dir = tempDir();
    const log = open(dir);
    await log.ensureTopic('t', 1);
    // 30000 + 35504 + 32 = 65536: sixteen such records are exactly 1 MiB, so the seventeenth starts a batch.
    const key = 'k'.repeat(30_000);
    const value = 'v'.repeat(35_504);
    await Promise.all(Array.from({ length: 17 }, () => log.append('t', record(key, value))));
    expect(batchesOnDisk(dir)).toEqual([16, 1]);
  });

  it('keeps the newest timestamp of a batch whose records come out of order, so retention by age keeps it', async () => {
    const now = 1_700_000_000_000;
    const clock: Clock = { now: () => now };
    const dir = tempDir();
    const log = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: 1000 } });
    await log.ensureTopic('t', 1);
    await Promise.all([log.append('t', record('k', 'new', now)), log.append('t', record('k', 'old', now - 5000))]);
    await log.append('t', record('k', 'x'.repeat(1000), now)); // does not fit: the first segment is sealed
    expect(logFiles(dir)).toHaveLength(2);
    expect(await log.enforceRetention()).toEqual({ segments: 0, records: 0 });
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 3 });
  });

  it('keeps a sealed segment\'s newest timestamp across a restart, not only the one its index entry saw', async () => {
    const t0 = 1_700_000_000_000;
    let now = t0;
    const clock: Clock = { now: () => now };
    const dir = tempDir();
    const options = { clock, retention: { segmentBytes: 1024, retentionMs: 5000 } };
    const first = open(dir, options);
    await first.ensureTopic('t', 1);
    await first.append('t', record('k', 'first', t0)); // the segment's one index entry, at its first batch
    await first.append('t', record('k', 'later', t0 + 10_000));
    await first.append('t', record('k', 'x'.repeat(1000), t0 + 10_000)); // seals the first segment
    await first.close();
    now = t0 + 15_000; // the first record is older than retention, the segment's newest is exactly that old
    const again = open(dir, options);
    expect(await again.enforceRetention()).toEqual({ segments: 0, records: 0 });
    now += 1;
    expect(await again.enforceRetention()).toEqual({ segments: 1, records: 2 });
  });

  it('writes a first batch larger than a segment into the empty segment instead of rolling', async () => {
    const dir = tempDir();
    const { logger, lines } = capturingLogger();
    const log = open(dir, { retention: { segmentBytes: 1024, retentionBytes: 1024, retentionMs: null } }, logger);
    await log.ensureTopic('t', 1);
    await log.append('t', record('k', 'z'.repeat(3000)));
    expect(lines.filter((l) => l.msg === 'log: rolled a new segment')).toEqual([]);
    expect(logFiles(dir)).toEqual(['00000000000000000000.log']);
    expect(await log.enforceRetention()).toEqual({ segments: 0, records: 0 }); // one segment: the active one, never deleted
    await log.close();
    const again = open(dir);
    expect((await again.read('t', 0, 0, 1)).map((r) => r.value.length)).toEqual([3000]);
  });

  it('says at debug level when it rolls a segment, where the new one starts and why', async () => {
    let now = 1_700_000_000_000;
    const clock: Clock = { now: () => now };
    const { logger, lines } = capturingLogger();
    const log = open(tempDir(), { clock, retention: { segmentBytes: 1024, segmentMs: 60_000 } }, logger);
    await log.ensureTopic('t', 1);
    for (let i = 0; i < 9; i++) await log.append('t', record('k', `${i}`.padEnd(50, '.'))); // eight fill 1024 bytes
    now += 60_000;
    await log.append('t', record('k', 'aged'));
    expect(lines.filter((l) => l.msg === 'log: rolled a new segment')).toEqual([
      expect.objectContaining({ level: 20, topic: 't', partition: 0, baseOffset: 8, reason: 'size' }),
      expect.objectContaining({ level: 20, topic: 't', partition: 0, baseOffset: 9, reason: 'age' }),
    ]);
  });

  it('rolls by age a segment first appended to at clock time 0', async () => {
    let now = 0;
    const clock: Clock = { now: () => now };
    const dir = tempDir();
    const log = open(dir, { clock, retention: { segmentMs: 1000 } });
    await log.ensureTopic('t', 1);
    await log.append('t', record('k', 'a', 0));
    now = 1000;
    await log.append('t', record('k', 'b', 1000));
    expect(logFiles(dir)).toEqual(['00000000000000000000.log', '00000000000000000001.log']);
  });

  it('counts the age of an empty segment found at start from its first append, not from the start', async () => {
    let now = 1_700_000_000_000;
    const clock: Clock = { now: () => now };
    const dir = tempDir();
    const options = { clock, retention: { segmentMs: 1000 } };
    const first = open(dir, options);
    await first.ensureTopic('t', 1);
    await first.close();
    const again = open(dir, options);
    now += 5000;
    await again.append('t', record('k', 'a', now));
    now += 1;
    await again.append('t', record('k', 'b', now));
    expect(logFiles(dir)).toEqual(['00000000000000000000.log']);
  });
});
