import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsumer, type Consumer, type ConsumerOptions } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor, within } from './support/test-server.js';

/** What a consumer reports while it works (consumer.ts): read failures, positions, caughtUp(). */
describe('consumer progress', () => {
  const logs: FileLog[] = [];
  const consumers: Consumer[] = [];
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop();
    for (const log of logs.splice(0)) await log.close();
  });
  const openLog = async (dir = tempDir()) => {
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    logs.push(log);
    await log.ensureTopic('t', 1);
    return log;
  };
  const start = (options: Partial<ConsumerOptions> & Pick<ConsumerOptions, 'log'>) => {
    const consumer = startConsumer({ group: 'g', topic: 't', logger: silentLogger, retryDelayMs: 5, handle: () => {}, ...options });
    consumers.push(consumer);
    return consumer;
  };

  it('retries a read that failed (a batch damaged under the running log), neither stopping nor moving the offset', async () => {
    const dir = tempDir();
    const log = await openLog(dir);
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `v${i}`));
    const file = path.join(dir, 'log', 't', '0', '00000000000000000000.log');
    const original = fs.readFileSync(file);
    const damaged = Buffer.from(original);
    damaged[45] = damaged[45]! ^ 0xff; // inside the first batch: its CRC fails, and nothing readable follows in the index
    fs.writeFileSync(file, damaged);
    const { logger, lines } = capturingLogger();
    const seen: number[] = [];
    const resets: unknown[] = [];
    start({ log, logger, onOffsetReset: (...a) => resets.push(a), handle: (records) => { seen.push(...records.map((r) => r.offset)); } });
    await waitFor('two failed reads', () => (lines.filter((l) => l.msg === 'consumer batch failed; retrying').length >= 2 ? true : undefined));
    expect(lines.find((l) => l.msg === 'consumer batch failed; retrying')).toMatchObject({ level: 50, group: 'g', topic: 't', partition: 0, offset: 0, err: expect.objectContaining({ code: 'LOG_CORRUPT' }) });
    expect(lines.some((l) => l.msg.includes('the log was closed'))).toBe(false);
    expect(seen).toEqual([]);
    fs.writeFileSync(file, original); // repaired
    await waitFor('the records', () => (seen.length === 3 ? true : undefined));
    expect(seen).toEqual([0, 1, 2]);
    expect(resets).toEqual([]);
  });

  it('tells onPosition where it starts, and nothing more while an idle group has nothing to skip; commits nothing then', async () => {
    const log = await openLog();
    const positions: [number, number][] = [];
    const { logger, lines } = capturingLogger();
    const consumer = start({ log, logger, idle: () => true, onPosition: (p, o) => { positions.push([p, o]); } });
    await within(1000, 'the consumer to settle', consumer.caughtUp());
    await new Promise((r) => setTimeout(r, 30));
    expect(positions).toEqual([[0, 0]]);
    expect(await log.committed('g', 't', 0)).toBeUndefined();
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('logs nothing above info for a consumer without onPosition that reads, resets and idles', async () => {
    const log = await openLog();
    for (let i = 0; i < 3; i++) await log.append('t', record('k', `v${i}`));
    const { logger, lines } = capturingLogger();
    let idle = false;
    start({ log, logger, idle: () => idle });
    await waitFor('the records', async () => ((await log.committed('g', 't', 0)) === 3 ? true : undefined));
    idle = true;
    await Promise.all([log.append('t', record('k', 'a')), log.append('t', record('k', 'b'))]);
    await waitFor('the idle skip', async () => ((await log.committed('g', 't', 0)) === 5 ? true : undefined));
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('caughtUp() waits for an idle skip and for an offset reset', async () => {
    const idleLog = await openLog();
    const idleConsumer = start({ log: idleLog, idle: () => true });
    await within(1000, 'the consumer to settle', idleConsumer.caughtUp()); // started, waiting for records
    const appended = Promise.all(Array.from({ length: 5 }, (_, i) => idleLog.append('t', record('k', `v${i}`))));
    await new Promise((r) => setImmediate(r)); // the flush has run: the records are there, the consumer is woken
    await within(1000, 'the consumer to settle', idleConsumer.caughtUp());
    await appended;
    expect(await idleLog.committed('g', 't', 0)).toBe(5);

    const resetLog = await openLog();
    for (let i = 0; i < 5; i++) await resetLog.append('t', record('k', `v${i}`));
    resetLog.commit('g', 't', 0, 9);
    const handled: number[] = [];
    const resetConsumer = start({ log: resetLog, handle: (r) => { handled.push(...r.map((x) => x.offset)); } });
    await within(1000, 'the consumer to settle', resetConsumer.caughtUp());
    expect(await resetLog.committed('g', 't', 0)).toBe(5);
    expect(handled).toEqual([]);
  });

  it('stop() asked for while a handler runs that then fails returns at once, without the retry pause', async () => {
    const log = await openLog();
    await log.append('t', record('k', 'v'));
    let stopping: Promise<void> | undefined;
    const consumer: Consumer = start({
      log, retryDelayMs: 3000, // a failing version costs the afterEach this much, not a hang
      handle: () => {
        stopping = consumer.stop(); // e.g. the server shuts down while this batch fails
        throw new Error('fails during the stop');
      },
    });
    await waitFor('the handler', () => (stopping !== undefined ? true : undefined));
    await within(1000, 'the consumer to settle', stopping!);
  });

  it('a caughtUp() already waiting when the log closes rejects', async () => {
    const log = await openLog();
    for (let i = 0; i < 2; i++) await log.append('t', record('k', `v${i}`));
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    const { logger } = capturingLogger();
    let calls = 0;
    const consumer = start({ log, logger, maxBatchBytes: 1, handle: async () => { calls++; await held; } });
    await waitFor('the first batch in hand', () => (calls === 1 ? true : undefined));
    const caught = consumer.caughtUp().then(() => 'resolved', (err: Error) => err.message);
    await new Promise((r) => setTimeout(r, 10));
    await log.close();
    release();
    expect(await within(1000, 'the consumer to settle', caught)).toBe('consumer group "g" stopped before it caught up on t: the log was closed');
  });
});
