import type { TelemetryEntry } from './payload.js';

/** What the values of the records held may take, about: the heap, not the log's bytes. */
export const DEFAULT_RECENT_ENTRIES_MAX_BYTES = 32 * 1024 * 1024;
export const DEFAULT_RECENT_ENTRIES_PER_PARTITION = 8192;

// What a record's parsed values cost beyond their payload's bytes, about (V8, 64-bit): the
// entries array, entry and values objects, and per key or array item a property or element slot
// plus what it points to. Rough, but it makes 3 KB of "[{},{},…]" cost what its 1,000 objects do.
const RECORD_OVERHEAD_BYTES = 256;
const BYTES_PER_KEY = 64;

/** About how many heap bytes a record's parsed values take. */
export function estimateEntriesBytes(payloadBytes: number, keys: number): number {
  return RECORD_OVERHEAD_BYTES + payloadBytes + keys * BYTES_PER_KEY;
}

/**
 * The values of the last telemetry records appended, as ingest parsed them to validate them, by
 * partition and offset. The rules group reads right behind ingest and takes them from here
 * instead of parsing each payload a second time on the same thread; a record that is no longer
 * here (the group fell behind, or it is a replay after a restart) is simply parsed again.
 *
 * Bounded twice: by count (a ring of `perPartition` slots per partition) and by what the values
 * take (`maxBytes` over all partitions, the oldest records evicted first), so large messages
 * cannot pile up however far behind the rules group is or whatever it does not take.
 */
export class RecentEntries {
  private readonly offsets: Float64Array[];
  private readonly costs: Float64Array[];
  private readonly entries: (TelemetryEntry[] | undefined)[][];
  // The order records came in, oldest first, for eviction: a ring of (partition, offset). An
  // entry whose record was taken or overwritten meanwhile is simply passed over.
  private readonly fifoPartition: Int32Array;
  private readonly fifoOffset: Float64Array;
  private fifoHead = 0;
  private fifoLength = 0;
  private held = 0;
  private evictedCount = 0;

  constructor(partitions: number, private readonly perPartition = DEFAULT_RECENT_ENTRIES_PER_PARTITION, readonly maxBytes = DEFAULT_RECENT_ENTRIES_MAX_BYTES) {
    this.offsets = Array.from({ length: partitions }, () => new Float64Array(perPartition).fill(-1));
    this.costs = Array.from({ length: partitions }, () => new Float64Array(perPartition));
    this.entries = Array.from({ length: partitions }, () => new Array<TelemetryEntry[] | undefined>(perPartition));
    this.fifoPartition = new Int32Array(partitions * perPartition);
    this.fifoOffset = new Float64Array(partitions * perPartition);
  }

  /** About how many bytes of heap the values held take. */
  get bytes(): number {
    return this.held;
  }

  /** Records dropped to stay within maxBytes, since start. */
  get evicted(): number {
    return this.evictedCount;
  }

  /** Keeps a record's values; `payloadBytes` and `keys` (ParsedTelemetry.keys) say what they cost. */
  put(partition: number, offset: number, entries: TelemetryEntry[], payloadBytes = 0, keys = 0): void {
    const offsets = this.offsets[partition];
    if (!offsets) return;
    const slot = offset % this.perPartition;
    if (offsets[slot]! >= 0) this.release(partition, slot); // the ring came round: that one is older
    const cost = estimateEntriesBytes(payloadBytes, keys);
    if (cost > this.maxBytes) return; // parsing it again later is cheaper than what it would push out
    offsets[slot] = offset;
    this.costs[partition]![slot] = cost;
    this.entries[partition]![slot] = entries;
    this.held += cost;
    if (this.fifoLength === this.fifoPartition.length) this.evictOldest();
    const tail = (this.fifoHead + this.fifoLength++) % this.fifoPartition.length;
    this.fifoPartition[tail] = partition;
    this.fifoOffset[tail] = offset;
    while (this.held > this.maxBytes && this.fifoLength > 0) this.evictOldest();
  }

  /** The entries of that record, once: a second take (a retried batch) parses again. */
  take(partition: number, offset: number): TelemetryEntry[] | undefined {
    const offsets = this.offsets[partition];
    if (!offsets) return undefined;
    const slot = offset % this.perPartition;
    if (offsets[slot] !== offset) return undefined;
    const entries = this.entries[partition]![slot];
    this.release(partition, slot);
    return entries;
  }

  private release(partition: number, slot: number): void {
    this.held -= this.costs[partition]![slot]!;
    this.costs[partition]![slot] = 0;
    this.offsets[partition]![slot] = -1;
    this.entries[partition]![slot] = undefined;
  }

  private evictOldest(): void {
    const partition = this.fifoPartition[this.fifoHead]!;
    const offset = this.fifoOffset[this.fifoHead]!;
    this.fifoHead = (this.fifoHead + 1) % this.fifoPartition.length;
    this.fifoLength--;
    const slot = offset % this.perPartition;
    if (this.offsets[partition]![slot] === offset) {
      this.release(partition, slot);
      this.evictedCount++;
    }
  }
}
