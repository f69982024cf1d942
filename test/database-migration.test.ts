import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrations, openDatabase } from '../server/src/storage/database.js';
import { TimeSeriesStore } from '../server/src/storage/timeseries.js';
import { tempDir } from './support/test-server.js';

describe('database migrations', () => {
  it('moves points of the first schema (ts_kv) into integer-keyed series without losing any', () => {
    const dir = tempDir();
    const v1 = new Database(path.join(dir, 'sluice.db'));
    v1.exec(migrations[0]!);
    v1.pragma('user_version = 1');
    const insert = v1.prepare('INSERT INTO ts_kv (device_id, key, ts, kind, num, str) VALUES (?, ?, ?, ?, ?, ?)');
    insert.run('dev-a', 'temp', 1000, 0, 21.5, null);
    insert.run('dev-a', 'temp', 2000, 0, 22.5, null);
    insert.run('dev-a', 'mode', 1000, 2, null, 'eco');
    insert.run('dev-b', 'temp', 1000, 1, 1, null);
    v1.close();

    const db = openDatabase(dir);
    expect(db.pragma('user_version', { simple: true })).toBe(migrations.length);
    const store = new TimeSeriesStore(db);
    expect(store.series({ deviceId: 'dev-a', keys: ['temp', 'mode'], from: 0, to: 10_000, limit: 10 })).toEqual({
      temp: [{ ts: 1000, value: 21.5 }, { ts: 2000, value: 22.5 }],
      mode: [{ ts: 1000, value: 'eco' }],
    });
    expect(store.series({ deviceId: 'dev-b', keys: ['temp'], from: 0, to: 10_000, limit: 10 })).toEqual({ temp: [{ ts: 1000, value: true }] });
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'ts_kv'").pluck().get()).toBe(0);
    db.close();
  });
});
