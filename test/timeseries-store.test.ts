import { beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../server/src/storage/database.js';
import { TimeSeriesStore, type StoredBatch } from '../server/src/storage/timeseries.js';
import type { TelemetryEntry } from '../server/src/telemetry/payload.js';
import { tempDir } from './support/test-server.js';

// The time-series store in this process over a real SQLite file (the storage worker thread writes
// with the same class; its queries run in the server's thread, as here).

const telemetry = (deviceId: string, entries: TelemetryEntry[]): StoredBatch => ({ telemetry: [{ deviceId, entries }], attributes: [] });
const attributes = (deviceId: string, entries: TelemetryEntry[]): StoredBatch => ({ telemetry: [], attributes: [{ deviceId, entries }] });
const all = { from: 0, to: Number.MAX_SAFE_INTEGER, limit: 1000 };

describe('time-series store: latest values', () => {
  let db: Db;
  let store: TimeSeriesStore;
  beforeEach(() => {
    db = openDatabase(tempDir());
    store = new TimeSeriesStore(db);
  });

  it('keeps the newest value of a key when a late point (older ts) comes in a later batch; the late point is still in the series', () => {
    store.write(telemetry('d', [{ ts: 5000, values: { t: 50 } }]));
    store.write(telemetry('d', [{ ts: 3000, values: { t: 30 } }]));
    expect(store.latest('d')).toEqual({ t: { ts: 5000, value: 50 } });
    expect(store.series({ deviceId: 'd', keys: ['t'], ...all })).toEqual({ t: [{ ts: 3000, value: 30 }, { ts: 5000, value: 50 }] });
    store.write(telemetry('d', [{ ts: 6000, values: { t: 60 } }]));
    expect(store.latest('d')).toEqual({ t: { ts: 6000, value: 60 } });
  });

  it('keeps the newest value of a key when a batch holds it before an older one', () => {
    store.write(telemetry('d', [{ ts: 5000, values: { t: 50, u: 1 } }, { ts: 3000, values: { t: 30, u: 2 } }, { ts: 4000, values: { t: 40 } }]));
    expect(store.latest('d')).toEqual({ t: { ts: 5000, value: 50 }, u: { ts: 5000, value: 1 } });
    // A batch of only older points changes no latest value either.
    store.write({ telemetry: [{ deviceId: 'd', entries: [{ ts: 1000, values: { t: 10 } }] }, { deviceId: 'e', entries: [{ ts: 1000, values: { t: 11 } }] }], attributes: [] });
    expect(store.latest('d').t).toEqual({ ts: 5000, value: 50 });
    expect(store.latest('e')).toEqual({ t: { ts: 1000, value: 11 } });
  });

  it('replaces a point written again at the same ts (a replayed record), in the series and as the latest value', () => {
    store.write(telemetry('d', [{ ts: 1000, values: { t: 1 } }]));
    store.write(telemetry('d', [{ ts: 1000, values: { t: 2 } }]));
    expect(store.series({ deviceId: 'd', keys: ['t'], ...all })).toEqual({ t: [{ ts: 1000, value: 2 }] });
    expect(store.latest('d')).toEqual({ t: { ts: 1000, value: 2 } });
    // Within one batch too: the later of two entries with the same ts wins.
    store.write(telemetry('d', [{ ts: 2000, values: { t: 3 } }, { ts: 2000, values: { t: 4 } }]));
    expect(store.latest('d')).toEqual({ t: { ts: 2000, value: 4 } });
  });

  it('stores and gives back numbers, booleans, strings and objects, as series and latest values', () => {
    store.write(telemetry('d', [{ ts: 1, values: { n: 1.5, yes: true, no: false, s: 'on', o: { a: [1, 2], b: 'x' } } }]));
    const point = (value: unknown) => ({ ts: 1, value });
    expect(store.latest('d')).toEqual({ n: point(1.5), no: point(false), o: point({ a: [1, 2], b: 'x' }), s: point('on'), yes: point(true) });
    expect(Object.keys(store.latest('d'))).toEqual(['n', 'no', 'o', 's', 'yes']);
    expect(store.series({ deviceId: 'd', ...all })).toEqual({ n: [point(1.5)], no: [point(false)], o: [point({ a: [1, 2], b: 'x' })], s: [point('on')], yes: [point(true)] });
  });

  it('gives each device\'s latest values, at most maxKeys of them, the first keys in alphabetical order, saying when there are more', () => {
    store.write(telemetry('a', [{ ts: 1, values: { c: 3, a: 1, b: 2 } }]));
    store.write(telemetry('b', [{ ts: 1, values: { x: 1, y: 2 } }]));
    const got = store.latestOfEach(['a', 'b', 'none'], 2);
    expect(got.get('a')).toEqual({ latest: { a: { ts: 1, value: 1 }, b: { ts: 1, value: 2 } }, truncated: true });
    expect(got.get('b')).toEqual({ latest: { x: { ts: 1, value: 1 }, y: { ts: 1, value: 2 } }, truncated: false });
    expect(got.get('none')).toEqual({ latest: {}, truncated: false });
    expect(store.latestOfEach(['a'], 3).get('a')).toMatchObject({ truncated: false });
    expect(Object.keys(store.latestOfEach(['a'], 3).get('a')!.latest)).toEqual(['a', 'b', 'c']);
  });

  it('keeps client attributes apart from telemetry; a late attribute does not overwrite a newer one', () => {
    // Client attributes belong to a registered device (they go when it is deleted).
    db.prepare("INSERT INTO devices (id, name, token, created_at, updated_at) VALUES ('d', 'd', 'tok', 0, 0)").run();
    store.write(attributes('d', [{ ts: 2000, values: { fw: '1.2', cfg: { on: true } } }]));
    store.write(attributes('d', [{ ts: 1000, values: { fw: '1.1' } }, { ts: 3000, values: { cfg: { on: false } } }]));
    expect(store.clientAttributes('d')).toEqual({ cfg: { on: false }, fw: '1.2' });
    expect(store.latest('d')).toEqual({});
    expect(store.attributeKeys('d', 10).sort()).toEqual(['cfg', 'fw']);
    expect(store.attributeKeys('d', 1)).toHaveLength(1);
    expect(store.hasAttribute('d', 'fw')).toBe(true);
    expect(store.hasAttribute('d', 'nope')).toBe(false);
    expect(store.hasAttribute('other', 'fw')).toBe(false);
    expect(store.hasSeries('d', 'fw')).toBe(false);
  });

  it('knows a device\'s series keys, also those another store (connection) created over the same file', () => {
    store.write(telemetry('d', [{ ts: 1, values: { t: 1, h: 2 } }]));
    const other = new TimeSeriesStore(openDatabase(db.name.replace(/sluice\.db$/, '')));
    other.write(telemetry('d', [{ ts: 2, values: { t: 3, p: 4 } }]));
    store.write(telemetry('d', [{ ts: 3, values: { p: 5 } }]));
    expect(store.seriesKeys('d', 10).sort()).toEqual(['h', 'p', 't']);
    expect(store.seriesKeys('d', 2)).toHaveLength(2);
    expect(store.hasSeries('d', 'p')).toBe(true);
    expect(store.hasSeries('d', 'x')).toBe(false);
    expect(store.hasSeries('e', 't')).toBe(false);
    expect(store.series({ deviceId: 'd', keys: ['p', 't'], ...all })).toEqual({
      p: [{ ts: 2, value: 4 }, { ts: 3, value: 5 }], t: [{ ts: 1, value: 1 }, { ts: 2, value: 3 }],
    });
  });
});

describe('time-series store: raw and aggregated queries', () => {
  let store: TimeSeriesStore;
  beforeEach(() => {
    store = new TimeSeriesStore(openDatabase(tempDir()));
    // t at 0, 1000, ..., 9000 with values 0..9; another device's t, which no query of `d` sees.
    store.write(telemetry('d', Array.from({ length: 10 }, (_, i) => ({ ts: i * 1000, values: { t: i } }))));
    store.write(telemetry('other', [{ ts: 500, values: { t: 100 } }, { ts: 5500, values: { t: 100 } }]));
  });
  const values = (points: { value: unknown }[] | undefined) => points!.map((p) => p.value);

  it('takes points with from <= ts <= to (both inclusive), the newest `limit`, ascending', () => {
    expect(values(store.series({ deviceId: 'd', keys: ['t'], from: 2000, to: 5000, limit: 100 }).t)).toEqual([2, 3, 4, 5]);
    expect(values(store.series({ deviceId: 'd', keys: ['t'], from: 2001, to: 4999, limit: 100 }).t)).toEqual([3, 4]);
    expect(values(store.series({ deviceId: 'd', keys: ['t'], from: 0, to: 9000, limit: 3 }).t)).toEqual([7, 8, 9]);
    expect(store.series({ deviceId: 'd', keys: ['t'], from: 3000, to: 3000, limit: 1 })).toEqual({ t: [{ ts: 3000, value: 3 }] });
    expect(store.series({ deviceId: 'd', keys: ['t', 'none'], from: 9001, to: 20_000, limit: 10 })).toEqual({ t: [], none: [] });
  });

  it('aggregates into buckets aligned to the epoch, not to `from`: the first bucket starts before a `from` off the boundary and holds only points >= from', () => {
    const sum = store.aggregate({ deviceId: 'd', keys: ['t'], from: 1500, to: 7999, limit: 100, interval: 3000, agg: 'sum' });
    // Points 2000..7000: bucket 0 holds 2 (2000); bucket 3000 holds 3, 4, 5; bucket 6000 holds 6, 7.
    expect(sum).toEqual({ t: [{ ts: 0, value: 2 }, { ts: 3000, value: 12 }, { ts: 6000, value: 13 }] });
    const count = store.aggregate({ deviceId: 'd', keys: ['t'], from: 1001, to: 9000, limit: 100, interval: 4000, agg: 'count' });
    expect(count).toEqual({ t: [{ ts: 0, value: 2 }, { ts: 4000, value: 4 }, { ts: 8000, value: 2 }] });
  });

  it('keeps the newest `limit` buckets of an aggregate, in ascending ts', () => {
    const avg = store.aggregate({ deviceId: 'd', keys: ['t'], from: 0, to: 9999, limit: 2, interval: 2000, agg: 'avg' });
    expect(avg).toEqual({ t: [{ ts: 6000, value: 6.5 }, { ts: 8000, value: 8.5 }] });
  });

  it('aggregates from and to inclusive', () => {
    const count = (from: number, to: number) => values(store.aggregate({ deviceId: 'd', keys: ['t'], from, to, limit: 100, interval: 10_000, agg: 'count' }).t);
    expect(count(2000, 5000)).toEqual([4]);
    expect(count(2001, 4999)).toEqual([2]);
    expect(count(9000, 9000)).toEqual([1]);
    expect(count(9001, 20_000)).toEqual([]);
  });

  it('computes avg, min, max, sum and count per bucket; booleans count as 0 and 1, strings and objects only in count', () => {
    const q = { deviceId: 'd', keys: ['t'], from: 0, to: 9999, limit: 100, interval: 5000 };
    expect(store.aggregate({ ...q, agg: 'avg' }).t).toEqual([{ ts: 0, value: 2 }, { ts: 5000, value: 7 }]);
    expect(values(store.aggregate({ ...q, agg: 'min' }).t)).toEqual([0, 5]);
    expect(values(store.aggregate({ ...q, agg: 'max' }).t)).toEqual([4, 9]);
    expect(values(store.aggregate({ ...q, agg: 'sum' }).t)).toEqual([10, 35]);
    expect(values(store.aggregate({ ...q, agg: 'count' }).t)).toEqual([5, 5]);
    store.write(telemetry('m', [{ ts: 0, values: { v: true } }, { ts: 1, values: { v: false } }, { ts: 2, values: { v: true } }, { ts: 3, values: { v: 'x' } }, { ts: 4, values: { v: { a: 1 } } }]));
    const m = { deviceId: 'm', keys: ['v'], from: 0, to: 9, limit: 10, interval: 10 };
    expect(values(store.aggregate({ ...m, agg: 'sum' }).v)).toEqual([2]);
    expect(values(store.aggregate({ ...m, agg: 'min' }).v)).toEqual([0]);
    expect(values(store.aggregate({ ...m, agg: 'max' }).v)).toEqual([1]);
    expect(values(store.aggregate({ ...m, agg: 'count' }).v)).toEqual([5]);
    store.write(telemetry('s', [{ ts: 0, values: { s: 'a' } }]));
    expect(store.aggregate({ deviceId: 's', keys: ['s'], from: 0, to: 9, limit: 10, interval: 10, agg: 'avg' })).toEqual({ s: [] });
  });

  it('queries every key of the device when no keys are named', () => {
    store.write(telemetry('d', [{ ts: 9500, values: { h: 1 } }]));
    expect(Object.keys(store.series({ deviceId: 'd', from: 9000, to: 9999, limit: 10 }))).toEqual(['h', 't']);
    expect(store.aggregate({ deviceId: 'd', from: 9000, to: 9999, limit: 10, interval: 1000, agg: 'count' })).toEqual({ h: [{ ts: 9000, value: 1 }], t: [{ ts: 9000, value: 1 }] });
    expect(store.series({ deviceId: 'nobody', ...all })).toEqual({});
  });
});
