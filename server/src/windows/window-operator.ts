import { addValue, emptyStats, isPercentile, mergeStats, newDigest, result, type AggregateOp, type FieldStats } from './aggregates.js';
import { MinHeap } from './min-heap.js';
import { DEFAULT_MAX_WINDOW_GROUPS, RuleLimitError } from '../rules/rule-limits.js';

/**
 * A session whose start moved earlier after early results went out remembers each start they went
 * out under, to supersede with its final result. Past this many it gets no more early results
 * until it fires, so a device sending ever earlier events cannot grow the list without bound.
 */
const MAX_PENDING_REPLACED = 100;

export type WindowKind =
  | { kind: 'tumbling'; size: number }
  | { kind: 'sliding'; size: number; slide: number }
  | { kind: 'session'; gap: number };

export interface AggregateSpec {
  /** The name of the result value, e.g. `avg_temperature`. */
  name: string;
  op: AggregateOp;
  /** The value aggregated; `count` may leave it out (it then counts events). */
  field?: string;
}

export interface WindowJobSpec {
  rule: string;
  window: WindowKind;
  aggregates: AggregateSpec[];
  /** How far out of order events may arrive: the watermark trails the newest event time by this. */
  outOfOrdernessMs: number;
  /** How long after a window fired late events still update it. */
  allowedLatenessMs: number;
  /** A partition that sent nothing for this long (processing time) no longer holds the watermark back. */
  idleTimeoutMs: number;
  /** Partial results of open windows every this often (processing time); 0: final results only. */
  earlyEveryMs: number;
  /** Open windows (all groups) at most; an event that would open more is refused with an error. */
  maxOpenWindows: number;
  /** Groups with open windows at most (default DEFAULT_MAX_WINDOW_GROUPS); an event of a new group beyond it is refused. */
  maxGroups?: number;
}

export interface WindowEvent {
  group: string;
  ts: number;
  partition: number;
  values: Readonly<Record<string, unknown>>;
}

export interface WindowResult {
  rule: string;
  group: string;
  start: number;
  end: number;
  values: Record<string, number | null>;
  /** false for an early, partial result of a window still open. */
  final: boolean;
  /** true when a late event changed a result already emitted. */
  update: boolean;
  /**
   * Session windows, final results only: the starts of earlier results (final or early, same rule
   * and group) this one supersedes — a late event bridged their sessions into this one, or moved
   * this session's start earlier. Their events are counted here now: consumers drop those results.
   */
  replaces?: number[];
}

export interface LateEvent {
  rule: string;
  group: string;
  ts: number;
  watermark: number;
}

/** An event refused because it would open windows or groups beyond the operator's limits; it left no state behind. */
export class WindowLimitError extends RuleLimitError {
  override readonly name = 'WindowLimitError';
  constructor(limit: 'window_open_windows' | 'window_groups', message: string) {
    super(limit, message);
  }
}

export interface WindowState {
  group: string;
  start: number;
  end: number;
  stats: FieldStats[];
  fired: boolean;
  /** A final result already went out for this window, or for a session it absorbed. */
  emitted?: boolean;
  /** Sessions: a result (early or final) went out under the current start. */
  shown?: boolean;
  /**
   * Sessions: starts under which results (early or final) went out that this session supersedes —
   * sessions it absorbed, or itself before a late event moved its start earlier. Sent with its
   * next final result, then forgotten (so the list stays as short as the merges since).
   */
  replaces?: number[];
  /** Merged into another session: its queue entries are to be skipped. */
  dead?: boolean;
}

/**
 * One rule's windowed aggregation on event time, in the manner of Flink: events are assigned to
 * windows (tumbling, sliding, or sessions that merge), a watermark per partition trails the newest
 * event time by the allowed out-of-orderness, the job's watermark is the minimum over partitions
 * that are not idle, and a window fires once the watermark passes its end. Within the allowed
 * lateness a late event updates a fired window (emitted again, marked as an update); later than
 * that it goes to the late output. A window's state is dropped once its lateness has passed.
 */
export class WindowOperator {
  private readonly groups = new Map<string, WindowState[]>();
  /** Windows by end (when they fire) and by end + lateness (when their state goes). */
  private readonly fireQueue = new MinHeap<WindowState>();
  private readonly dropQueue = new MinHeap<WindowState>();
  private readonly partitionMax = new Map<number, { maxTs: number; seenAt: number }>();
  private open = 0;
  private currentWatermark = -Infinity;
  private lastEarlyAt = -Infinity;
  private readonly fields: (string | undefined)[];
  private readonly maxGroups: number;

