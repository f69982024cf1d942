import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../server/src/clock.js';
import type { FsyncPolicy } from '../server/src/config.js';
import { startConsumer } from '../server/src/log/consumer.js';
import { FileLog, type FileLogOptions } from '../server/src/log/file-log.js';
import { murmur2, partitionForKey } from '../server/src/log/partitioner.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { logContract, record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor } from './support/test-server.js';

describe('partitioner', () => {
  it('matches Kafka\'s murmur2 (values from the Java client\'s tests)', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const cases: [string, number][] = [
      ['21', -973932308], ['foobar', -790332482], ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829], ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [key, expected] of cases) expect(murmur2(Buffer.from(key))).toBe(expected);
  });

  it('keeps one key on one partition', () => {
    const p = partitionForKey('device-42', 8);
    for (let i = 0; i < 10; i++) expect(partitionForKey('device-42', 8)).toBe(p);
    expect(p).toBeGreaterThanOrEqual(0);
    expect(p).toBeLessThan(8);
  });
});

for (const fsync of [{ mode: 'interval', intervalMs: 50 }, { mode: 'always' }, { mode: 'never' }] as FsyncPolicy[]) {
  logContract(`FileLog, fsync ${fsync.mode}`, (dir) => new FileLog(dir, fsync, silentLogger, { retentionCheckMs: 0 }), () => tempDir(), (log) => (log as FileLog).enforceRetention());
}

class ManualClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now() { return this.t; }
}

