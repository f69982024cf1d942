import { afterEach, describe, expect, it } from 'vitest';
import { startConsumer, type Consumer } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import { record } from './contracts/log-contract.js';
import { capturingLogger, silentLogger, tempDir, waitFor } from './support/test-server.js';

/** A consumer partition that ends on an unexpected error (consumer.ts): said loudly, and caughtUp() does not wait for it forever. */
describe('consumer on an unexpected error', () => {
  const logs: FileLog[] = [];
  const consumers: Consumer[] = [];
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop();
    for (const log of logs.splice(0)) await log.close();
  });

  it('stops the partition whose commit threw, logs it as fatal, and caughtUp() rejects instead of hanging', async () => {
    const log = new FileLog(tempDir(), { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    logs.push(log);
    await log.ensureTopic('t', 2);
    const keys = { 0: '', 1: '' } as Record<number, string>;
    for (let i = 0; !keys[0] || !keys[1]; i++) keys[(await log.append('t', record(`k${i}`, 'probe'))).partition] ||= `k${i}`;
    const { logger, lines } = capturingLogger();
    const committed: [number, number][] = [];
    const consumer = startConsumer({
      log, group: 'g', topic: 't', logger, retryDelayMs: 5,
      handle: () => {},
      commit: (p, o) => {
        if (p === 1) throw new Error('the commit store is gone');
        committed.push([p, o]);
      },
    });
    consumers.push(consumer);
    await waitFor('the fatal error', () => lines.find((l) => l.msg === 'consumer stopped on an unexpected error'));
    expect(lines.find((l) => l.msg === 'consumer stopped on an unexpected error')).toMatchObject({ level: 60, group: 'g', topic: 't', partition: 1 });
    const { end: end0 } = await log.offsets('t', 0);
    await waitFor('partition 0 committed', () => (committed.some(([p, o]) => p === 0 && o === end0) ? true : undefined));
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      consumer.caughtUp().then(() => 'resolved', (err: Error) => err.message),
      new Promise<string>((r) => { timer = setTimeout(() => r('still waiting'), 1000); }),
    ]).finally(() => clearTimeout(timer));
    expect(settled).toBe('consumer group "g" stopped before it caught up on t: see the error logged before');
    // Partition 0 goes on.
    await log.append('t', record(keys[0]!, 'more'));
    await waitFor('partition 0 goes on', () => (committed.some(([p, o]) => p === 0 && o === end0 + 1) ? true : undefined));
  });
});
