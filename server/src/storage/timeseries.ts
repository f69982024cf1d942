import type { TelemetryEntry, TelemetryValue } from '../telemetry/payload.js';
import type { Db } from './database.js';

export type Aggregation = 'avg' | 'min' | 'max' | 'sum' | 'count';

export interface Point {
  ts: number;
  value: TelemetryValue;
}

export interface SeriesQuery {
  deviceId: string;
  keys?: string[];
  from: number;
  to: number;
  limit: number;
}

export interface AggregateQuery extends SeriesQuery {
  interval: number;
  agg: Aggregation;
}

const KIND_NUMBER = 0;
const KIND_BOOLEAN = 1;
const KIND_STRING = 2;
const KIND_JSON = 3;

interface ValueRow { key: string; ts: number; kind: number; num: number | null; str: string | null }

function decodeValue(row: ValueRow): TelemetryValue {
  switch (row.kind) {
    case KIND_NUMBER: return row.num!;
    case KIND_BOOLEAN: return row.num === 1;
    case KIND_STRING: return row.str!;
    default: return JSON.parse(row.str!) as Record<string, unknown>;
  }
}

/**
 * Time series and latest values in SQLite. Writes come in batches inside one transaction with
 * prepared statements; a point re-written with the same (device, key, ts) replaces the old one,
 * so replaying the log after a crash stores nothing twice.
 */
export class TimeSeriesStore {
  private readonly insertPoint;
  private readonly selectSeriesId;
  private readonly insertSeries;
  private readonly seriesIds = new Map<string, number>();
  private readonly upsertLatest;
  private readonly upsertAttribute;
  private readonly selectLatest;
  private readonly selectKeys;
  private readonly selectSeriesKeys;
  private readonly selectAttributeKeys;
  private readonly selectAttributeKey;
  private readonly selectLatestLimited;
  private readonly selectAttributes;
  private readonly selectSeries;
  private readonly writeTransaction;
  private readonly aggregateStatements = new Map<Aggregation, ReturnType<Db['prepare']>>();

  constructor(db: Db) {
    this.insertPoint = db.prepare('INSERT OR REPLACE INTO ts_points (series, ts, kind, num, str) VALUES (?, ?, ?, ?, ?)');
    this.selectSeriesId = db.prepare('SELECT id FROM ts_series WHERE device_id = ? AND key = ?').pluck();
    // A series that exists already (another connection or an older run created it) is simply found.
    this.insertSeries = db.prepare('INSERT INTO ts_series (device_id, key) VALUES (?, ?) ON CONFLICT (device_id, key) DO NOTHING');
    this.upsertLatest = db.prepare(`INSERT INTO ts_latest (device_id, key, ts, kind, num, str) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, kind = excluded.kind, num = excluded.num, str = excluded.str
      WHERE excluded.ts >= ts_latest.ts`);
    this.upsertAttribute = db.prepare(`INSERT INTO client_attributes (device_id, key, ts, value) VALUES (?, ?, ?, ?)
      ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= client_attributes.ts`);
    this.selectLatest = db.prepare('SELECT key, ts, kind, num, str FROM ts_latest WHERE device_id = ? ORDER BY key');
    this.selectAttributes = db.prepare('SELECT key, value FROM client_attributes WHERE device_id = ? ORDER BY key');
    this.selectKeys = db.prepare('SELECT key FROM ts_latest WHERE device_id = ? ORDER BY key').pluck();
    this.selectSeriesKeys = db.prepare('SELECT key FROM ts_series WHERE device_id = ? LIMIT ?').pluck();
    this.selectAttributeKeys = db.prepare('SELECT key FROM client_attributes WHERE device_id = ? LIMIT ?').pluck();
    this.selectAttributeKey = db.prepare('SELECT 1 FROM client_attributes WHERE device_id = ? AND key = ?').pluck();
    this.selectLatestLimited = db.prepare('SELECT key, ts, kind, num, str FROM ts_latest WHERE device_id = ? ORDER BY key LIMIT ?');
    this.selectSeries = db.prepare(`SELECT ts, kind, num, str FROM (
        SELECT ts, kind, num, str FROM ts_points
        WHERE series = (SELECT id FROM ts_series WHERE device_id = ? AND key = ?) AND ts >= ? AND ts <= ? ORDER BY ts DESC LIMIT ?
      ) ORDER BY ts`);
    for (const agg of ['avg', 'min', 'max', 'sum', 'count'] as const) {
      const expr = agg === 'count' ? 'COUNT(*)' : `${agg.toUpperCase()}(num)`;
      // count counts every value; the others take numbers and booleans (as 0/1).
      const kinds = agg === 'count' ? '' : `AND kind IN (${KIND_NUMBER}, ${KIND_BOOLEAN})`;
      this.aggregateStatements.set(agg, db.prepare(`SELECT bucket AS ts, value FROM (
          SELECT ts - (ts % CAST(@interval AS INTEGER)) AS bucket, ${expr} AS value FROM ts_points
          WHERE series = (SELECT id FROM ts_series WHERE device_id = @deviceId AND key = @key) AND ts >= @from AND ts <= @to ${kinds}
          GROUP BY bucket ORDER BY bucket DESC LIMIT @limit
        ) ORDER BY bucket`));
    }
    this.writeTransaction = db.transaction((batch: StoredBatch) => {
      // Latest values: only the newest point of each (device, key) in the batch is upserted.
      const newest = new Map<string, [deviceId: string, key: string, ts: number, kind: number, num: number | null, str: string | null]>();
      for (const m of batch.telemetry) {
        for (const entry of m.entries) {
          for (const key in entry.values) {
            const [kind, num, str] = encodeValue(entry.values[key]!);
            const id = `${m.deviceId}\u0000${key}`;
            this.insertPoint.run(this.seriesId(id, m.deviceId, key), entry.ts, kind, num, str);
            const seen = newest.get(id);
            if (!seen || entry.ts >= seen[2]) newest.set(id, [m.deviceId, key, entry.ts, kind, num, str]);
          }
        }
      }
      for (const row of newest.values()) this.upsertLatest.run(...row);
      for (const m of batch.attributes) {
        for (const entry of m.entries) {
          for (const key in entry.values) this.upsertAttribute.run(m.deviceId, key, entry.ts, JSON.stringify(entry.values[key]));
        }
      }
    });
  }