describe('FileLog on disk', () => {
  const opened: FileLog[] = [];
  const open = (dir: string, options: FileLogOptions = {}, logger = silentLogger) => {
    const log = new FileLog(dir, { mode: 'always' }, logger, { retentionCheckMs: 0, ...options });
    opened.push(log);
    return log;
  };
  afterEach(async () => {
    for (const log of opened.splice(0)) await log.close();
  });
  const partitionDir = (dir: string) => path.join(dir, 'log', 't', '0');
  const files = (dir: string) => fs.readdirSync(partitionDir(dir)).sort();
  const readAll = async (log: FileLog) => {
    const out: StoredRecord[] = [];
    let offset = (await log.offsets('t', 0)).start;
    for (;;) {
      const batch = await log.read('t', 0, offset, 4096);
      if (batch.length === 0) return out;
      out.push(...batch);
      offset = batch[batch.length - 1]!.offset + 1;
    }
  };
  /** Appends one at a time: each record is its own batch. */
  const appendEach = async (log: FileLog, n: number, text = (i: number) => `value-${String(i).padStart(4, '0')}`, timestamp = () => 1_700_000_000_000) => {
    for (let i = 0; i < n; i++) await log.append('t', record('k', text(i), timestamp()));
  };

  /** A closed log of one partition holding five records, each its own batch. */
  const fiveRecordsOnDisk = async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.ensureTopic('t', 1);
    await appendEach(first, 5);
    await first.close();
    return { dir, file: path.join(partitionDir(dir), '00000000000000000000.log') };
  };

  it('rolls segments by size, names them by base offset with an index and a time index each, and reads across them', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 1024 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 100);
    const names = files(dir);
    const bases = names.filter((f) => f.endsWith('.log')).map((f) => Number(f.slice(0, 20)));
    expect(bases.length).toBeGreaterThan(5);
    expect(bases[0]).toBe(0);
    for (const b of bases) {
      expect(names).toContain(`${String(b).padStart(20, '0')}.index`);
      expect(names).toContain(`${String(b).padStart(20, '0')}.timeindex`);
    }
    for (const f of names.filter((n) => n.endsWith('.log'))) expect(fs.statSync(path.join(partitionDir(dir), f)).size).toBeLessThanOrEqual(1024);
    const all = await readAll(log);
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // A read that starts in the middle of a later segment.
    const [r] = await log.read('t', 0, bases[3]! + 1, 1);
    expect(r!.offset).toBe(bases[3]! + 1);
    expect(r!.value.toString()).toBe(`value-${String(bases[3]! + 1).padStart(4, '0')}`);
  });

  it('writes many records of one event-loop turn as one batch (group commit)', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.append('t', record('k', `v${i}`))));
    expect(log.stats.recordsAppended).toBe(500);
    expect(log.stats.batchesWritten).toBe(1);
  });

  it('rolls a segment by age', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const log = open(dir, { clock, retention: { segmentMs: 60_000 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 3, undefined, () => clock.t);
    clock.t += 61_000;
    await appendEach(log, 1, undefined, () => clock.t);
    expect(files(dir).filter((f) => f.endsWith('.log'))).toEqual(['00000000000000000000.log', '00000000000000000003.log']);
  });

  it('cuts a torn last batch off on open, says how many bytes, and appends after it', async () => {
    const { dir, file } = await fiveRecordsOnDisk();
    fs.truncateSync(file, fs.statSync(file).size - 3);

    const { logger, lines } = capturingLogger();
    const second = open(dir, {}, logger);
    expect((await readAll(second)).map((r) => r.value.toString())).toEqual(['value-0000', 'value-0001', 'value-0002', 'value-0003']);
    const warning = lines.find((l) => l.msg.includes('damaged bytes'));
    expect(warning).toMatchObject({ level: 40, truncatedBytes: expect.any(Number) });
    expect(warning!.truncatedBytes).toBeGreaterThan(0);
    expect((await second.append('t', record('k', 'again'))).offset).toBe(4);
    expect((await second.read('t', 0, 4, 100))[0]!.value.toString()).toBe('again');
  });

  it('cuts the active segment off at a batch whose bytes were flipped, and never serves it', async () => {
    const { dir, file } = await fiveRecordsOnDisk();
    const bytes = fs.readFileSync(file);
    const batchBytes = bytes.length / 5; // five batches of the same size
    const inThird = 3 * batchBytes - 2; // a byte of the third record's value
    bytes[inThird] = bytes[inThird]! ^ 0xff;
    fs.writeFileSync(file, bytes);

    const { logger, lines } = capturingLogger();
    const second = open(dir, {}, logger);
    expect((await readAll(second)).map((r) => r.value.toString())).toEqual(['value-0000', 'value-0001']);
    expect(lines.find((l) => l.msg.includes('damaged bytes'))).toMatchObject({ truncatedBytes: 3 * batchBytes, reason: 'batch crc' });
    expect(fs.statSync(file).size).toBe(2 * batchBytes);
  });

  it('skips a damaged batch in a sealed segment when reading: the readable records are served, the damaged ones never', async () => {
    const dir = tempDir();
    const first = open(dir, { retention: { segmentBytes: 100_000, indexIntervalBytes: 1 } });
    await first.ensureTopic('t', 1);
    await appendEach(first, 10);
    await first.close();
    // Seal the first segment by starting a second one with a tiny segment size.
    const sealer = open(dir, { retention: { segmentBytes: 1024, indexIntervalBytes: 1 } });
    await appendEach(sealer, 1, () => 'x'.repeat(1000));
    await sealer.close();
    const file = path.join(partitionDir(dir), '00000000000000000000.log');
    const bytes = fs.readFileSync(file);
    const batchBytes = bytes.length / 10;
    bytes[4 * batchBytes + 50] = bytes[4 * batchBytes + 50]! ^ 0x01; // inside the fifth batch
    fs.writeFileSync(file, bytes);

    const { logger, lines } = capturingLogger();
    const log = open(dir, { retention: { indexIntervalBytes: 1 } }, logger);
    const values = (await readAll(log)).map((r) => r.value.toString());
    expect(values.slice(0, 9)).toEqual(['value-0000', 'value-0001', 'value-0002', 'value-0003', 'value-0005', 'value-0006', 'value-0007', 'value-0008', 'value-0009']);
    expect(values).toHaveLength(10);
    expect(log.stats.corruptRecordsSkipped).toBe(1);
    expect(lines.find((l) => l.msg.includes('skipped 1 records of a damaged batch'))).toBeDefined();
    // Reading exactly at the damaged offset also goes on after it.
    expect((await log.read('t', 0, 4, 1))[0]!.offset).toBe(5);
  });

  it('rebuilds a missing or damaged index of a sealed segment, and finds records through it', async () => {
    const dir = tempDir();
    const settings = { retention: { segmentBytes: 2048, indexIntervalBytes: 64 } };
    const first = open(dir, settings);
    await first.ensureTopic('t', 1);
    await appendEach(first, 100);
    await first.close();
    const index = path.join(partitionDir(dir), '00000000000000000000.index');
    const timeIndex = path.join(partitionDir(dir), '00000000000000000000.timeindex');
    const original = fs.readFileSync(index);
    expect(original.length).toBeGreaterThan(8);

    fs.rmSync(index);
    const { logger, lines } = capturingLogger();
    const second = open(dir, settings, logger);
    expect(lines.some((l) => l.msg.includes('index is missing or damaged'))).toBe(true);
    expect(fs.readFileSync(index)).toEqual(original);
    expect((await second.read('t', 0, 17, 1))[0]!.value.toString()).toBe('value-0017');
    await second.close();

    fs.writeFileSync(index, Buffer.from('not an index at all!!!!'));
    fs.writeFileSync(timeIndex, Buffer.alloc(0));
    const third = open(dir, settings);
    expect(fs.readFileSync(index)).toEqual(original);
    expect((await readAll(third)).map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('deletes whole old segments past the size limit; reading before the start is out of range', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 1024, retentionBytes: 3000 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 100);
    const before = files(dir).filter((f) => f.endsWith('.log')).length;
    const deleted = await log.enforceRetention();
    expect(deleted.segments).toBeGreaterThan(0);
    const after = files(dir).filter((f) => f.endsWith('.log'));
    expect(after.length).toBe(before - deleted.segments);
    expect(files(dir).filter((f) => f.endsWith('.index')).length).toBe(after.length);
    const [topic] = await log.describeTopics();
    const { startOffset, endOffset, bytes } = topic!.partitions[0]!;
    expect(startOffset).toBe(Number(after[0]!.slice(0, 20)));
    expect(endOffset).toBe(100);
    expect(bytes).toBeLessThan(3000 + 1024);
    await expect(log.read('t', 0, 0, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
    expect((await readAll(log)).map((r) => r.offset)).toEqual(Array.from({ length: 100 - startOffset }, (_, i) => startOffset + i));
    expect(log.stats.segmentsDeleted).toBe(deleted.segments);
  });

  it('deletes segments whose newest record is older than the retention time, never the active one', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const log = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: 3_600_000 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 30, undefined, () => clock.t);
    clock.t += 1800_000;
    await appendEach(log, 30, undefined, () => clock.t);
    expect((await log.enforceRetention()).segments).toBe(0);
    clock.t += 1801_000; // the first 30 records are now over an hour old, the last 30 are not
    const { records } = await log.enforceRetention();
    expect(records).toBeGreaterThan(0);
    expect(records).toBeLessThanOrEqual(30);
    clock.t += 10 * 3_600_000;
    await log.enforceRetention();
    const { start, end } = await log.offsets('t', 0);
    expect(end).toBe(60);
    expect(files(dir).filter((f) => f.endsWith('.log'))).toEqual([`${String(start).padStart(20, '0')}.log`]);
    // Retention survives a restart: the start offset is the oldest segment's base.
    await log.close();
    const again = open(dir);
    expect((await again.offsets('t', 0)).start).toBe(start);
  });

  it('rebuilds a sealed segment\'s empty time index, so retention by age still deletes it', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const first = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: 3_600_000 } });
    await first.ensureTopic('t', 1);
    await appendEach(first, 40, undefined, () => clock.t);
    await first.close();
    fs.writeFileSync(path.join(partitionDir(dir), '00000000000000000000.timeindex'), Buffer.alloc(0));
    clock.t += 2 * 3_600_000;
    const second = open(dir, { clock, retention: { segmentBytes: 1024, retentionMs: 3_600_000 } });
    expect((await second.enforceRetention()).segments).toBeGreaterThan(0);
    expect((await second.offsets('t', 0)).start).toBeGreaterThan(0);
  });

  it('closes cleanly while fsyncs of `always` are still running: no append fails', async () => {
    const log = new FileLog(tempDir(), { mode: 'always' }, silentLogger, { retentionCheckMs: 0 });
    await log.ensureTopic('t', 4);
    for (let round = 0; round < 5; round++) {
      const appends = Array.from({ length: 300 }, (_, i) => log.append('t', record(`k${i}`, 'v')));
      await new Promise((r) => setImmediate(r)); // the flush has written and started its fdatasyncs
      if (round === 4) await log.close();
      const settled = await Promise.allSettled(appends);
      expect(settled.filter((x) => x.status === 'rejected')).toEqual([]);
    }
  });

  it('keeps retention settings per topic, stored with the topic', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 1024 } });
    await log.ensureTopic('t', 1, { retentionBytes: 2048 });
    await log.ensureTopic('u', 1);
    expect(log.settingsOf('t')).toMatchObject({ retentionBytes: 2048, segmentBytes: 1024 });
    expect(log.settingsOf('u').retentionBytes).toBeNull();
    await log.close();
    expect(open(dir).settingsOf('t').retentionBytes).toBe(2048);
    await expect(open(tempDir()).ensureTopic('v', 1, { retentionBytes: -5 } as never)).rejects.toThrow(/retentionBytes/);
  });

  it('moves a consumer whose offset fell behind retention to the earliest offset, and says so', async () => {
    const dir = tempDir();
    const log = open(dir, { retention: { segmentBytes: 1024, retentionBytes: 2048 } });
    await log.ensureTopic('t', 1);
    await appendEach(log, 60);
    log.commit('slow', 't', 0, 2);
    await log.enforceRetention();
    const { start } = await log.offsets('t', 0);
    expect(start).toBeGreaterThan(2);
    const { logger, lines } = capturingLogger();
    const seen: number[] = [];
    const resets: [number, number, number][] = [];
    const consumer = startConsumer({
      log, group: 'slow', topic: 't', logger, handle: (records) => { seen.push(...records.map((r) => r.offset)); },
      onOffsetReset: (...args) => resets.push(args),
    });
    try {
      await waitFor('the consumer to catch up', () => (seen.length === 60 - start ? true : undefined));
    } finally {
      await consumer.stop();
    }
    expect(seen).toEqual(Array.from({ length: 60 - start }, (_, i) => start + i));
    expect(resets).toEqual([[0, 2, start]]);
    expect(lines.find((l) => l.msg.includes('fell behind retention'))).toMatchObject({ level: 40, from: 2, to: start });
    expect(await log.committed('slow', 't', 0)).toBe(60);
  });

  it('lets an idle consumer skip to the end without reading, and read again once it has work', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await appendEach(log, 5);
    let idle = true;
    const seen: number[] = [];
    const consumer = startConsumer({ log, group: 'g', topic: 't', logger: silentLogger, idle: () => idle, handle: (r) => { seen.push(...r.map((x) => x.offset)); } });
    try {
      await waitFor('the idle group to reach the end', async () => ((await log.committed('g', 't', 0)) === 5 ? true : undefined));
      idle = false;
      await log.append('t', record('k', 'new'));
      await waitFor('the new record', () => (seen.length === 1 ? true : undefined));
    } finally {
      await consumer.stop();
    }
    expect(seen).toEqual([5]);
  });

  it('moves a consumer whose offset is past the end (a cut-off tail) back to the end', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    await appendEach(log, 5);
    log.commit('g', 't', 0, 9);
    const seen: number[] = [];
    const resets: [number, number, number][] = [];
    const consumer = startConsumer({ log, group: 'g', topic: 't', logger: silentLogger, handle: (r) => { seen.push(...r.map((x) => x.offset)); }, onOffsetReset: (...a) => resets.push(a) });
    try {
      await waitFor('the reset', () => (resets.length > 0 ? true : undefined));
      await log.append('t', record('k', 'new'));
      await waitFor('the new record', () => (seen.length === 1 ? true : undefined));
    } finally {
      await consumer.stop();
    }
    expect(resets).toEqual([[0, 9, 5]]);
    expect(seen).toEqual([5]);
  });

  it('encodes headers as they are at append time, caching only frozen header objects', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    const mutable: Record<string, string> = { kind: 'telemetry' };
    const frozen = Object.freeze({ kind: 'attributes' });
    await log.append('t', { key: 'k', value: Buffer.from('1'), timestamp: 1, headers: mutable });
    mutable.kind = 'changed';
    await log.append('t', { key: 'k', value: Buffer.from('2'), timestamp: 1, headers: mutable });
    await log.append('t', { key: 'k', value: Buffer.from('3'), timestamp: 1, headers: frozen });
    await log.append('t', { key: 'k', value: Buffer.from('4'), timestamp: 1, headers: frozen });
    const read = await log.read('t', 0, 0, 1 << 20);
    expect(read.map((r) => r.headers)).toEqual([{ kind: 'telemetry' }, { kind: 'changed' }, { kind: 'attributes' }, { kind: 'attributes' }]);
    expect(Object.isFrozen(read[0]!.headers)).toBe(true);
  });

  it('reads back every key exactly, many similar keys included (decoded keys are cached by hash)', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    const keys = Array.from({ length: 3000 }, (_, i) => `device-${String(i).padStart(8, '0')}-0000-0000-0000-${'x'.repeat(i % 3)}`);
    await Promise.all(keys.map((k) => log.append('t', record(k, k))));
    await Promise.all(keys.map((k) => log.append('t', record(k, k))));
    const read = await readAll(log);
    expect(read).toHaveLength(6000);
    for (const r of read) expect(r.key).toBe(r.value.toString());
  });

  it('refuses a key or header too long for the format without losing other appends', async () => {
    const log = open(tempDir());
    await log.ensureTopic('t', 1);
    const ok = log.append('t', record('k', 'fine'));
    await expect(log.append('t', record('x'.repeat(70_000), 'v'))).rejects.toThrow(/key of 70000 bytes/);
    await expect(log.append('t', { key: 'k', value: Buffer.from('v'), timestamp: 1, headers: { big: 'y'.repeat(70_000) } })).rejects.toThrow(/header "big" is over/);
    await expect(log.append('nope', record('k', 'v'))).rejects.toThrow(/no topic "nope"/);
    expect(await ok).toEqual({ partition: 0, offset: 0 });
  });
});
