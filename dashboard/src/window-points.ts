/** What a chart needs of a window result (live.ts WindowResult). */
export interface WindowIdentity {
  rule: string;
  node: string;
  group: string;
  start: number;
  end: number;
  /** Starts of earlier results (same rule, node and group) this one supersedes: merged session windows. */
  replaces?: number[];
}

/**
 * The window results drawn on one chart: one point per window — the newest result of a window
 * (rule, node, group, start) replaces its earlier ones, and a result that `replaces` other windows
 * takes their points away, so a merged session is drawn once, not beside the sessions it absorbed.
 * At most `max` windows, the oldest shown first forgotten.
 */
export class WindowPoints {
  private readonly points = new Map<string, { end: number; value: number }>();

  constructor(private readonly max = 5000) {}

  /** Takes a result and its value for this chart (null: nothing to draw, but what it replaces still goes). */
  take(w: WindowIdentity, value: number | null): void {
    const id = (start: number) => JSON.stringify([w.rule, w.node, w.group, start]);
    for (const start of w.replaces ?? []) this.points.delete(id(start));
    const key = id(w.start);
    this.points.delete(key); // re-inserted: the newest last
    if (value === null) return;
    this.points.set(key, { end: w.end, value });
    if (this.points.size > this.max) this.points.delete(this.points.keys().next().value!);
  }

  /** The points by window end (the x axis of the chart). */
  byEnd(): Map<number, number> {
    const out = new Map<number, number>();
    for (const p of this.points.values()) out.set(p.end, p.value);
    return out;
  }
}
