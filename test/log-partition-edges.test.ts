import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../server/src/clock.js';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/** Boundaries of partition-log.ts: which files are segments, when a segment is full, what close leaves open. */
describe('partition log edges', () => {
  const partitionDir = (dir: string) => path.join(dir, 'log', 't', '0');
  const logFiles = (dir: string) => fs.readdirSync(partitionDir(dir)).filter((f) => /^\d{20}\.log$/.test(f)).sort();

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
});