  constructor(
    readonly spec: WindowJobSpec,
    private readonly emit: (r: WindowResult) => void,
    private readonly late: (e: LateEvent) => void,
  ) {
    this.fields = spec.aggregates.map((a) => a.field);
    this.maxGroups = spec.maxGroups ?? DEFAULT_MAX_WINDOW_GROUPS;
    this.digests = spec.aggregates.map((a) => isPercentile(a.op));
  }

  private readonly digests: boolean[];

  private newStats(): FieldStats[] {
    return this.digests.map((d) => emptyStats(d));
  }

  snapshot(): OperatorSnapshot {
    return {
      groups: [...this.groups].map(([g, ws]) => [g, ws.map((w) => ({
        ...w, stats: w.stats.map((st) => (st.digest ? { ...st, digest: st.digest.toArray() as never } : { ...st })),
      }))]),
      partitions: [...this.partitionMax].map(([p, v]) => [p, { ...v }]),
      watermark: this.currentWatermark,
      open: this.open,
      lastEarlyAt: this.lastEarlyAt,
    };
  }

  restore(s: OperatorSnapshot): void {
    this.groups.clear();
    this.fireQueue.clear();
    this.dropQueue.clear();
    for (const [g, ws] of s.groups) {
      for (const w of ws) {
        for (const st of w.stats) {
          if (!st.digest) continue;
          const digest = newDigest();
          digest.push_centroid(st.digest as unknown as { mean: number; n: number }[]);
          st.digest = digest;
        }
      }
      this.groups.set(g, ws);
      for (const w of ws) {
        if (!w.fired) this.fireQueue.push(w.end, w);
        if (this.spec.allowedLatenessMs > 0) this.dropQueue.push(w.end + this.spec.allowedLatenessMs, w);
      }
    }
    this.partitionMax.clear();
    for (const [p, v] of s.partitions) this.partitionMax.set(p, v);
    this.currentWatermark = s.watermark;
    this.open = s.open;
    this.lastEarlyAt = s.lastEarlyAt;
  }

  get watermark(): number {
    return this.currentWatermark;
  }

