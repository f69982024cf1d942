import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startConsumer } from '../server/src/log/consumer.js';
import { FileLog } from '../server/src/log/file-log.js';
import { repoRoot } from './support/child-server.js';
import { silentLogger, tempDir, waitFor } from './support/test-server.js';

/**
 * At-least-once across a crash: a consumer killed (SIGKILL) after its handler took a batch but
 * before that batch was committed gets the batch again after the restart — and not the batch
 * before it, which was committed. A consumer that committed before handling would lose it.
 */
describe('consumer killed between handling and committing', () => {
  it('hands the uncommitted batch over again after the restart, and only that one', async () => {
    const dataDir = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('test', 'support', 'log-consumer-child.ts'), dataDir], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    let exitCode: number | null | undefined;
    const exited = new Promise<void>((resolve) => child.once('close', (code) => { exitCode = code; resolve(); }));
    const events = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; offsets: number[] });
    try {
      const holding = await waitFor('the child to hold the second batch, handled and not committed', () => {
        if (exitCode !== undefined) throw new Error(`the child exited (${exitCode}): ${out}`);
        return events().find((e) => e.event === 'holding');
      }, 20_000);
      expect(events()).toEqual([{ event: 'handled', offsets: [0, 1, 2, 3, 4] }, { event: 'holding', offsets: [5, 6, 7, 8, 9] }]);
      expect(holding.offsets).toEqual([5, 6, 7, 8, 9]);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }

    const log = new FileLog(dataDir, { mode: 'never' }, silentLogger, { retentionCheckMs: 0 });
    const batches: number[][] = [];
    const consumer = startConsumer({ log, group: 'g', topic: 't', logger: silentLogger, handle: (records) => { batches.push(records.map((r) => r.offset)); } });
    try {
      expect(await log.committed('g', 't', 0)).toBe(5);
      await waitFor('the batch again', () => (batches.length > 0 ? true : undefined));
      await consumer.caughtUp();
      expect(batches).toEqual([[5, 6, 7, 8, 9]]);
      expect(await log.committed('g', 't', 0)).toBe(10);
    } finally {
      await consumer.stop();
      await log.close();
    }
  });
});
