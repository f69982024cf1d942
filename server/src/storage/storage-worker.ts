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
 * lock. Requests are done in the order they came, those that queued up together in one transaction.
 */
export type WriteRequestBody =
  | { kind: 'records'; packed: PackedRecords }
  | { kind: 'saved'; batch: StoredBatch }
  | { kind: 'window'; result: WindowResult; now: number }
  | { kind: 'checkpoint'; checkpoint: Checkpoint; now: number };
export type WriteRequest = WriteRequestBody & { id: number };
export type WriteReply = { id: number; outcome?: WriteOutcome } | { id: number; error: string };

const { dataDir } = workerData as { dataDir: string };
const db = openDatabase(dataDir);
// The writer's connection: a larger page cache. It checkpoints the WAL after a commit once the
// WAL holds 1,000 pages (SQLite's default): short steps, so that no request waits long behind
// one (10,000 pages gave a 30–50 ms stall about once a second at 10,000 msg/s).
db.pragma('cache_size = -65536');
db.pragma('wal_autocheckpoint = 1000');
const store = new TimeSeriesStore(db);
const writeRecords = createStorageWriter(db, store);
const windowResults = new WindowStore(db);
const windowCheckpoint = new WindowCheckpoint(db);

/** One request, inside the open transaction: a failing one rolls back its own savepoint only. */
function run(message: WriteRequest): WriteReply {
  try {
    switch (message.kind) {
      case 'records':
        return { id: message.id, outcome: writeRecords(message.packed) };
      case 'saved':
        store.write(message.batch); // a transaction of its own: a savepoint here
        return { id: message.id };
      case 'window':
        windowResults.save(message.result, message.now);
        return { id: message.id };
      case 'checkpoint':
        windowCheckpoint.save(message.checkpoint, message.now);
        return { id: message.id };
    }
  } catch (err) {
    return { id: message.id, error: (err as Error).stack ?? String(err) };
  }
}

/**
 * Every request that arrived while the last transaction ran is written in the next one. SQLite's
 * cost is mostly per transaction (each commit appends every page it touched to the WAL), so under
 * load the transactions grow instead of multiplying, and an idle moment still writes at once.
 */
const runAll = db.transaction((requests: WriteRequest[]) => requests.map(run));
let queue: WriteRequest[] = [];
let closeRequested = false;

function drain(): void {
  const requests = queue;
  queue = [];
  let replies: WriteReply[];
  try {
    replies = runAll(requests);
  } catch (err) {
    // The commit itself failed (disk full, I/O): nothing of it was written.
    const error = (err as Error).stack ?? String(err);
    replies = requests.map((r) => ({ id: r.id, error }));
  }
  for (const reply of replies) parentPort!.postMessage(reply);
  if (closeRequested) close();
}

function close(): void {
  db.close();
  parentPort!.postMessage('closed');
}

parentPort!.on('message', (message: WriteRequest | 'close') => {
  if (message === 'close') {
    if (queue.length === 0) close();
    else closeRequested = true;
    return;
  }
  queue.push(message);
  if (queue.length === 1) setImmediate(drain);
});
