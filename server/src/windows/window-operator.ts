import { addValue, emptyStats, isPercentile, mergeStats, newDigest, result, type AggregateOp, type FieldStats } from './aggregates.js';
import { MinHeap } from './min-heap.js';

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
  /** Open windows (all groups) at most; beyond it new windows are refused with an error. */
  maxOpenWindows: number;
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
  /** Session windows: starts of earlier results this one absorbed (a late event bridged them). */
  replaces?: number[];
}

export interface LateEvent {
  rule: string;
  group: string;
  ts: number;
  watermark: number;
}

export class WindowLimitError extends Error {
  override readonly name = 'WindowLimitError';
}

export interface WindowState {
  group: string;
  start: number;
  end: number;
  stats: FieldStats[];
  fired: boolean;
  /** A final result already went out for this window, or for a session it absorbed. */
  emitted?: boolean;
  /** Sessions: starts of emitted sessions this one absorbed. */
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

  constructor(
    readonly spec: WindowJobSpec,
    private readonly emit: (r: WindowResult) => void,
    private readonly late: (e: LateEvent) => void,
  ) {
    this.fields = spec.aggregates.map((a) => a.field);
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

  /** Takes one event at processing time `now`; fires what the new watermark completes. */
  process(event: WindowEvent, now: number): void {
    const p = this.partitionMax.get(event.partition);
    if (!p) this.partitionMax.set(event.partition, { maxTs: event.ts, seenAt: now });
    else {
      if (event.ts > p.maxTs) p.maxTs = event.ts;
      p.seenAt = now;
    }
    if (this.spec.window.kind === 'session') this.addToSession(event);
    else this.addToWindows(event);
    this.advance(now);
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
      for (const [group, windows] of this.groups) for (const w of windows) if (!w.fired) this.emitWindow(group, w, false, false);
    }
  }

  private addToWindows(event: WindowEvent): void {
    const { window } = this.spec;
    const size = window.kind === 'tumbling' ? window.size : (window as { size: number }).size;
    const slide = window.kind === 'sliding' ? window.slide : size;
    let accepted = false;
    // Every window [start, start + size) with start ≡ 0 (mod slide) that holds ts.
    const lastStart = event.ts - mod(event.ts, slide);
    for (let start = lastStart; start > event.ts - size; start -= slide) {
      const end = start + size;
      if (end + this.spec.allowedLatenessMs <= this.currentWatermark) continue;
      const w = this.windowFor(event.group, start, end);
      this.add(w, event);
      accepted = true;
      if (w.fired) this.emitWindow(event.group, w, true, true);
    }
    if (!accepted) this.late({ rule: this.spec.rule, group: event.group, ts: event.ts, watermark: this.currentWatermark });
  }

  private addToSession(event: WindowEvent): void {
    const gap = (this.spec.window as { gap: number }).gap;
    let start = event.ts;
    let end = event.ts + gap;
    if (end + this.spec.allowedLatenessMs <= this.currentWatermark) {
      this.late({ rule: this.spec.rule, group: event.group, ts: event.ts, watermark: this.currentWatermark });
      return;
    }
    const sessions = this.groups.get(event.group) ?? [];
    // The common case: the event extends the one open session it touches, in place.
    let touching = -1;
    let touches = 0;
    for (let i = 0; i < sessions.length; i++) {
      const s = sessions[i]!;
      if (s.start < end && start < s.end) { touching = i; touches++; }
    }
    if (touches === 1 && !sessions[touching]!.fired) {
      const s = sessions[touching]!;
      if (start < s.start) s.start = start;
      this.add(s, event);
      if (end > s.end) {
        s.end = end;
        this.schedule(s); // the entries for the old end are skipped when they come up
      }
      return;
    }
    const merged: WindowState[] = [];
    const kept: WindowState[] = [];
    for (const s of sessions) (s.start < end && start < s.end ? merged : kept).push(s);
    // Check the limit before anything changes: the merged sessions give their places back.
    this.open -= merged.length;
    try {
      this.reserve();
    } catch (err) {
      this.open += merged.length;
      throw err;
    }
    const stats = this.newStats();
    let wasFired = false;
    const replaces: number[] = [];
    for (const s of merged) {
      s.dead = true;
      start = Math.min(start, s.start);
      end = Math.max(end, s.end);
      s.stats.forEach((st, i) => mergeStats(stats[i]!, st));
      if (s.fired || s.emitted) { wasFired = true; replaces.push(s.start, ...(s.replaces ?? [])); }
    }
    const absorbed = replaces.filter((s) => s !== start);
    const session: WindowState = { group: event.group, start, end, stats, fired: false, emitted: wasFired, ...(absorbed.length > 0 ? { replaces: absorbed } : {}) };
    this.add(session, event);
    this.schedule(session);
    kept.push(session);
    kept.sort((a, b) => a.start - b.start);
    this.groups.set(event.group, kept);
    // A late event that lands in (or bridges into) emitted sessions updates the result at once
    // when the merged session is complete; otherwise it fires, as an update, when it completes.
    if (wasFired && end <= this.currentWatermark) {
      session.fired = true;
      this.emitWindow(event.group, session, true, true);
    }
  }

  private windowFor(group: string, start: number, end: number): WindowState {
    let windows = this.groups.get(group);
    if (!windows) this.groups.set(group, (windows = []));
    for (const w of windows) if (w.start === start) return w;
    this.reserve();
    const w: WindowState = { group, start, end, stats: this.newStats(), fired: false };
    this.schedule(w);
    // Kept in start order, so windows fire in the order they end.
    let i = windows.length;
    while (i > 0 && windows[i - 1]!.start > start) i--;
    windows.splice(i, 0, w);
    return w;
  }

  private reserve(): void {
    if (this.open >= this.spec.maxOpenWindows) {
      throw new WindowLimitError(`rule "${this.spec.rule}" has ${this.open} open windows, its limit (maxOpenWindows); the event is refused`);
    }
    this.open++;
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
    this.emit({ rule: this.spec.rule, group, start: w.start, end: w.end, values, final, update, ...(final && w.replaces ? { replaces: w.replaces } : {}) });
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

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}
