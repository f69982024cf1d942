import type { TelemetryEntry } from './payload.js';

/**
 * The values of the last telemetry records appended, as ingest parsed them to validate them, by
 * partition and offset. The rules group reads right behind ingest and takes them from here
 * instead of parsing each payload a second time on the same thread; a record that is no longer
 * here (the group fell behind, or it is a replay after a restart) is simply parsed again.
 */
export class RecentEntries {
  private readonly offsets: Float64Array[];
  private readonly entries: (TelemetryEntry[] | undefined)[][];

  constructor(partitions: number, private readonly perPartition = 8192) {
    this.offsets = Array.from({ length: partitions }, () => new Float64Array(perPartition).fill(-1));
    this.entries = Array.from({ length: partitions }, () => new Array<TelemetryEntry[] | undefined>(perPartition));
  }

  put(partition: number, offset: number, entries: TelemetryEntry[]): void {
    const offsets = this.offsets[partition];
    if (!offsets) return;
    const slot = offset % this.perPartition;
    offsets[slot] = offset;
    this.entries[partition]![slot] = entries;
  }

  /** The entries of that record, once: a second take (a retried batch) parses again. */
  take(partition: number, offset: number): TelemetryEntry[] | undefined {
    const offsets = this.offsets[partition];
    if (!offsets) return undefined;
    const slot = offset % this.perPartition;
    if (offsets[slot] !== offset) return undefined;
    offsets[slot] = -1;
    const entries = this.entries[partition]![slot];
    this.entries[partition]![slot] = undefined;
    return entries;
  }
}
