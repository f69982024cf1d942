/**
 * A consumer that is killed between handling a batch and committing it (consumer-crash.test.ts).
 * Usage: node --import tsx test/support/log-consumer-child.ts <data-dir>
 *
 * It appends records 0-4 and consumes them as group "g" (that batch is committed, and the child
 * waits until the commit is on disk), then appends 5-9. Its handler takes 5-9, makes sure a
 * commit made before the handler ran would be on disk by now, prints {"event":"holding",...} and
 * waits there, forever: the parent kills it with SIGKILL.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { startConsumer } from '../../server/src/log/consumer.js';
import { FileLog } from '../../server/src/log/file-log.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: log-consumer-child.ts <data-dir>');
const logger = pino({ level: 'silent' });
const log = new FileLog(dataDir, { mode: 'always' }, logger, { retentionCheckMs: 0 });
await log.ensureTopic('t', 1);

const say = (event: string, offsets: number[]) => process.stdout.write(`${JSON.stringify({ event, offsets })}\n`);
/** What a group's offsets file holds for t/0, if it is there. */
const onDisk = (group: string): unknown => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dataDir, 'log', '__consumer_offsets', `${group}.json`), 'utf8')) as { t?: unknown[] }).t?.[0];
  } catch {
    return undefined;
  }
};
/** No deadline here: the parent has it, and kills this process when it passes. */
const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
};
const append = (from: number, to: number) => Promise.all(
  Array.from({ length: to - from }, (_, i) => log.append('t', { key: 'k', value: Buffer.from(`v${from + i}`), timestamp: 1_700_000_000_000 })),
);

await append(0, 5);
let batches = 0;
startConsumer({
  log, group: 'g', topic: 't', logger, retryDelayMs: 5,
  handle: async (records) => {
    const offsets = records.map((r) => r.offset);
    if (++batches === 1) {
      say('handled', offsets);
      return;
    }
    // Group offsets are written for every changed group in one pass (group-offsets.ts): once a
    // commit of another group made now is on disk, so is any commit of "g" made before this
    // handler ran (what an at-most-once consumer would have done).
    log.commit('marker', 't', 0, 1);
    await until(() => onDisk('marker') === 1);
    say('holding', offsets);
    // Hold here until the parent's SIGKILL; a pending promise alone keeps no process alive (it
    // would exit 0 once nothing else is left to do), so a timer does.
    setInterval(() => {}, 60_000);
    await new Promise(() => {});
  },
});
await until(() => onDisk('g') === 5);
await append(5, 10);
