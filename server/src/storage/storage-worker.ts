import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './database.js';
import type { PackedRecords } from './packed-records.js';
import { createStorageWriter, type WriteOutcome } from './storage-writer.js';

/**
 * The storage worker thread: its own SQLite connection, writing the batches the storage
 * consumer hands over, so that SQLite's work runs on the second core, beside the broker.
 */
export interface WriteRequest { id: number; packed: PackedRecords; live: boolean }
export type WriteReply = { id: number; outcome: WriteOutcome } | { id: number; error: string };

const { dataDir } = workerData as { dataDir: string };
const db = openDatabase(dataDir);
// The writer's connection: a larger page cache, and checkpoints in bigger, rarer steps.
db.pragma('cache_size = -65536');
db.pragma('wal_autocheckpoint = 10000');
const write = createStorageWriter(db);

parentPort!.on('message', (message: WriteRequest | 'close') => {
  if (message === 'close') {
    db.close();
    parentPort!.postMessage('closed');
    return;
  }
  let reply: WriteReply;
  try {
    reply = { id: message.id, outcome: write(message.packed, message.live) };
  } catch (err) {
    reply = { id: message.id, error: (err as Error).stack ?? String(err) };
  }
  parentPort!.postMessage(reply);
});
