import type { Db } from '../storage/database.js';
import type { EngineSnapshot } from './window-engine.js';

export interface Checkpoint {
  /** Per partition of the telemetry topic: the next offset the rules group is to process. */
  offsets: number[];
  state: EngineSnapshot;
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
    this.upsert = db.prepare(`INSERT INTO window_checkpoint (id, offsets, state, saved_at) VALUES (1, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET offsets = excluded.offsets, state = excluded.state, saved_at = excluded.saved_at`);
    this.select = db.prepare('SELECT offsets, state FROM window_checkpoint WHERE id = 1');
  }

  load(): Checkpoint | undefined {
    const row = this.select.get() as { offsets: string; state: string } | undefined;
    if (!row) return undefined;
    return { offsets: JSON.parse(row.offsets) as number[], state: JSON.parse(row.state, revive) as EngineSnapshot };
  }

  save(c: Checkpoint, now: number): void {
    this.upsert.run(JSON.stringify(c.offsets), JSON.stringify(c.state, replace), now);
  }
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
