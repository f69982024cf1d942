import type { Db } from '../storage/database.js';
import type { WindowResult } from './window-operator.js';

export interface StoredWindowResult {
  rule: string;
  node: string;
  group: string;
  start: number;
  end: number;
  values: Record<string, number | null>;
  final: boolean;
  /**
   * Only as pushed live and in the `windows` topic, never stored: the starts of earlier results of
   * the same rule, node and group this final one supersedes (session windows merged by a late
   * event); saving it deletes those.
   */
  replaces?: number[];
}

export interface WindowQuery {
  rule?: string;
  group?: string;
  from: number;
  to: number;
  limit: number;
}

/**
 * Window results in SQLite, keyed by (rule, node, group, start): storing one again replaces it,
 * and a final one deletes the results it `replaces`, so that no event is in two final results.
 */
export class WindowStore {
  private readonly upsert;
  private readonly remove;
  private readonly select;
  private readonly write;

  constructor(db: Db) {
    this.upsert = db.prepare(`INSERT INTO window_results (rule, node, grp, start, end, vals, final, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule, node, grp, start) DO UPDATE SET
      end = excluded.end, vals = excluded.vals, final = excluded.final, updated_at = excluded.updated_at
      WHERE NOT (window_results.final = 1 AND excluded.final = 0)`);
    this.remove = db.prepare('DELETE FROM window_results WHERE rule = ? AND node = ? AND grp = ? AND start = ?');
    this.select = db.prepare(`SELECT rule, node, grp, start, end, vals, final FROM window_results
      WHERE (@rule IS NULL OR rule = @rule) AND (@group IS NULL OR grp = @group) AND start >= @from AND start <= @to
      ORDER BY start DESC, rule, node, grp LIMIT @limit`);
    // One transaction (a savepoint inside the storage worker's): the result and what it supersedes.
    this.write = db.transaction((r: WindowResult, now: number) => {
      const slash = r.rule.lastIndexOf('/');
      const rule = r.rule.slice(0, slash);
      const node = r.rule.slice(slash + 1);
      this.upsert.run(rule, node, r.group, r.start, r.end, JSON.stringify(r.values), r.final ? 1 : 0, now);
      if (!r.final) return;
      for (const start of r.replaces ?? []) if (start !== r.start) this.remove.run(rule, node, r.group, start);
    });
  }

  /** `r.rule` is `<rule>/<node>` as the operator names it. An early result never replaces a final one. */
  save(r: WindowResult, now: number): void {
    this.write(r, now);
  }

  /** Results whose start is in [from, to], newest `limit`, in ascending start. */
  query(q: WindowQuery): StoredWindowResult[] {
    const rows = this.select.all({ rule: q.rule ?? null, group: q.group ?? null, from: q.from, to: q.to, limit: q.limit }) as
      { rule: string; node: string; grp: string; start: number; end: number; vals: string; final: number }[];
    return rows.reverse().map((r) => ({ rule: r.rule, node: r.node, group: r.grp, start: r.start, end: r.end, values: JSON.parse(r.vals) as Record<string, number | null>, final: r.final === 1 }));
  }
}
