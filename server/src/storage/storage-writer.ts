import { parseTelemetryPayload } from '../telemetry/payload.js';
import type { Db } from './database.js';
import type { PackedRecords } from './packed-records.js';
import { TimeSeriesStore, type StoredBatch } from './timeseries.js';

export interface WriteOutcome {
  /** Telemetry messages stored. */
  messages: number;
  points: number;
  /** Records skipped because they do not parse (they passed ingest, so this means a bug or damage). */
  skipped: { offset: number; reason: string }[];
}

/**
 * Turns packed log records into time series and attributes in one SQLite transaction. Records
 * of devices that no longer exist are dropped: their data went with them, and the check runs in
 * the same transaction as the write, so a concurrent delete leaves nothing behind.
 */
export function createStorageWriter(db: Db, store = new TimeSeriesStore(db)): (packed: PackedRecords) => WriteOutcome {
  const deviceExists = db.prepare('SELECT 1 FROM devices WHERE id = ?').pluck();
  const write = db.transaction((packed: PackedRecords): WriteOutcome => {
    const batch: StoredBatch = { telemetry: [], attributes: [] };
    const skipped: WriteOutcome['skipped'] = [];
    const exists = new Map<string, boolean>();
    let points = 0;
    const values = Buffer.from(packed.values.buffer, packed.values.byteOffset, packed.values.byteLength);
    let start = 0;
    for (let i = 0; i < packed.keys.length; i++) {
      const deviceId = packed.keys[i]!;
      const end = packed.ends[i]!;
      const bytes = values.subarray(start, end);
      start = end;
      let known = exists.get(deviceId);
      if (known === undefined) exists.set(deviceId, (known = deviceExists.get(deviceId) !== undefined));
      if (!known) continue;
      const parsed = parseTelemetryPayload(bytes, packed.timestamps[i]!);
      if (!parsed.ok) {
        skipped.push({ offset: packed.firstOffset + i, reason: parsed.reason });
        continue;
      }
      if (packed.attributes[i] === 1) {
        batch.attributes.push({ deviceId, entries: parsed.entries });
      } else {
        batch.telemetry.push({ deviceId, entries: parsed.entries });
        for (const e of parsed.entries) for (const _ in e.values) points++;
      }
    }
    store.write(batch);
    return { messages: batch.telemetry.length, points, skipped };
  });
  return write;
}
