import type { Clock } from '../clock.js';
import type { Log } from '../log/types.js';

/**
 * Whether each consumer group keeps moving. A group is stalled on a partition when it has records
 * to read there (lag > 0) and its committed offset has not moved for `stallAfterMs`: a consumer
 * that fails on every try, or waits on something that never comes, looks like this, while one
 * that is merely busy or behind still moves. /healthz reports it, so an orchestrator restarts or
 * pages instead of trusting a process that stores nothing.
 */

export interface GroupProgress {
  group: string;
  topic: string;
  /** Records written but not yet handled by the group, over all partitions. */
  lag: number;
  /** The longest time, in ms, one of its partitions has had lag without moving; 0 when moving. */
  stalledForMs: number;
  stalled: boolean;
}

interface PartitionWatch {
  committed: number;
  /** When the committed offset last moved, or the partition last had nothing to read. */
  movedAt: number;
}

export interface ConsumerProgressOptions {
  log: Pick<Log, 'partitionCount' | 'offsets' | 'committed'>;
  /** The groups to watch, each on its topic (a group that never committed counts from the start). */
  groups: { group: string; topic: string }[];
  clock: Clock;
  /** A partition with lag that does not move for this long makes its group stalled. */
  stallAfterMs: number;
  /** How often the groups are sampled (the check needs no more than a few samples per stall time). */
  sampleEveryMs?: number;
}

export class ConsumerProgress {
  private readonly watches = new Map<string, PartitionWatch>();
  private latest: GroupProgress[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ConsumerProgressOptions) {}

  start(): void {
    const every = this.o.sampleEveryMs ?? Math.max(100, Math.min(5000, Math.floor(this.o.stallAfterMs / 4)));
    void this.sample();
    this.timer = setInterval(() => void this.sample(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The groups as last sampled. */
  groups(): GroupProgress[] {
    return this.latest;
  }

  /** Sentences naming each stalled group, for /healthz; empty when all move. */
  problems(): string[] {
    return this.latest.filter((g) => g.stalled).map((g) =>
      `consumer group "${g.group}" on "${g.topic}" has ${g.lag} records to read and has not moved for ${Math.round(g.stalledForMs / 1000)} s`);
  }

  async sample(): Promise<void> {
    const now = this.o.clock.now();
    const latest: GroupProgress[] = [];
    try {
      for (const { group, topic } of this.o.groups) {
        let lag = 0;
        let stalledForMs = 0;
        for (let partition = 0; partition < this.o.log.partitionCount(topic); partition++) {
          const { start, end } = await this.o.log.offsets(topic, partition);
          const committed = Math.max(start, (await this.o.log.committed(group, topic, partition)) ?? start);
          const behind = Math.max(0, end - committed);
          lag += behind;
          // Bounded: one entry per watched group and partition.
          const key = `${group}\u0000${topic}\u0000${partition}`;
          const watch = this.watches.get(key);
          if (!watch || watch.committed !== committed || behind === 0) {
            this.watches.set(key, { committed, movedAt: now });
            continue;
          }
          stalledForMs = Math.max(stalledForMs, now - watch.movedAt);
        }
        latest.push({ group, topic, lag, stalledForMs, stalled: stalledForMs >= this.o.stallAfterMs });
      }
    } catch {
      return; // the log is closing: keep the last sample
    }
    this.latest = latest;
  }
}
