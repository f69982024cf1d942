import { parseTelemetryPayload, type TelemetryEntry } from '../telemetry/payload.js';
import type { Db } from './database.js';
import type { PackedRecords } from './packed-records.js';
import { TimeSeriesStore, type StoredBatch } from './timeseries.js';

export interface SkippedRecord {
  offset: number;
  /** unparsable: it does not parse (it passed ingest, so a bug or damage); unwritable: SQLite cannot be given it. */
  kind: 'unparsable' | 'unwritable';
  reason: string;
}

export interface WriteOutcome {
  /** Telemetry messages stored. */
  messages: number;
  points: number;
  /** Records skipped: each one alone, everything else of the batch is stored. */
  skipped: SkippedRecord[];
}

interface ParsedRecord {
  deviceId: string;
  entries: TelemetryEntry[];
  attributes: boolean;
  offset: number;
}

/**
 * Turns packed log records into time series and attributes in one SQLite transaction. Records
 * of devices that no longer exist are dropped: their data went with them, and the check runs in
 * the same transaction as the write, so a concurrent delete leaves nothing behind.
 *
 * A record that cannot be written (a value JSON.stringify cannot serialise, one SQLite finds too
 * big) must not stall its partition: the batch is written again in halves, each in a savepoint of
 * its own, down to the records that fail alone, which are skipped. A failure of the database
 * itself (busy, full, I/O) is not a record's fault: it fails the whole batch, to be retried.
 */
export function createStorageWriter(db: Db, store = new TimeSeriesStore(db)): (packed: PackedRecords) => WriteOutcome {
  const deviceExists = db.prepare('SELECT 1 FROM devices WHERE id = ?').pluck();
  const writeSome = db.transaction((records: readonly ParsedRecord[], from: number, to: number) => {
    const batch: StoredBatch = { telemetry: [], attributes: [] };
    for (let i = from; i < to; i++) {
      const r = records[i]!;
      (r.attributes ? batch.attributes : batch.telemetry).push({ deviceId: r.deviceId, entries: r.entries });
    }
    store.write(batch);
  });

  /** Writes records[from, to), each half again on a failure, skipping those that fail alone. */
  const writeRange = (records: readonly ParsedRecord[], from: number, to: number, skipped: SkippedRecord[]): void => {
    try {
      writeSome(records, from, to);
    } catch (err) {
      if (isDatabaseFailure(err)) throw err;
      if (to - from === 1) {
        skipped.push({ offset: records[from]!.offset, kind: 'unwritable', reason: describeError(err) });
        return;
      }
      const mid = (from + to) >>> 1;
      writeRange(records, from, mid, skipped);
      writeRange(records, mid, to, skipped);
    }
  };

  return db.transaction((packed: PackedRecords): WriteOutcome => {
    const records: ParsedRecord[] = [];
    const skipped: SkippedRecord[] = [];
    const exists = new Map<string, boolean>();
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
        skipped.push({ offset: packed.firstOffset + i, kind: 'unparsable', reason: parsed.reason });
        continue;
      }
      records.push({ deviceId, entries: parsed.entries, attributes: packed.attributes[i] === 1, offset: packed.firstOffset + i });
    }
    if (records.length > 0) writeRange(records, 0, records.length, skipped);
    let messages = 0;
    let points = 0;
    const unwritable = skipped.length > 0 ? new Set(skipped.map((s) => s.offset)) : undefined;
    for (const r of records) {
      if (r.attributes || unwritable?.has(r.offset)) continue;
      messages++;
      for (const e of r.entries) for (const _ in e.values) points++;
    }
    return { messages, points, skipped };
  });
}

/**
 * Errors of the database rather than of the data: every record would fail alike, so skipping
 * them would lose them. (SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH and errors thrown
 * in JavaScript, such as JSON.stringify's RangeError, are a record's own.)
 */
function isDatabaseFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string'
    && /^SQLITE_(BUSY|LOCKED|FULL|IOERR|NOMEM|READONLY|CANTOPEN|CORRUPT|NOTADB|PROTOCOL|INTERRUPT|ABORT|PERM|AUTH|SCHEMA|MISUSE|INTERNAL|ERROR)/.test(code);
}

function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
