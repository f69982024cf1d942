import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import { transferList, type PackedRecords } from './packed-records.js';
import type { StoredBatch } from './timeseries.js';
import type { Checkpoint } from '../windows/window-checkpoint.js';
import type { WindowResult } from '../windows/window-operator.js';
import type { DurableNotice, WriteReply, WriteRequest, WriteRequestBody } from './storage-worker.js';
import type { WriteOutcome } from './storage-writer.js';

/**
 * The main thread's side of the storage worker, the one thread that writes what flows with the
 * data to SQLite: log batches (storage group), what rules' `save` nodes collected, window results
 * and checkpoints. The broker's thread never waits on SQLite's write lock for them.
 */
export interface StorageWorkerClient {
  /** Writes a batch of log records; resolves with what was stored once it is committed. */
  writeRecords(packed: PackedRecords): Promise<WriteOutcome>;
  /** Writes values that rules saved; resolves once they are committed. */
  writeSaved(batch: StoredBatch): Promise<void>;
  /** Stores a window result (replacing an earlier one of the same window). */
  writeWindowResult(result: WindowResult, now: number): Promise<void>;
  /** Replaces the window engine's checkpoint; written after every request sent before it. */
  writeCheckpoint(checkpoint: Checkpoint, now: number): Promise<void>;
  /**
   * Resolves once every request answered so far is durable in sluice.db itself — a complete WAL
   * checkpoint covers it, so losing the WAL cannot lose it (durable-checkpoint.ts): at the
   * worker's next checkpoint, within about 250 ms. Rejects if the worker fails first.
   */
  whenDurable(): Promise<void>;
  /** Closes the worker's database and ends the thread (after the requests in flight). */
  close(): Promise<void>;
}

export function startStorageWorker(dataDir: string, logger: Logger): StorageWorkerClient {
  const worker = new Worker(new URL('./storage-worker-entry.mjs', import.meta.url), { workerData: { dataDir } });
  const waiting = new Map<number, { resolve: (o: WriteOutcome | undefined) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failure: Error | undefined;
  let closing: Promise<void> | undefined;
  // Durability: the last request answered, the last one the worker says is durable, and who waits
  // for which (in order of `through`, so they are resolved from the front).
  let answeredThrough = 0;
  let durableThrough = 0;
  const durableWaiters: { through: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  worker.on('message', (reply: WriteReply | DurableNotice | 'closed') => {
    if (reply === 'closed') return;
    if ('durable' in reply) {
      durableThrough = reply.durable;
      while (durableWaiters.length > 0 && durableWaiters[0]!.through <= durableThrough) durableWaiters.shift()!.resolve();
      return;
    }
    if (reply.id > answeredThrough) answeredThrough = reply.id;
    const w = waiting.get(reply.id);
    waiting.delete(reply.id);
    if ('error' in reply) w?.reject(new Error(`storage worker: ${reply.error}`));
    else w?.resolve(reply.outcome);
  });
  const failAll = (err: Error) => {
    failure = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
    for (const w of durableWaiters.splice(0)) w.reject(err);
  };
  worker.on('error', (err) => {
    logger.fatal({ err }, 'the storage worker failed');
    failAll(err);
  });
  worker.on('exit', (code) => failAll(new Error(`the storage worker exited (${code})`)));

  const request = (message: WriteRequestBody, transfer: ArrayBuffer[] = []): Promise<WriteOutcome | undefined> => {
    if (failure) return Promise.reject(failure);
    if (closing) return Promise.reject(new Error('the storage worker is closing'));
    return new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...message, id } satisfies WriteRequest, transfer);
    });
  };

  return {
    writeRecords: (packed) => request({ kind: 'records', packed }, transferList(packed)) as Promise<WriteOutcome>,
    writeSaved: async (batch) => { await request({ kind: 'saved', batch }); },
    writeWindowResult: async (result, now) => { await request({ kind: 'window', result, now }); },
    writeCheckpoint: async (checkpoint, now) => { await request({ kind: 'checkpoint', checkpoint, now }); },
    whenDurable() {
      if (durableThrough >= answeredThrough) return Promise.resolve();
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => { durableWaiters.push({ through: answeredThrough, resolve, reject }); });
    },
    close() {
      closing ??= (async () => {
        if (failure) return;
        const closed = new Promise<void>((resolve) => worker.on('message', (m) => { if (m === 'closed') resolve(); }));
        worker.postMessage('close');
        await closed;
        await worker.terminate();
      })();
      return closing;
    },
  };
}
