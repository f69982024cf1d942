import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../server/src/storage/database.js';
import { startStorageWorker, type StorageWorkerClient } from '../server/src/storage/storage-worker-client.js';
import { TimeSeriesStore } from '../server/src/storage/timeseries.js';
import type { WindowResult } from '../server/src/windows/window-operator.js';
import { silentLogger, tempDir } from './support/test-server.js';

/** The storage worker thread for real: its own SQLite connection on a temp dir. */
describe('storage worker', () => {
  const workers: StorageWorkerClient[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.close();
  });
  const start = () => {
    const dir = tempDir();
    const worker = startStorageWorker(dir, silentLogger);
    workers.push(worker);
    const reader = openDatabase(dir);
    return { worker, store: new TimeSeriesStore(reader), reader };
  };

  it('writes requests that queued up together in one transaction: a failing one is refused alone, the others are stored', async () => {
    const { worker, store, reader } = start();
    const saved = worker.writeSaved({ telemetry: [{ deviceId: 'd1', entries: [{ ts: 1000, values: { t: 20.5 } }] }], attributes: [] });
    // NOT NULL constraint: a window result without a group cannot be stored.
    const broken = worker.writeWindowResult({ rule: 'r/w', group: null, start: 0, end: 60_000, values: { n: 1 }, final: true, update: false } as unknown as WindowResult, 1);
    const window = worker.writeWindowResult({ rule: 'r/w', group: 'd1', start: 0, end: 60_000, values: { n: 1 }, final: true, update: false }, 1);
    await expect(broken).rejects.toThrow(/NOT NULL/);
    await saved;
    await window;
    expect(store.latest('d1')).toEqual({ t: { ts: 1000, value: 20.5 } });
    expect(reader.prepare('SELECT grp, final FROM window_results').all()).toEqual([{ grp: 'd1', final: 1 }]);
    reader.close();
  });

  it('answers a log batch once it is committed, with what it stored', async () => {
    const { worker, store, reader } = start();
    const value = Buffer.from('{"t": 7}');
    const packed = {
      keys: ['d1'], timestamps: new Float64Array([5000]), ends: new Uint32Array([value.length]), attributes: new Uint8Array([0]),
      values: new Uint8Array(value), partition: 0, firstOffset: 0,
    };
    // The writer drops records of devices that do not exist: create the device as the registry would.
    reader.prepare("INSERT INTO devices (id, name, type, token, attributes, created_at, updated_at) VALUES ('d1', 'd1', 'default', 'tok', '{}', 0, 0)").run();
    const outcome = await worker.writeRecords(packed);
    expect(outcome).toEqual({ messages: 1, points: 1, skipped: [] });
    expect(store.latest('d1')).toEqual({ t: { ts: 5000, value: 7 } });
    reader.close();
  });
});