  /** The integer id of a (device, key) series, created on first use; cached, ids never change. */
  private seriesId(cacheKey: string, deviceId: string, key: string): number {
    let id = this.seriesIds.get(cacheKey);
    if (id === undefined) {
      id = this.selectSeriesId.get(deviceId, key) as number | undefined;
      if (id === undefined) {
        this.insertSeries.run(deviceId, key);
        id = this.selectSeriesId.get(deviceId, key) as number;
      }
      this.seriesIds.set(cacheKey, id);
    }
    return id;
  }

  /** Writes a batch of device messages in one transaction. */
  write(batch: StoredBatch): void {
    this.writeTransaction(batch);
  }

  /**
   * Latest values of each of these devices, at most `maxKeys` each (the first keys in alphabetical
   * order; `truncated` when the device has more): one bounded query per device, so a device with
   * thousands of keys costs no more than `maxKeys` rows.
   */
  latestOfEach(deviceIds: readonly string[], maxKeys: number): Map<string, { latest: Record<string, Point>; truncated: boolean }> {
    const out = new Map<string, { latest: Record<string, Point>; truncated: boolean }>();
    for (const deviceId of deviceIds) {
      const rows = this.selectLatestLimited.all(deviceId, maxKeys + 1) as ValueRow[];
      const latest: Record<string, Point> = {};
      for (let i = 0; i < Math.min(rows.length, maxKeys); i++) latest[rows[i]!.key] = { ts: rows[i]!.ts, value: decodeValue(rows[i]!) };
      out.set(deviceId, { latest, truncated: rows.length > maxKeys });
    }
    return out;
  }

  /** Up to `limit` of the keys a device has series of. */
  seriesKeys(deviceId: string, limit: number): string[] {
    return this.selectSeriesKeys.all(deviceId, limit) as string[];
  }

  hasSeries(deviceId: string, key: string): boolean {
    return this.selectSeriesId.get(deviceId, key) !== undefined;
  }

  /** Up to `limit` of the client attribute keys a device reported. */
  attributeKeys(deviceId: string, limit: number): string[] {
    return this.selectAttributeKeys.all(deviceId, limit) as string[];
  }

  hasAttribute(deviceId: string, key: string): boolean {
    return this.selectAttributeKey.get(deviceId, key) !== undefined;
  }

  latest(deviceId: string): Record<string, Point> {
    const out: Record<string, Point> = {};
    for (const row of this.selectLatest.all(deviceId) as ValueRow[]) out[row.key] = { ts: row.ts, value: decodeValue(row) };
    return out;
  }

  /** Raw points per key, the newest `limit` in [from, to], in ascending ts. */
  series(q: SeriesQuery): Record<string, Point[]> {
    const out: Record<string, Point[]> = {};
    for (const key of q.keys ?? this.keysOf(q.deviceId)) {
      const rows = this.selectSeries.all(q.deviceId, key, q.from, q.to, q.limit) as ValueRow[];
      out[key] = rows.map((r) => ({ ts: r.ts, value: decodeValue(r) }));
    }
    return out;
  }

  /** One point per `interval`-wide bucket (aligned to the epoch, ts = bucket start). */
  aggregate(q: AggregateQuery): Record<string, Point[]> {
    const statement = this.aggregateStatements.get(q.agg)!;
    const out: Record<string, Point[]> = {};
    for (const key of q.keys ?? this.keysOf(q.deviceId)) {
      out[key] = statement.all({ deviceId: q.deviceId, key, from: q.from, to: q.to, interval: q.interval, limit: q.limit }) as Point[];
    }
    return out;
  }

  clientAttributes(deviceId: string): Record<string, unknown> {
    const rows = this.selectAttributes.all(deviceId) as { key: string; value: string }[];
    return Object.fromEntries(rows.map((r) => [r.key, JSON.parse(r.value)]));
  }

  private keysOf(deviceId: string): string[] {
    return this.selectKeys.all(deviceId) as string[];
  }
}

export interface DeviceEntries {
  deviceId: string;
  entries: TelemetryEntry[];
}

export interface StoredBatch {
  telemetry: DeviceEntries[];
  attributes: DeviceEntries[];
}

function encodeValue(v: TelemetryValue): [number, number | null, string | null] {
  switch (typeof v) {
    case 'number': return [KIND_NUMBER, v, null];
    case 'boolean': return [KIND_BOOLEAN, v ? 1 : 0, null];
    case 'string': return [KIND_STRING, null, v];
    default: return [KIND_JSON, null, JSON.stringify(v)];
  }
}
