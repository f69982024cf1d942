import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FsyncPolicy } from '../server/src/config.js';
import { FileLog } from '../server/src/log/file-log.js';
import { PartitionLog } from '../server/src/log/partition-log.js';
import { defaultRetention, type TopicSettings } from '../server/src/log/topic-settings.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

/**
 * fdatasync of a partition (partition-log.ts sync and close): syncs asked for while one runs, and
 * a segment whose fsync fails. That one is a segment file linked to /dev/null: writes to it
 * succeed, and fdatasync refuses it with EINVAL, as a failing disk would refuse it with EIO.
 */
describe('partition log syncs', () => {
  const partitions: PartitionLog[] = [];
  const logs: FileLog[] = [];
  afterEach(async () => {
    for (const p of partitions.splice(0)) await p.close(false);
    for (const log of logs.splice(0)) await log.close();
  });
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  /** A log over `dir` whose one partition writes to /dev/null. */
  const onDevNull = async (fsync: FsyncPolicy) => {
    const dir = tempDir();
    const first = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    await first.ensureTopic('t', 1);
    await first.close();
    const file = path.join(dir, 'log', 't', '0', '00000000000000000000.log');
    fs.rmSync(file);
    fs.symlinkSync('/dev/null', file);
    const { logger, lines } = capturingLogger();
    return { dir, lines, open: () => new FileLog(dir, fsync, logger, { retentionCheckMs: 0 }) };
  };

  const partitionLog = (dir: string, settings: Partial<TopicSettings> = {}) => {
    const p = new PartitionLog(dir, 't', 0, () => ({ ...defaultRetention, partitions: 1, fsyncOnRoll: false, ...settings }), silentLogger, { corruptSkipped: () => {} }, Date.now);
    partitions.push(p);
    return p;
  };

  it('resolves a sync asked for while one runs only after the next one, which starts after it, in the order asked', async () => {
    const p = partitionLog(tempDir());
    const write = (text: string) => {
      p.enqueue(record('k', text));
      expect(p.writeQueued(Date.now())).toMatchObject({ written: 1 });
    };
    const order: string[] = [];
    for (const round of [1, 2]) {
      write('a');
      const first = p.sync().then(() => order.push(`${round}: first`));
      write('b'); // not covered by the sync already running
      const second = p.sync().then(() => order.push(`${round}: second`));
      const third = p.sync().then(() => order.push(`${round}: third`));
      await Promise.all([first, second, third]);
    }
    expect(order).toEqual(['1: first', '1: second', '1: third', '2: first', '2: second', '2: third']);
  });

  it('keeps a failed fsync to the syncs that waited for it: later ones sync again', async () => {
    const dir = tempDir();
    fs.symlinkSync('/dev/null', path.join(dir, '00000000000000000000.log'));
    const p = partitionLog(dir, { segmentBytes: 1024, fsyncOnRoll: true });
    const write = (text: string) => {
      p.enqueue(record('k', text));
      expect(p.writeQueued(Date.now())).toMatchObject({ written: 1 });
    };
    write('small');
    const failing = p.sync();
    write('x'.repeat(1000)); // does not fit: a new segment, a real file, takes it
    expect(p.segmentCount).toBe(2);
    const waiting = p.sync();
    await expect(failing).rejects.toMatchObject({ code: 'LOG_IO', message: 'fsync of t/0 failed: EINVAL: invalid argument, fdatasync' });
    await expect(waiting).rejects.toMatchObject({ code: 'LOG_IO' }); // its writes were made while the failed one ran
    write('a');
    const next = p.sync();
    write('b');
    const afterIt = p.sync();
    await expect(next).resolves.toBeUndefined();
    await expect(afterIt).resolves.toBeUndefined();
  });

  it('fails an append whose fsync fails with LOG_IO, saying why, and says so in the log', async () => {
    const { open, lines } = await onDevNull({ mode: 'always' });
    const log = open();
    logs.push(log);
    await expect(log.append('t', record('k', 'v'))).rejects.toMatchObject({
      code: 'LOG_IO', message: 'fsync of t/0 failed: EINVAL: invalid argument, fdatasync', cause: expect.objectContaining({ code: 'EINVAL' }),
    });
    expect(lines.find((l) => l.msg === 'log fsync failed')).toMatchObject({ level: 50, topic: 't', partition: 0 });
  });

  it('closes every file even when the fsync at close fails, and says that it failed', async () => {
    const { open, lines } = await onDevNull({ mode: 'interval', intervalMs: 60_000 });
    const before = fds();
    const log = open();
    await log.append('t', record('k', 'v'));
    await log.close();
    expect(fds()).toBe(before);
    expect(lines.find((l) => l.msg === 'log: closing a partition failed')).toMatchObject({ level: 50, topic: 't', partition: 0, err: expect.objectContaining({ code: 'EINVAL' }) });
  });

  it('does not fsync at close under fsync never', async () => {
    const { open, lines } = await onDevNull({ mode: 'never' });
    const before = fds();
    const log = open();
    await log.append('t', record('k', 'v'));
    await log.close();
    expect(fds()).toBe(before);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });
});
