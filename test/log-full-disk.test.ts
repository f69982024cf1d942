import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsumer } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor } from './support/test-server.js';

/**
 * A write the disk refuses, in this process (disk-full.test.ts does it to a child server): the
 * file size limit (RLIMIT_FSIZE, set with prlimit on this process; Node ignores SIGXFSZ) makes
 * writes past it fail with EFBIG, as a full disk fails them with ENOSPC.
 */
const setFileSizeLimit = (bytes: number | 'unlimited') => {
  execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${bytes}:unlimited`]);
};

describe('a write the disk refuses', () => {
  const opened: FileLog[] = [];
  afterEach(async () => {
    setFileSizeLimit('unlimited');
    for (const log of opened.splice(0)) await log.close();
  });

  it('fails the append with LOG_FULL, leaves no torn bytes behind, and appends again once there is room', async () => {
    const dir = tempDir();
    const { logger, lines } = capturingLogger();
    const log = new FileLog(dir, { mode: 'never' }, logger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 1);
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `v${i}`));
    const file = path.join(dir, 'log', 't', '0', '00000000000000000000.log');
    const size = fs.statSync(file).size;
    setFileSizeLimit(size + 50);
    try {
      await expect(log.append('t', record('k', 'x'.repeat(500)))).rejects.toMatchObject({
        code: 'LOG_FULL', message: `disk full: the log cannot write to ${file} (EFBIG)`,
      });
    } finally {
      setFileSizeLimit('unlimited');
    }
    expect(fs.statSync(file).size).toBe(size); // the part that was written is cut off again
    expect(log.stats.appendErrors).toBe(1);
    expect(lines.find((l) => l.msg === 'log append failed')).toMatchObject({ level: 50, err: expect.objectContaining({ code: 'LOG_FULL' }) });
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 3 });
    expect(await log.append('t', record('k', 'after'))).toEqual({ partition: 0, offset: 3 });
    expect((await log.read('t', 0, 0, 1 << 20)).map((r) => r.value.toString())).toEqual(['v0', 'v1', 'v2', 'after']);
    await log.close();
    const again = capturingLogger();
    const reopened = new FileLog(dir, { mode: 'never' }, again.logger, { retentionCheckMs: 0 });
    opened.push(reopened);
    expect(again.lines.filter((l) => l.msg.includes('damaged bytes'))).toEqual([]);
    expect(await reopened.offsets('t', 0)).toEqual({ start: 0, end: 4 });
  });

  it('fails only the records that did not fit: those of the same flush before them are acknowledged', async () => {
    const dir = tempDir();
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 1);
    const big = 'y'.repeat(100 * 1024);
    setFileSizeLimit(1_200_000);
    let results: PromiseSettledResult<{ offset: number }>[];
    try {
      // One flush of ~1.3 MB: a batch of the first 12 records (about 1.1 MB), then one of the last.
      results = await Promise.allSettled([
        log.append('t', record('k', 'small')),
        ...Array.from({ length: 12 }, () => log.append('t', record('k', big))),
      ]);
    } finally {
      setFileSizeLimit('unlimited');
    }
    expect(results.slice(0, 12).map((r) => (r.status === 'fulfilled' ? r.value.offset : r.reason))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(results[12]).toMatchObject({ status: 'rejected', reason: { code: 'LOG_FULL' } });
    expect(await log.offsets('t', 0)).toEqual({ start: 0, end: 12 });
    expect(await log.append('t', record('k', 'room again'))).toEqual({ partition: 0, offset: 12 });
    expect((await log.read('t', 0, 12, 1)).map((r) => r.value.toString())).toEqual(['room again']);
  });

  it('a consumer whose handler fails on a full disk retries the batch until it can, and loses nothing', async () => {
    const dir = tempDir();
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    opened.push(log);
    await log.ensureTopic('t', 1);
    await log.ensureTopic('out', 1);
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `v${i}`));
    const outFile = path.join(dir, 'log', 'out', '0', '00000000000000000000.log');
    let tries = 0;
    setFileSizeLimit(10);
    // The handler copies each batch to topic "out" (as a rule's output does): it fails while the disk is full.
    const consumer = startConsumer({
      log, group: 'copy', topic: 't', logger: silentLogger, retryDelayMs: 5,
      handle: async (records) => {
        tries++;
        for (const r of records) await log.append('out', { key: r.key, value: r.value, timestamp: r.timestamp });
      },
    });
    try {
      await waitFor('a few failed tries', () => (tries >= 3 ? true : undefined));
      expect(await log.committed('copy', 't', 0)).toBeUndefined();
      setFileSizeLimit('unlimited');
      await waitFor('the batch copied', async () => ((await log.committed('copy', 't', 0)) === 3 ? true : undefined));
    } finally {
      setFileSizeLimit('unlimited');
      await consumer.stop();
    }
    expect((await log.read('out', 0, 0, 1 << 20)).map((r) => r.value.toString())).toEqual(['v0', 'v1', 'v2']);
    expect(fs.statSync(outFile).size).toBeGreaterThan(0);
  });
});
