import type { StoredRecord } from '../log/types.js';
import { messageKind } from '../telemetry/device-message.js';

/**
 * Log records packed for a trip to the storage worker: one transferable byte array for all the
 * values instead of one object per record, so handing a batch over costs next to nothing.
 */
export interface PackedRecords {
  keys: string[];
  timestamps: Float64Array;
  /** values of record i are values[ends[i-1] .. ends[i]) */
  ends: Uint32Array;
  /** 1 where the record carries client attributes, 0 for telemetry. */
  attributes: Uint8Array;
  values: Uint8Array;
  /** Where the batch came from, for messages about it. */
  partition: number;
  firstOffset: number;
}

export function packRecords(records: readonly StoredRecord[]): PackedRecords {
  const n = records.length;
  let total = 0;
  for (const r of records) total += r.value.length;
  const values = new Uint8Array(total);
  const ends = new Uint32Array(n);
  const timestamps = new Float64Array(n);
  const attributes = new Uint8Array(n);
  const keys = new Array<string>(n);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    values.set(r.value, pos);
    pos += r.value.length;
    ends[i] = pos;
    timestamps[i] = r.timestamp;
    attributes[i] = messageKind(r) === 'attributes' ? 1 : 0;
    keys[i] = r.key;
  }
  return { keys, timestamps, ends, attributes, values, partition: records[0]?.partition ?? 0, firstOffset: records[0]?.offset ?? 0 };
}

/** The buffers to transfer (not copy) with postMessage. */
export function transferList(p: PackedRecords): ArrayBuffer[] {
  return [p.values.buffer, p.ends.buffer, p.timestamps.buffer, p.attributes.buffer] as ArrayBuffer[];
}
