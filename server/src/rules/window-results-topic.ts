import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';

/** Records of the `windows` topic read back at start to recognise results a replay emits again, at most. */
export const MAX_REPLAYED_WINDOW_RECORDS = 100_000;
/** Bytes of such records at most (they are held as strings until emitted again or the replay is over). */
export const MAX_REPLAYED_WINDOW_BYTES = 64 * 1024 * 1024;
const READ_BYTES = 1024 * 1024;

/** What was appended when the window engine's state was taken for a checkpoint. */
export interface AppendMark {
  /** Per partition, the end of what had completed then. */
  ends: number[];
  /** Appends issued before the mark, not complete then. */
  pending: Promise<{ partition: number; offset: number }>[];
}

/**
 * The `windows` topic as the window engine writes it: exactly once per result, across crashes.
 *
 * The rules group resumes from its window checkpoint and emits again every result that came out
 * after it. The checkpoint records where the topic ended when its state was taken (`endsAt`);
 * at start, the records after that point are read back (`loadReplayed`) and a result emitted
 * again with the very same record is not appended a second time (`isReplay`). A replay that comes
 * out differently (partitions read in another interleaving can change a group that spans them)
 * is appended: downstream then sees an update, at-least-once. The records read back are bounded
 * (MAX_REPLAYED_WINDOW_RECORDS, MAX_REPLAYED_WINDOW_BYTES); beyond that the rest are not recognised.
 */
export class WindowResultsTopic {
  private readonly completedEnds: number[] = [];
  private readonly pending = new Set<Promise<{ partition: number; offset: number }>>();
  /** Record values appended after the checkpoint the state came from, with how often each was. */
  private readonly replayed = new Map<string, number>();
  private failed = false;

  constructor(private readonly log: Log, private readonly topic: string, private readonly logger: Logger) {}

  /** Appends a record (failures are logged; `endsAt` then refuses to vouch for any later checkpoint). */
  append(key: string, value: string, timestamp: number): void {
    const appended = this.log.append(this.topic, { key, value: Buffer.from(value), timestamp });
    this.pending.add(appended);
    appended.then(
      ({ partition, offset }) => {
        this.pending.delete(appended);
        if (!(offset < (this.completedEnds[partition] ?? 0))) this.completedEnds[partition] = offset + 1;
      },
      (err: unknown) => {
        this.pending.delete(appended);
        this.failed = true;
        this.logger.error({ err }, 'could not append a window result to the windows topic; no window checkpoint is saved until a restart emits it again');
      });
  }

  /** Marks what has been appended now (call when the state for a checkpoint is taken). */
  mark(): AppendMark {
    return { ends: [...this.completedEnds], pending: [...this.pending] };
  }

  /**
   * Where the topic ended at the mark, once everything appended before it is in the log; undefined
   * if an append failed (a checkpoint must then not be saved: its state says emitted what the
   * topic lacks, and only a replay from an earlier checkpoint emits it again).
   */
  async endsAt(mark: AppendMark): Promise<number[] | undefined> {
    const ends = [...mark.ends];
    const done = await Promise.allSettled(mark.pending);
    if (this.failed) return undefined;
    for (const d of done) {
      if (d.status === 'rejected') return undefined;
      const { partition, offset } = d.value;
      ends[partition] = Math.max(ends[partition] ?? 0, offset + 1);
    }
    const partitions = this.log.partitionCount(this.topic);
    return Array.from({ length: partitions }, (_, p) => ends[p] ?? 0);
  }

  /** Reads back what was appended after `ends` (the restored checkpoint's), up to the bounds. */
  async loadReplayed(ends: readonly number[]): Promise<void> {
    let records = 0;
    let bytes = 0;
    for (let partition = 0; partition < this.log.partitionCount(this.topic); partition++) {
      const { start, end } = await this.log.offsets(this.topic, partition);
      let offset = Math.max(start, ends[partition] ?? 0);
      while (offset < end) {
        const batch = await this.log.read(this.topic, partition, offset, READ_BYTES);
        if (batch.length === 0) break;
        for (const record of batch) {
          if (records >= MAX_REPLAYED_WINDOW_RECORDS || bytes + record.value.length > MAX_REPLAYED_WINDOW_BYTES) {
            this.logger.warn({ records, bytes }, 'more window results after the checkpoint than are kept to recognise a replay; the rest may be appended again');
            return;
          }
          const value = record.value.toString('utf8');
          this.replayed.set(value, (this.replayed.get(value) ?? 0) + 1);
          records++;
          bytes += record.value.length;
        }
        offset = batch[batch.length - 1]!.offset + 1;
      }
    }
    if (records > 0) this.logger.info({ records }, 'window results appended after the checkpoint: the replay will not append them again');
  }

  /** Whether `value` is a record already in the topic from before the crash (and counts it off). */
  isReplay(value: string): boolean {
    const n = this.replayed.get(value);
    if (n === undefined) return false;
    if (n <= 1) this.replayed.delete(value);
    else this.replayed.set(value, n - 1);
    return true;
  }

  /** The replay is over (the rules group caught up): what was not emitted again is forgotten. */
  forgetReplayed(): void {
    this.replayed.clear();
  }
}
