import type { Db } from './database.js';

/**
 * How often the storage worker checkpoints the WAL into sluice.db. The storage group's committed
 * offsets wait for the next checkpoint, so they trail what SQLite shows by up to this (plus the
 * offsets' own ~100 ms persist delay): a crash re-reads that much of the log.
 */
export const DURABLE_CHECKPOINT_EVERY_MS = 250;

/**
 * Makes what the worker committed durable in the database file itself, and says when it is.
 *
 * With `synchronous = NORMAL` a commit only appends to the WAL, unsynced: a commit survives a
 * process crash, not a power loss, and nothing of it survives a WAL that is lost or damaged. A
 * *complete* checkpoint (every frame of the WAL copied back) syncs the WAL, copies it into
 * sluice.db and syncs that, so after one everything committed before it is in sluice.db on disk,
 * whatever becomes of the WAL. Only then may the storage group commit the log offsets of those
 * writes: anything SQLite loses is re-read from the log. One checkpoint (two fsyncs) per interval,
 * however many transactions it covers, instead of an fsync per commit.
 *
 * The checkpoints are PASSIVE: they never wait for readers. One that a reader holds back
 * (the main thread reading an older snapshot) is not complete and proves nothing; the next one does.
 */
export class DurableCheckpoint {
  /** The last request the worker handled (committed, or refused: those need no durability). */
  private handledThrough = 0;
  private reportedThrough = 0;
  private readonly checkpoint;

  constructor(db: Db, private readonly durable: (throughId: number) => void) {
    this.checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
  }

  /** The worker finished every request up to `id`. */
  handled(id: number): void {
    if (id > this.handledThrough) this.handledThrough = id;
  }

  /** Checkpoints now; when complete, reports every handled request as durable. Returns whether it was complete. */
  run(): boolean {
    const through = this.handledThrough;
    const { busy, log, checkpointed } = this.checkpoint.get() as { busy: number; log: number; checkpointed: number };
    const complete = busy === 0 && checkpointed === log;
    if (complete && through > this.reportedThrough) {
      this.reportedThrough = through;
      this.durable(through);
    }
    return complete;
  }
}
