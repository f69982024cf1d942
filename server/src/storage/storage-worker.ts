import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './database.js';
import type { PackedRecords } from './packed-records.js';
import { createStorageWriter, type WriteOutcome } from './storage-writer.js';
import { TimeSeriesStore, type StoredBatch } from './timeseries.js';
import { WindowCheckpoint, type Checkpoint } from '../windows/window-checkpoint.js';
import type { WindowResult } from '../windows/window-operator.js';
import { WindowStore } from '../windows/window-store.js';

/**
 * The storage worker thread: the one SQLite connection that writes what flows with the data
 * (time series, rules' saved values, window results and checkpoints), so that SQLite's work runs
 * on the second core, beside the broker, and the broker's thread never queues for SQLite's write
 * lock. Requests are done one at a time, in the order they came, each in one transaction.
 */
export type WriteRequestBody =
  | { kind: 'records'; packed: PackedRecords; live: boolean }
  | { kind: 'saved'; batch: StoredBatch }
  | { kind: 'window'; result: WindowResult; now: number }
  | { kind: 'checkpoint'; checkpoint: Checkpoint; now: number };
export type WriteRequest = WriteRequestBody & { id: number };
export type WriteReply = { id: number; outcome?: WriteOutcome } | { id: number; error: string };

const { dataDir } = workerData as { dataDir: string };
const db = openDatabase(dataDir);
// The writer's connection: a larger page cache, and checkpoints in bigger, rarer steps.
db.pragma('cache_size = -65536');
db.pragma('wal_autocheckpoint = 10000');
const store = new TimeSeriesStore(db);
const writeRecords = createStorageWriter(db, store);
const writeSaved = db.transaction((batch: StoredBatch) => store.write(batch));
const windowResults = new WindowStore(db);
const windowCheckpoint = new WindowCheckpoint(db);

parentPort!.on('message', (message: WriteRequest | 'close') => {
  if (message === 'close') {
    db.close();
    parentPort!.postMessage('closed');
    return;
  }
  let reply: WriteReply;
  try {
    switch (message.kind) {
      case 'records':
        reply = { id: message.id, outcome: writeRecords(message.packed, message.live) };
        break;
      case 'saved':
        writeSaved(message.batch);
        reply = { id: message.id };
        break;
      case 'window':
        windowResults.save(message.result, message.now);
        reply = { id: message.id };
        break;
      case 'checkpoint':
        windowCheckpoint.save(message.checkpoint, message.now);
        reply = { id: message.id };
        break;
    }
  } catch (err) {
    reply = { id: message.id, error: (err as Error).stack ?? String(err) };
  }
  parentPort!.postMessage(reply);
});
