import { afterEach, describe, expect, it } from 'vitest';
import { startConsumer, type Consumer, type ConsumerOptions } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import type { StoredRecord } from '../server/src/log/types.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor, within } from './support/test-server.js';

/**
 * What the consumer promises its handler (consumer.ts): at-least-once — a batch is committed only
 * after its handler succeeded, a failing batch comes again, never skipped — and that it stops
 * rather than spins when the log is closed under it. The kill -9 case is consumer-crash.test.ts.
 */
describe('consumer delivery', () => {
  const logs: FileLog[] = [];
  afterEach(async () => {
    for (const log of logs.splice(0)) await log.close();
  });
  const openLog = async (dir = tempDir(), partitions = 1) => {
    const log = new FileLog(dir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    logs.push(log);
    await log.ensureTopic('t', partitions);
    return log;
  };
  const appendValues = async (log: FileLog, values: string[]) => {
    for (const v of values) await log.append('t', record('k', v));
  };
  /** Runs `body` with a consumer that is stopped afterwards whatever happens: a failing test fails, it never hangs. */
  const withConsumer = async (options: Omit<ConsumerOptions, 'group' | 'topic' | 'logger'> & Partial<ConsumerOptions>, body: (consumer: Consumer) => Promise<void>) => {
    const consumer = startConsumer({ group: 'g', topic: 't', logger: silentLogger, retryDelayMs: 5, ...options });
    try {
      await body(consumer);
    } finally {
      await consumer.stop();
    }
  };

  it('hands a batch whose handler threw once over again, the same offsets, and commits only after it succeeded', async () => {
    const log = await openLog();
    await appendValues(log, ['a', 'b', 'c']);
    const calls: number[][] = [];
    const committedDuringFailure: (number | undefined)[] = [];
    await withConsumer({
      log,
      handle: async (records) => {
        calls.push(records.map((r) => r.offset));
        if (calls.length === 1) {
          committedDuringFailure.push(await log.committed('g', 't', 0));
          throw new Error('the handler failed once');
        }
      },
    }, async () => {
      await waitFor('the batch to be committed', async () => ((await log.committed('g', 't', 0)) === 3 ? true : undefined));
    });
    expect(calls).toEqual([[0, 1, 2], [0, 1, 2]]);
    expect(committedDuringFailure).toEqual([undefined]);
  });

  it('hands a batch over again when its handler threw OFFSET_OUT_OF_RANGE (a handler\'s error, not the group\'s offset)', async () => {
    const log = await openLog();
    await appendValues(log, ['a', 'b', 'c']);
    const calls: number[][] = [];
    const resets: unknown[] = [];
    await withConsumer({
      log,
      onOffsetReset: (...args) => resets.push(args),
      handle: async (records) => {
        calls.push(records.map((r) => r.offset));
        // e.g. a handler that reads another partition itself, at an offset retention deleted
        if (calls.length === 1) await log.read('t', 0, 99, 100);
      },
    }, async () => {
      await waitFor('the batch to be committed', async () => ((await log.committed('g', 't', 0)) === 3 ? true : undefined));
    });
    expect(calls).toEqual([[0, 1, 2], [0, 1, 2]]);
    expect(resets).toEqual([]);
  });

  it('retries a failing batch, after a pause each time, until it succeeds; then goes on with the next records', async () => {
    const log = await openLog();
    await appendValues(log, ['a', 'b']);
    const { logger, lines } = capturingLogger();
    const calls: number[][] = [];
    let failuresLeft = 3;
    await withConsumer({
      log,
      logger,
      handle: (records) => {
        calls.push(records.map((r) => r.offset));
        if (failuresLeft-- > 0) throw new Error('still failing');
      },
    }, async () => {
      await waitFor('the batch to be committed', async () => ((await log.committed('g', 't', 0)) === 2 ? true : undefined));
      await appendValues(log, ['c']);
      await waitFor('the next record', async () => ((await log.committed('g', 't', 0)) === 3 ? true : undefined));
    });
    expect(calls).toEqual([[0, 1], [0, 1], [0, 1], [0, 1], [2]]);
    const failures = lines.filter((l) => l.msg === 'consumer batch failed; retrying');
    expect(failures).toHaveLength(3);
    expect(failures[0]).toMatchObject({ level: 50, group: 'g', topic: 't', partition: 0, offset: 0 });
  });

  it('stops, without spinning, when the log is closed under it; stop() and caughtUp() then return', async () => {
    const log = await openLog(tempDir(), 2);
    await appendValues(log, ['a']);
    const { logger, lines } = capturingLogger();
    const seen: StoredRecord[] = [];
    let loops = 0;
    let spinning = false;
    const consumer = startConsumer({
      log, group: 'g', topic: 't', logger, retryDelayMs: 5,
      // Called once per turn of each partition's loop: counts the turns, and breaks a spin that
      // would otherwise hold the event loop (no timer, so no test timeout, would ever fire).
      idle: () => {
        if (++loops > 10_000) {
          spinning = true;
          throw new Error('the consumer spins on the closed log');
        }
        return false;
      },
      handle: (records) => { seen.push(...records); },
    });
    try {
      await waitFor('the record', () => (seen.length === 1 ? true : undefined));
      await consumer.caughtUp();
      const loopsBefore = loops;
      await log.close();
      await waitFor('the consumer to say it stopped', () => (lines.some((l) => l.msg.includes('the log was closed')) ? true : undefined), 2000);
      expect(lines.filter((l) => l.msg.includes('the log was closed'))).toHaveLength(2); // one per partition
      expect(lines.find((l) => l.msg.includes('the log was closed'))).toMatchObject({ level: 40, group: 'g', topic: 't' });
      // A few turns at most, not thousands; none later either.
      await new Promise((r) => setTimeout(r, 50));
      expect(spinning).toBe(false);
      expect(loops - loopsBefore).toBeLessThan(10);
      expect(lines.filter((l) => l.msg === 'consumer batch failed; retrying')).toEqual([]);
      // It had got to the end before the log closed.
      await within(1000, 'the consumer to settle', consumer.caughtUp());
    } finally {
      await consumer.stop();
    }
  });

  it('stops, without spinning, when the log is closed under an idle group', async () => {
    const log = await openLog();
    await appendValues(log, ['a', 'b']);
    const { logger, lines } = capturingLogger();
    let turns = 0;
    await withConsumer({
      log,
      logger,
      idle: () => {
        // See above: a spin on the closed log is broken here, and then fails the test.
        if (++turns > 10_000) throw new Error('the idle consumer spins on the closed log');
        return true;
      },
      handle: () => { throw new Error('an idle group reads nothing'); },
    }, async () => {
      await waitFor('the idle group at the end', async () => ((await log.committed('g', 't', 0)) === 2 ? true : undefined));
      const before = turns;
      await log.close();
      await waitFor('the consumer to say it stopped', () => (lines.some((l) => l.msg.includes('the log was closed')) ? true : undefined), 2000);
      expect(lines.find((l) => l.msg.includes('the log was closed'))).toMatchObject({ partition: 0, offset: 2, msg: 'consumer group "g" stops reading t/0 at offset 2: the log was closed' });
      await new Promise((r) => setTimeout(r, 50));
      expect(turns - before).toBeLessThan(10);
    });
  });

  it('stops when the log is closed while records are waiting to be read', async () => {
    const log = await openLog();
    await appendValues(log, ['a', 'b']);
    const { logger, lines } = capturingLogger();
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    const calls: number[][] = [];
    await withConsumer({
      log,
      logger,
      maxBatchBytes: 1,
      handle: async (records) => {
        calls.push(records.map((r) => r.offset));
        await released; // the log closes while this first batch is in hand
      },
    }, async (consumer) => {
      await waitFor('the first batch', () => (calls.length === 1 ? true : undefined));
      await log.close();
      release();
      await waitFor('the consumer to say it stopped', () => (lines.some((l) => l.msg.includes('the log was closed')) ? true : undefined), 2000);
      // Record 1 was never handed over: waiting for the group to catch up must not wait forever.
      await expect(within(1000, 'the consumer to settle', consumer.caughtUp())).rejects.toMatchObject({ code: 'NOT_READY', message: expect.stringMatching(/stopped before it caught up on t: the log was closed/) });
    });
    expect(calls).toEqual([[0]]);
    expect(lines.filter((l) => l.msg === 'consumer batch failed; retrying')).toEqual([]);
  });
});
