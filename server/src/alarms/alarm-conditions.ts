import type { Db } from '../storage/database.js';
import type { Severity } from './alarm-store.js';

/** A create condition that holds, message after message: its streak. */
export interface Streak {
  rule: string;
  node: string;
  originator: string;
  /** The alarm type it raises: a clear of that alarm ends the streak. */
  type: string;
  /** The earliest message time of the streak (event time). */
  since: number;
  /** Messages in a row the condition held in. */
  times: number;
  /**
   * When its `for` is met on the server's clock, with `times` already met: then the timer raises
   * the alarm unless a message came first. Null once raised, or with no `for` to wait on.
   */
  dueAt: number | null;
  /**
   * Its `times` and `for` were met (it raised or updated the alarm): every further message of the
   * streak triggers, whatever its time.
   */
  met: boolean;
  /** What the timer raises with: the last message's severity and details, and when (event time) the duration is met. */
  pending: { severity: Severity; details: Record<string, unknown>; metAt?: number } | null;
  /** The node's settings when the streak was last extended (alarmFingerprint). */
  fingerprint: string | null;
}

interface Row {
  key: string; rule: string | null; node: string | null; originator: string | null; type: string | null;
  since: number; times: number; met: number | null; due_at: number | null; pending: string | null; fingerprint: string | null;
}

/**
 * Streaks in SQLite (`alarm_conditions`), one per condition key (rule/node/originator), written
 * in the transaction of the message that changed them; read from SQLite, so memory does not grow
 * with the number of devices. Streaks waiting on a `for` are indexed by due time, so the timer
 * reads only those due, in the order they came due.
 */
export class AlarmConditions {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      get: db.prepare('SELECT * FROM alarm_conditions WHERE key = ?'),
      has: db.prepare('SELECT 1 FROM alarm_conditions WHERE key = ?').pluck(),
      put: db.prepare(`INSERT INTO alarm_conditions (key, rule, node, originator, type, since, times, met, due_at, pending, fingerprint)
        VALUES (@key, @rule, @node, @originator, @type, @since, @times, @met, @dueAt, @pending, @fingerprint)
        ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, node = excluded.node, originator = excluded.originator, type = excluded.type,
          since = excluded.since, times = excluded.times, met = excluded.met, due_at = excluded.due_at, pending = excluded.pending,
          fingerprint = excluded.fingerprint`),
      delete: db.prepare('DELETE FROM alarm_conditions WHERE key = ?'),
      deleteFor: db.prepare('DELETE FROM alarm_conditions WHERE originator = ? AND type = ?'),
      due: db.prepare('SELECT * FROM alarm_conditions WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?'),
      notDue: db.prepare('UPDATE alarm_conditions SET due_at = NULL, pending = NULL WHERE key = ?'),
      met: db.prepare('UPDATE alarm_conditions SET met = 1, due_at = NULL, pending = NULL WHERE key = ?'),
    };
  }

  get(key: string): Streak | undefined {
    const row = this.s.get.get(key) as Row | undefined;
    return row && toStreak(row);
  }

  has(key: string): boolean {
    return this.s.has.get(key) !== undefined;
  }

  put(key: string, s: Streak): void {
    this.s.put.run({ key, ...s, met: s.met ? 1 : 0, pending: s.pending && JSON.stringify(s.pending) });
  }

  /** Ends a streak (its condition stopped holding). */
  delete(key: string): boolean {
    return this.s.delete.run(key).changes > 0;
  }

  /** Ends every streak toward the alarm `type` of `originator` (the alarm was cleared). */
  deleteFor(originator: string, type: string): void {
    this.s.deleteFor.run(originator, type);
  }

  /** Streaks whose `for` is met at `now`, the earliest due first, at most `limit`. */
  due(now: number, limit: number): (Streak & { key: string })[] {
    return (this.s.due.all(now, limit) as Row[]).map((r) => ({ key: r.key, ...toStreak(r) }));
  }

  /** The streak goes on, no longer waiting for the timer (its node changed: its next message decides). */
  notDue(key: string): void {
    this.s.notDue.run(key);
  }

  /** The timer raised it: the streak goes on, met. */
  raised(key: string): void {
    this.s.met.run(key);
  }
}

function toStreak(r: Row): Streak {
  return {
    // Rows written before these columns existed have none: they count on, and are never due.
    rule: r.rule ?? '', node: r.node ?? '', originator: r.originator ?? '', type: r.type ?? '',
    since: r.since, times: r.times, met: r.met === 1, dueAt: r.due_at,
    pending: r.pending === null ? null : JSON.parse(r.pending) as Streak['pending'], fingerprint: r.fingerprint,
  };
}
