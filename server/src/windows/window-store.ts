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
}

export interface WindowQuery {
  rule?: string;
  group?: string;
  from: number;
  to: number;
  limit: number;
}

/** Window results in SQLite, keyed by (rule, node, group, start): storing one again replaces it. */
export class WindowStore {
  private readonly upsert;
  private readonly select;

  constructor(db: Db) {
    this.upsert = db.prepare(`INSERT INTO window_results (rule, node, grp, start, end, vals, final, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule, node, grp, start) DO UPDATE SET
      end = excluded.end, vals = excluded.vals, final = excluded.final, updated_at = excluded.updated_at
      WHERE NOT (window_results.final = 1 AND excluded.final = 0)`);
    this.select = db.prepare(`SELECT rule, node, grp, start, end, vals, final FROM window_results
      WHERE (@rule IS NULL OR rule = @rule) AND (@group IS NULL OR grp = @group) AND start >= @from AND start <= @to
      ORDER BY start DESC, rule, node, grp LIMIT @limit`);
  }

  /** `job` is `<rule>/<node>` as the operator names it. An early result never replaces a final one. */
  save(r: WindowResult, now: number): void {
    const slash = r.rule.lastIndexOf('/');
    this.upsert.run(r.rule.slice(0, slash), r.rule.slice(slash + 1), r.group, r.start, r.end, JSON.stringify(r.values), r.final ? 1 : 0, now);
  }

  /** Results whose start is in [from, to], newest `limit`, in ascending start. */
  query(q: WindowQuery): StoredWindowResult[] {
    const rows = this.select.all({ rule: q.rule ?? null, group: q.group ?? null, from: q.from, to: q.to, limit: q.limit }) as
      { rule: string; node: string; grp: string; start: number; end: number; vals: string; final: number }[];
    return rows.reverse().map((r) => ({ rule: r.rule, node: r.node, group: r.grp, start: r.start, end: r.end, values: JSON.parse(r.vals) as Record<string, number | null>, final: r.final === 1 }));
  }
}