  get openWindows(): number {
    return this.open;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  /**
   * Takes one event at processing time `now`; fires what the new watermark completes. An event
   * beyond the limits throws WindowLimitError and is in no window; its time still moves the
   * watermark on, so that windows keep firing and make room again.
   */
  process(event: WindowEvent, now: number): void {
    const p = this.partitionMax.get(event.partition);
    if (!p) this.partitionMax.set(event.partition, { maxTs: event.ts, seenAt: now });
    else {
      if (event.ts > p.maxTs) p.maxTs = event.ts;
      p.seenAt = now;
    }
    let refused: WindowLimitError | undefined;
    try {
      if (this.spec.window.kind === 'session') this.addToSession(event);
      else this.addToWindows(event);
    } catch (err) {
      if (!(err instanceof WindowLimitError)) throw err;
      refused = err;
    }
    this.advance(now);
    if (refused) throw refused;
  }

  /** Recomputes the watermark (idle partitions drop out), fires and cleans up; emits early results when due. */
  advance(now: number): void {
    let active = Infinity;
    let all = -Infinity;
    for (const p of this.partitionMax.values()) {
      const w = p.maxTs - this.spec.outOfOrdernessMs;
      if (w > all) all = w;
      if (now - p.seenAt < this.spec.idleTimeoutMs && w < active) active = w;
    }
    // Every partition idle: nothing is holding results back any more.
    const next = active === Infinity ? all : active;
    if (next > this.currentWatermark) {
      this.currentWatermark = next;
      this.fire();
    }
    if (this.spec.earlyEveryMs > 0 && now - this.lastEarlyAt >= this.spec.earlyEveryMs) {
      this.lastEarlyAt = now;
      for (const [group, windows] of this.groups) {
        for (const w of windows) if (!w.fired && (w.replaces?.length ?? 0) < MAX_PENDING_REPLACED) this.emitWindow(group, w, false, false);
      }
    }
  }

  private addToWindows(event: WindowEvent): void {
    const { window } = this.spec;
    const size = window.kind === 'tumbling' ? window.size : (window as { size: number }).size;
    const slide = window.kind === 'sliding' ? window.slide : size;
    // Every window [start, start + size) with start ≡ 0 (mod slide) that holds ts and is not past its lateness.
    const lastStart = event.ts - mod(event.ts, slide);
    const firstStart = event.ts - size;
    const open = this.currentWatermark - this.spec.allowedLatenessMs - size;
    const windows = this.groups.get(event.group);
    // First how many windows the event would open, so that a refused event changes nothing.
    let accepted = false;
    let opens = 0;
    for (let start = lastStart; start > firstStart; start -= slide) {
      if (start <= open) continue;
      accepted = true;
      if (!windows || findWindow(windows, start) === undefined) opens++;
    }
    if (!accepted) {
      this.late({ rule: this.spec.rule, group: event.group, ts: event.ts, watermark: this.currentWatermark });
      return;
    }
    if (opens > 0) this.reserve(event.group, windows === undefined, opens);
    for (let start = lastStart; start > firstStart; start -= slide) {
      if (start <= open) continue;
      const w = this.windowFor(event.group, start, start + size);
      this.add(w, event);
      if (w.fired) this.emitWindow(event.group, w, true, true);
      else if (w.end <= this.currentWatermark) {
        // A late event (within the lateness) opened a window the watermark has passed already:
        // complete, it fires now, not whenever the watermark next moves (maybe never).
        w.fired = true;
        this.emitWindow(event.group, w, true, false);
      }
    }
  }

  private addToSession(event: WindowEvent): void {
    const gap = (this.spec.window as { gap: number }).gap;
    let start = event.ts;
    let end = event.ts + gap;
    const sessions = this.groups.get(event.group) ?? [];
    // An event at t keeps its session open until t + gap, and one at exactly t + gap still belongs
    // to it: sessions that touch are one (rules/README.md; so in Flink and Kafka Streams).
    const touches = (s: WindowState) => s.start <= end && start <= s.end;
    let touching = -1;
    let count = 0;
    for (let i = 0; i < sessions.length; i++) if (touches(sessions[i]!)) { touching = i; count++; }
    // Late only when it is past the lateness on its own and touches no session still kept: a
    // session it touches takes it in (Flink merges first, then asks whether the result is late).
    if (count === 0 && end + this.spec.allowedLatenessMs <= this.currentWatermark) {
      this.late({ rule: this.spec.rule, group: event.group, ts: event.ts, watermark: this.currentWatermark });
      return;
    }
    // The common case: the event extends the one open session it touches, in place.
    if (count === 1 && !sessions[touching]!.fired) {
      const s = sessions[touching]!;
      if (start < s.start) {
        // What went out under the old start is superseded by what will go out under the new one.
        if (s.shown) { s.replaces = [...(s.replaces ?? []), s.start]; s.shown = false; }
        s.start = start;
      }
      this.add(s, event);
      if (end > s.end) {
        s.end = end;
        this.schedule(s); // the entries for the old end are skipped when they come up
      }
      return;
    }
    const merged: WindowState[] = [];
    const kept: WindowState[] = [];
    for (const s of sessions) (touches(s) ? merged : kept).push(s);
    // Check the limits before anything changes: the merged sessions give their places back.
    this.open -= merged.length;
    try {
      this.reserve(event.group, sessions.length === 0, 1);
    } catch (err) {
      this.open += merged.length;
      throw err;
    }
    const stats = this.newStats();
    let wasFired = false;
    const shownStarts = new Set<number>();
    for (const s of merged) {
      s.dead = true;
      start = Math.min(start, s.start);
      end = Math.max(end, s.end);
      s.stats.forEach((st, i) => mergeStats(stats[i]!, st));
      if (s.fired || s.emitted) wasFired = true;
      // A fired session was shown (`shown` is absent from checkpoints of older versions).
      if (s.shown || s.fired) shownStarts.add(s.start);
      for (const r of s.replaces ?? []) shownStarts.add(r);
    }
    const shown = shownStarts.delete(start);
    const absorbed = [...shownStarts].sort((a, b) => a - b);
    const session: WindowState = {
      group: event.group, start, end, stats, fired: false, emitted: wasFired,
      ...(shown ? { shown } : {}), ...(absorbed.length > 0 ? { replaces: absorbed } : {}),
    };
    this.add(session, event);
    this.schedule(session);
    kept.push(session);
    kept.sort((a, b) => a.start - b.start);
    this.groups.set(event.group, kept);
    // A late event that lands in (or bridges into) emitted sessions updates the result at once
    // when the merged session is complete; otherwise it fires, as an update, when it completes.
    // A late event on its own (within the lateness) makes a session complete already: it fires now.
    if (end <= this.currentWatermark) {
      session.fired = true;
      this.emitWindow(event.group, session, true, wasFired);
    }
  }

  /** The window of `group` that starts at `start`, or a new one (its place reserved already). */
  private windowFor(group: string, start: number, end: number): WindowState {
    let windows = this.groups.get(group);
    if (!windows) this.groups.set(group, (windows = []));
    const found = findWindow(windows, start);
    if (found !== undefined) return windows[found]!;
    const w: WindowState = { group, start, end, stats: this.newStats(), fired: false };
    this.schedule(w);
    // Kept in start order, so windows fire in the order they end.
    let i = windows.length;
    while (i > 0 && windows[i - 1]!.start > start) i--;
    windows.splice(i, 0, w);
    return w;
  }

  /** Takes `count` places among the open windows, for a group that may be new; throws when the limits say no. */
  private reserve(group: string, newGroup: boolean, count: number): void {
    if (newGroup && this.groups.size >= this.maxGroups) {
      throw new WindowLimitError('window_groups', `rule "${this.spec.rule}" has open windows for ${this.groups.size} groups, its limit; the event of the new group ${JSON.stringify(group)} is refused`);
    }
    if (this.open + count > this.spec.maxOpenWindows) {
      throw new WindowLimitError('window_open_windows', `rule "${this.spec.rule}" has ${this.open} open windows, its limit being ${this.spec.maxOpenWindows} (maxOpenWindows); the event is refused`);
    }
    this.open += count;
  }

  private add(w: WindowState, event: WindowEvent): void {
    for (let i = 0; i < this.fields.length; i++) {
      const field = this.fields[i];
      if (field === undefined) { addValue(w.stats[i]!, 1, event.ts); continue; }
      const v = event.values[field];
      if (typeof v === 'number') addValue(w.stats[i]!, v, event.ts);
      else if (typeof v === 'boolean') addValue(w.stats[i]!, v ? 1 : 0, event.ts);
    }
  }

  private schedule(w: WindowState): void {
    this.fireQueue.push(w.end, w);
    // Without lateness a window's state goes when it fires: no second queue entry needed.
    if (this.spec.allowedLatenessMs > 0) this.dropQueue.push(w.end + this.spec.allowedLatenessMs, w);
  }

  private drop(w: WindowState): void {
    w.dead = true;
    this.open--;
    const windows = this.groups.get(w.group);
    if (!windows) return;
    const i = windows.indexOf(w);
    if (i >= 0) windows.splice(i, 1);
    if (windows.length === 0) this.groups.delete(w.group);
  }

  /** Fires the windows the watermark has passed, in end order, and drops those past their lateness. */
  private fire(): void {
    const wm = this.currentWatermark;
    for (let k = this.fireQueue.peekKey(); k !== undefined && k <= wm; k = this.fireQueue.peekKey()) {
      const w = this.fireQueue.pop()!;
      if (w.dead || w.fired || k !== w.end) continue;
      w.fired = true;
      this.emitWindow(w.group, w, true, w.emitted === true);
      if (this.spec.allowedLatenessMs === 0) this.drop(w);
    }
    for (let k = this.dropQueue.peekKey(); k !== undefined && k <= wm; k = this.dropQueue.peekKey()) {
      const w = this.dropQueue.pop()!;
      if (w.dead || k !== w.end + this.spec.allowedLatenessMs) continue;
      this.drop(w);
    }
  }

  private emitWindow(group: string, w: WindowState, final: boolean, update: boolean): void {
    const values: Record<string, number | null> = {};
    this.spec.aggregates.forEach((a, i) => { values[a.name] = result(w.stats[i]!, a.op); });
    // A final result takes the superseded starts downstream once; early ones never do (a partial
    // result must not take the place of final ones).
    const replaces = final ? w.replaces : undefined;
    if (replaces) delete w.replaces;
    if (this.spec.window.kind === 'session') w.shown = true;
    this.emit({ rule: this.spec.rule, group, start: w.start, end: w.end, values, final, update, ...(replaces ? { replaces } : {}) });
  }
}

/** What an operator knows, as plain data: for checkpoints (see window-checkpoint.ts). */
export interface OperatorSnapshot {
  groups: [string, WindowState[]][];
  partitions: [number, { maxTs: number; seenAt: number }][];
  watermark: number;
  open: number;
  lastEarlyAt: number;
}

export function snapshotOperator(op: WindowOperator): OperatorSnapshot {
  return op.snapshot();
}

/** The index of the window starting at `start` in a group's windows (kept in start order), by binary search. */
function findWindow(windows: readonly WindowState[], start: number): number | undefined {
  let lo = 0;
  let hi = windows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const s = windows[mid]!.start;
    if (s === start) return mid;
    if (s < start) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}
