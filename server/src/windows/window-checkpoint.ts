import type { Db } from '../storage/database.js';
import type { EngineSnapshot } from './window-engine.js';

export interface Checkpoint {
  /**
   * Per partition of the telemetry topic: the next offset the rules group is to process. As
   * loaded, a partition the checkpoint does not cover is a hole (undefined): it is read from the
   * earliest offset.
   */
  offsets: number[];
  state: EngineSnapshot;
  /**
   * Per partition of the `windows` topic: where it ended when the state was taken — the results
   * appended after it are the ones a resume from here emits again (window-results-topic.ts).
   * Absent in checkpoints of older versions.
   */
  windowsEnd?: number[];
}

/**
 * The window engine's state together with the offsets it reflects, in one row replaced by one
 * statement: either both are saved or neither. After a crash the rules group resumes from these
 * offsets with this state, so every window result comes out again exactly as it would have, and
 * storing it again replaces the same row (exactly-once results).
 */
export class WindowCheckpoint {
  private readonly upsert;
  private readonly select;

  constructor(db: Db) {
    this.upsert = db.prepare(`INSERT INTO window_checkpoint (id, offsets, state, saved_at, windows_end) VALUES (1, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET offsets = excluded.offsets, state = excluded.state, saved_at = excluded.saved_at, windows_end = excluded.windows_end`);
    this.select = db.prepare('SELECT offsets, state, windows_end FROM window_checkpoint WHERE id = 1');
  }

  load(): Checkpoint | undefined {
    const row = this.select.get() as { offsets: string; state: string; windows_end: string | null } | undefined;
    if (!row) return undefined;
    const checkpoint: Checkpoint = { offsets: coveredOffsets(JSON.parse(row.offsets)), state: JSON.parse(row.state, revive) as EngineSnapshot };
    const windowsEnd = row.windows_end === null ? undefined : (JSON.parse(row.windows_end) as unknown);
    if (Array.isArray(windowsEnd) && windowsEnd.every(isOffset)) checkpoint.windowsEnd = windowsEnd;
    return checkpoint;
  }

  save(c: Checkpoint, now: number): void {
    this.upsert.run(JSON.stringify(denseOffsets(c.offsets)), JSON.stringify(c.state, replace), now, c.windowsEnd ? JSON.stringify(c.windowsEnd) : null);
  }
}

const isOffset = (o: unknown): o is number => Number.isSafeInteger(o) && (o as number) >= 0;

/**
 * The offsets to store: no holes and no null. JSON writes a sparse array's holes as `null`, and a
 * `null` read back as an offset once sent the rules group past the end of its partition. A
 * partition not processed yet has processed nothing: its next offset is 0, the first one.
 */
function denseOffsets(offsets: readonly (number | undefined)[]): number[] {
  return Array.from({ length: offsets.length }, (_, p) => (isOffset(offsets[p]) ? offsets[p] : 0));
}

/** Stored offsets as a sparse array: what is not an offset (`null` from older versions) is a hole. */
function coveredOffsets(stored: unknown): number[] {
  const out: number[] = [];
  if (Array.isArray(stored)) stored.forEach((o: unknown, p) => { if (isOffset(o)) out[p] = o; });
  return out;
}

// JSON has no Infinity or NaN, which empty aggregates hold: they travel as tagged strings.
function replace(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return `\u0000${value}`;
  return value;
}

function revive(_key: string, value: unknown): unknown {
  if (typeof value === 'string' && value.charCodeAt(0) === 0) return Number(value.slice(1));
  return value;
}
