import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './database.js';
import type { PackedRecords } from './packed-records.js';
import { DURABLE_CHECKPOINT_EVERY_MS, DurableCheckpoint } from './durable-checkpoint.js';
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
 * It also checkpoints the WAL on a timer and tells the main thread how far its writes are durable
 * (`DurableNotice`): the storage group commits log offsets only that far.
 */
export type WriteRequestBody =
  | { kind: 'records'; packed: PackedRecords }
  | { kind: 'saved'; batch: StoredBatch }
  | { kind: 'window'; result: WindowResult; now: number }
  | { kind: 'checkpoint'; checkpoint: Checkpoint; now: number };
export type WriteRequest = WriteRequestBody & { id: number };
export type WriteReply = { id: number; outcome?: WriteOutcome } | { id: number; error: string };
/** Every request up to `durable` is in sluice.db on disk (a complete WAL checkpoint covers it). */
export type DurableNotice = { durable: number };

const { dataDir } = workerData as { dataDir: string };
const db = openDatabase(dataDir);
// The writer's connection: a larger page cache. It checkpoints the WAL itself, every
// DURABLE_CHECKPOINT_EVERY_MS and not after some commit SQLite picks: a complete checkpoint is
// what makes writes durable in sluice.db, and the storage group's offsets wait for one.
db.pragma('cache_size = -65536');
db.pragma('wal_autocheckpoint = 0');
const durability = new DurableCheckpoint(db, (through) => parentPort!.postMessage({ durable: through } satisfies DurableNotice));
setInterval(() => durability.run(), DURABLE_CHECKPOINT_EVERY_MS).unref();
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
    // IMMEDIATE: the write lock first, waiting for it (busy_timeout) while the main connection
    // writes an alarm or a device. A deferred transaction reads first (does the device exist?),
    // and its upgrade to a writer after the main connection committed fails at once with
    // SQLITE_BUSY (a stale snapshot), which no timeout waits out.
    replies = runAll.immediate(requests);
  } catch (err) {
    // The commit itself failed (disk full, I/O): nothing of it was written.
    const error = (err as Error).stack ?? String(err);
    replies = requests.map((r) => ({ id: r.id, error }));
  }
  for (const reply of replies) parentPort!.postMessage(reply);
  durability.handled(requests[requests.length - 1]!.id);
  if (closeRequested) close();
}

function close(): void {
  // What is left becomes durable now, so the storage group can commit all of it before the log closes.
  for (let attempt = 0; attempt < 3 && !durability.run(); attempt++);
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
