import { afterEach, describe, expect, it } from 'vitest';
import { startConsumer, type Consumer, type ConsumerOptions } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor } from './support/test-server.js';

/** Where a consumer starts, what it tells its caller, and how it commits (consumer.ts), on a real FileLog. */
describe('consumer options', () => {
  const logs: FileLog[] = [];
  const consumers: Consumer[] = [];
  afterEach(async () => {
    // Stopped even when a test failed half-way: nothing keeps running into the next test.
    for (const c of consumers.splice(0)) await c.stop();
    for (const log of logs.splice(0)) await log.close();
  });
  const openLog = async (partitions = 1, options = {}) => {
    const log = new FileLog(tempDir(), { mode: 'never' }, silentLogger, { retentionCheckMs: 0, ...options });
    logs.push(log);
    await log.ensureTopic('t', partitions);
    return log;
  };
  const start = (options: Partial<ConsumerOptions> & Pick<ConsumerOptions, 'log'>) => {
    const consumer = startConsumer({ group: 'g', topic: 't', logger: silentLogger, retryDelayMs: 5, handle: () => {}, ...options });
    consumers.push(consumer);
    return consumer;
  };
  const appendN = async (log: FileLog, n: number, key = 'k') => {
    for (let i = 0; i < n; i++) await log.append('t', record(key, `v${i}`));
  };

  it('starts at the committed offset, or at the earliest one when the group has none', async () => {
    const log = await openLog(1, { retention: { segmentBytes: 1024, retentionBytes: 1024, retentionMs: null } });
    await appendN(log, 60);
    await log.enforceRetention();
    const { start: earliest } = await log.offsets('t', 0);
    expect(earliest).toBeGreaterThan(0);
    log.commit('committed', 't', 0, 55);
    const seen: Record<string, number[]> = { committed: [], fresh: [] };
    for (const group of ['committed', 'fresh']) {
      start({ log, group, handle: (records) => { seen[group]!.push(...records.map((r) => r.offset)); } });
    }
    await waitFor('both groups at the end', async () => ((await log.committed('committed', 't', 0)) === 60 && (await log.committed('fresh', 't', 0)) === 60 ? true : undefined));
    expect(seen.committed).toEqual([55, 56, 57, 58, 59]);
    expect(seen.fresh).toEqual(Array.from({ length: 60 - earliest }, (_, i) => earliest + i));
  });

  it('starts where startAt says: an offset, the earliest, the committed one; anything else counts as the earliest, with a warning', async () => {
    const log = await openLog(6);
    // One key per partition, five records each.
    const keys: string[] = [];
    for (let i = 0; keys.filter((k) => k !== undefined).length < 6; i++) {
      const k = `key-${i}`;
      const { partition } = await log.append('t', record(k, 'probe'));
      if (keys[partition] === undefined) keys[partition] = k;
    }
    for (const k of keys) await appendN(log, 4, k);
    const ends = await Promise.all(keys.map((_, p) => log.offsets('t', p).then((o) => o.end)));
    for (let p = 0; p < 6; p++) log.commit('g', 't', p, ends[p]! - 1);
    const starts: Record<number, number | 'earliest' | undefined> = { 0: 2, 1: 'earliest', 2: undefined, 3: -3, 4: 1.5, 5: 0 };
    const first: Record<number, number> = {};
    const positions: [number, number][] = [];
    const { logger, lines } = capturingLogger();
    start({
      log, logger,
      startAt: (p) => starts[p] as number | 'earliest' | undefined,
      onPosition: (p, o) => { positions.push([p, o]); },
      handle: (records) => { first[records[0]!.partition] ??= records[0]!.offset; },
    });
    await waitFor('every partition', () => (Object.keys(first).length === 6 ? true : undefined));
    expect(first).toEqual({ 0: 2, 1: 0, 2: ends[2]! - 1, 3: 0, 4: 0, 5: 0 });
    // Where each partition starts is told before anything is handed over.
    expect(positions.slice(0, 6).sort((a, b) => a[0] - b[0])).toEqual([[0, 2], [1, 0], [2, ends[2]! - 1], [3, 0], [4, 0], [5, 0]]);
    const warnings = lines.filter((l) => l.msg.includes('is not an offset'));
    expect(warnings.map((w) => w.partition).sort()).toEqual([3, 4]);
    expect(warnings.find((w) => w.partition === 3)).toMatchObject({
      level: 40, group: 'g', topic: 't', offset: -3,
      msg: 'consumer start offset -3 of t/3 is not an offset; reading the partition from the earliest offset',
    });
  });

  it('tells onPosition of an idle skip and of an offset reset, and goes on when onPosition throws', async () => {
    const log = await openLog();
    await appendN(log, 5);
    log.commit('g', 't', 0, 9); // past the end
    const positions: [number, number][] = [];
    const { logger, lines } = capturingLogger();
    let idle = false;
    start({
      log, logger,
      idle: () => idle,
      onPosition: (p, o) => {
        positions.push([p, o]);
        if (positions.length === 1) throw new Error('the checkpoint store failed');
      },
    });
    await waitFor('the reset and the batch', async () => ((await log.committed('g', 't', 0)) === 5 && positions.length >= 2 ? true : undefined));
    idle = true;
    await Promise.all([1, 2, 3].map((i) => log.append('t', record('k', `idle-${i}`)))); // one write, one wake
    await waitFor('the idle skip', () => (positions.some(([, o]) => o === 8) ? true : undefined));
    expect(positions, JSON.stringify(positions)).toEqual([[0, 9], [0, 5], [0, 8]]);
    expect(await log.committed('g', 't', 0)).toBe(8);
    expect(lines.find((l) => l.msg === 'consumer: recording the position failed')).toMatchObject({ level: 50, group: 'g', topic: 't', partition: 0, offset: 9 });
    expect(lines.find((l) => l.msg.includes('past the end'))).toMatchObject({
      level: 40, from: 9, to: 5, start: 0, end: 5, msg: 'consumer offset 9 is past the end of the log; resuming at 5',
    });
  });

  it('says how many records a group behind retention lost', async () => {
    const log = await openLog(1, { retention: { segmentBytes: 1024, retentionBytes: 1024, retentionMs: null } });
    await appendN(log, 60);
    log.commit('g', 't', 0, 3);
    await log.enforceRetention();
    const { start: earliest } = await log.offsets('t', 0);
    const { logger, lines } = capturingLogger();
    const resets: number[][] = [];
    start({ log, logger, onOffsetReset: (...a) => resets.push(a) });
    await waitFor('the end', async () => ((await log.committed('g', 't', 0)) === 60 ? true : undefined));
    expect(resets).toEqual([[0, 3, earliest]]);
    expect(lines.find((l) => l.msg.includes('fell behind retention'))!.msg)
      .toBe(`consumer offset 3 fell behind retention; resuming at the earliest offset ${earliest} (${earliest - 3} records were deleted unread)`);
  });

  it('commits through the commit option instead of the log, in order, once per handled batch', async () => {
    const log = await openLog();
    await appendN(log, 4);
    const commits: [number, number][] = [];
    start({ log, maxBatchBytes: 1, commit: (p, o) => { commits.push([p, o]); } });
    await waitFor('four commits', () => (commits.length === 4 ? true : undefined));
    expect(commits).toEqual([[0, 1], [0, 2], [0, 3], [0, 4]]);
    expect(await log.committed('g', 't', 0)).toBeUndefined();
  });

  it('hands over batches of about maxBatchBytes, and of up to 1 MiB by default', async () => {
    const log = await openLog();
    for (let i = 0; i < 40; i++) await log.append('t', record('k', 'x'.repeat(100 * 1024)));
    const small: number[] = [];
    const big: number[] = [];
    start({ log, group: 'small', maxBatchBytes: 250 * 1024, handle: (r) => { small.push(r.length); } });
    start({ log, group: 'big', handle: (r) => { big.push(r.length); } });
    await waitFor('both groups', async () => ((await log.committed('small', 't', 0)) === 40 && (await log.committed('big', 't', 0)) === 40 ? true : undefined));
    expect(small.every((n) => n === 3 || n === 1)).toBe(true);
    expect(small.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.max(...big)).toBe(11); // the 11th record of 100 KiB reaches 1 MiB
    expect(big.reduce((a, b) => a + b, 0)).toBe(40);
  });

  it('waits retryDelayMs between tries of a failing batch, 500 ms unless told', async () => {
    const log = await openLog();
    await appendN(log, 1);
    const times: number[] = [];
    start({ log, retryDelayMs: 60, handle: () => { times.push(Date.now()); if (times.length < 3) throw new Error('fails'); } });
    await waitFor('three tries', () => (times.length === 3 ? true : undefined));
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(55);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(55);
    const defaultTimes: number[] = [];
    const consumer = startConsumer({ log, group: 'default', topic: 't', logger: silentLogger, handle: () => { defaultTimes.push(Date.now()); if (defaultTimes.length < 2) throw new Error('fails'); } });
    consumers.push(consumer);
    await waitFor('two tries', () => (defaultTimes.length === 2 ? true : undefined));
    expect(defaultTimes[1]! - defaultTimes[0]!).toBeGreaterThanOrEqual(490);
  });

  it('stop() ends a retry pause at once, and commits a batch whose handler was running', async () => {
    const log = await openLog();
    await appendN(log, 2);
    let release!: () => void;
    const handled = new Promise<void>((r) => { release = r; });
    let calls = 0;
    const consumer = start({ log, maxBatchBytes: 1, handle: async () => { if (++calls === 1) await handled; } });
    await waitFor('the first batch in hand', () => (calls === 1 ? true : undefined));
    const stopping = consumer.stop();
    release();
    await stopping;
    expect(await log.committed('g', 't', 0)).toBe(1);
    expect(calls).toBe(1);

    const failing = start({ log, group: 'failing', retryDelayMs: 60_000, handle: () => { throw new Error('fails'); } });
    await new Promise((r) => setTimeout(r, 20));
    const before = Date.now();
    await failing.stop();
    expect(Date.now() - before).toBeLessThan(1000);
  });

  it('caughtUp() waits for every partition to reach the end present when it was called', async () => {
    const log = await openLog(3);
    for (let i = 0; i < 30; i++) await log.append('t', record(`k${i}`, 'v'));
    let gate!: () => void;
    let open = new Promise<void>((r) => { gate = r; });
    const handled: number[] = [];
    const consumer = start({ log, maxBatchBytes: 1, handle: async (records) => { await open; handled.push(...records.map((r) => r.offset)); } });
    let caughtUp = false;
    const waiting = consumer.caughtUp().then(() => { caughtUp = true; });
    await new Promise((r) => setTimeout(r, 30));
    expect(caughtUp).toBe(false);
    gate();
    open = Promise.resolve();
    await waiting;
    expect(handled).toHaveLength(30);
    for (let p = 0; p < 3; p++) expect(await log.committed('g', 't', p)).toBe((await log.offsets('t', p)).end);
    // Nothing new: at once.
    await consumer.caughtUp();
    await consumer.stop();
    // After stop(): it does not wait for what will never come.
    await log.append('t', record('k1', 'late'));
    await consumer.caughtUp();
  });
});
