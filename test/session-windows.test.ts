import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../server/src/storage/database.js';
import { WindowCheckpoint } from '../server/src/windows/window-checkpoint.js';
import { WindowOperator, type LateEvent, type WindowJobSpec, type WindowResult } from '../server/src/windows/window-operator.js';
import { tempDir } from './support/test-server.js';

/**
 * Session windows against a batch computation written here, from the definition in
 * rules/README.md: an event at t keeps its session open until t + gap, and sessions that touch
 * are one (as in Flink and Kafka Streams).
 */

interface Event { group: string; ts: number; v: number; jitter: number }

const AGGREGATES: WindowJobSpec['aggregates'] = [
  { name: 'count', op: 'count' }, { name: 'sum', op: 'sum', field: 'v' }, { name: 'min', op: 'min', field: 'v' },
  { name: 'max', op: 'max', field: 'v' }, { name: 'first_t', op: 'first', field: 't' }, { name: 'last_t', op: 'last', field: 't' },
];

interface Session { group: string; start: number; end: number; values: Record<string, number> }

/** Sort each group's events by time; an event at most one gap after the session's last event belongs to it. */
function batchSessions(events: readonly Event[], gap: number): Session[] {
  const sessions: Session[] = [];
  const groups = [...new Set(events.map((e) => e.group))].sort();
  for (const group of groups) {
    const sorted = events.filter((e) => e.group === group).sort((a, b) => a.ts - b.ts);
    let current: { start: number; last: number; vs: number[] } | undefined;
    const close = () => {
      if (!current) return;
      const { start, last, vs } = current;
      sessions.push({ group, start, end: last + gap, values: {
        count: vs.length, sum: vs.reduce((a, b) => a + b, 0), min: Math.min(...vs), max: Math.max(...vs), first_t: start, last_t: last,
      } });
    };
    for (const e of sorted) {
      if (current && e.ts <= current.last + gap) {
        current.last = e.ts;
        current.vs.push(e.v);
      } else {
        close();
        current = { start: e.ts, last: e.ts, vs: [e.v] };
      }
    }
    close();
  }
  return sessions;
}

/**
 * What a consumer of the results keeps, as the window store does: a result replaces the one of the
 * same start, a final one also deletes those it `replaces`; a partial one never replaces a final one.
 */
function keptResults(results: readonly WindowResult[]): WindowResult[] {
  const rows = new Map<string, WindowResult>();
  for (const r of results) {
    if (r.final) for (const start of r.replaces ?? []) rows.delete(`${r.group}/${start}`);
    const key = `${r.group}/${r.start}`;
    if (!r.final && rows.get(key)?.final) continue;
    rows.set(key, r);
  }
  return [...rows.values()].sort((a, b) => a.group.localeCompare(b.group) || a.start - b.start);
}

const FLUSH_GROUP = '~flush';

interface Run { gap: number; outOfOrdernessMs: number; allowedLatenessMs: number; earlyEveryMs: number }

function sessionOperator(run: Run, results: WindowResult[], late: LateEvent[]): WindowOperator {
  return new WindowOperator({
    rule: 'r/w', window: { kind: 'session', gap: run.gap }, aggregates: AGGREGATES, outOfOrdernessMs: run.outOfOrdernessMs,
    allowedLatenessMs: run.allowedLatenessMs, idleTimeoutMs: 1e12, earlyEveryMs: run.earlyEveryMs, maxOpenWindows: 10_000,
  }, (r) => results.push(r), (e) => late.push(e));
}

/**
 * Arrival by ts + jitter, the jitter under outOfOrderness + allowedLateness: no event comes more
 * than the allowed lateness behind the watermark. The last event, far ahead, fires every session.
 */
function arrivals(events: readonly Event[], run: Run): { group: string; ts: number; v: number }[] {
  const bound = run.outOfOrdernessMs + run.allowedLatenessMs;
  const arrivalTime = (e: Event) => e.ts + Math.floor((e.jitter * bound) / 1000);
  const order = [...events].sort((a, b) => arrivalTime(a) - arrivalTime(b));
  return [...order, { group: FLUSH_GROUP, ts: 1e7, v: 0 }];
}

function feed(op: WindowOperator, events: readonly { group: string; ts: number; v: number }[], firstNow: number): void {
  events.forEach((e, i) => op.process({ group: e.group, ts: e.ts, partition: 0, values: { v: e.v, t: e.ts } }, firstNow + i));
}

const eventArb = fc.record({
  group: fc.constantFrom('a', 'b'),
  ts: fc.integer({ min: 0, max: 300 }),
  v: fc.integer({ min: -50, max: 50 }),
  // Thousandths of the bound: most events on time, some as late as allowed.
  jitter: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999 }), fc.integer({ min: 900, max: 999 })),
});
const runArb = fc.record({
  gap: fc.integer({ min: 1, max: 60 }),
  outOfOrdernessMs: fc.integer({ min: 0, max: 60 }),
  allowedLatenessMs: fc.integer({ min: 0, max: 150 }),
  earlyEveryMs: fc.constantFrom(0, 3),
});

const asSessions = (rows: readonly WindowResult[]): Session[] =>
  rows.filter((r) => r.group !== FLUSH_GROUP).map((r) => ({ group: r.group, start: r.start, end: r.end, values: r.values as Record<string, number> }));

function byGroup(results: readonly WindowResult[]): Record<string, WindowResult[]> {
  const out: Record<string, WindowResult[]> = {};
  for (const r of results) (out[r.group] ??= []).push(r);
  return out;
}

describe('session windows (properties)', () => {
  it('any arrival order within the lateness bound gives the sessions of the batch computation, all final', () => {
    fc.assert(fc.property(fc.array(eventArb, { minLength: 1, maxLength: 80 }), runArb, (events, run) => {
      const results: WindowResult[] = [];
      const late: LateEvent[] = [];
      feed(sessionOperator(run, results, late), arrivals(events, run), 0);
      expect(late).toEqual([]);
      const kept = keptResults(results).filter((r) => r.group !== FLUSH_GROUP);
      expect(kept.every((r) => r.final)).toBe(true);
      expect(asSessions(kept)).toEqual(batchSessions(events, run.gap));
    }), { numRuns: 1000 });
  });

  it('no event is in two final sessions, and none is in none', () => {
    fc.assert(fc.property(fc.array(eventArb, { minLength: 1, maxLength: 80 }), runArb, (events, run) => {
      const results: WindowResult[] = [];
      feed(sessionOperator(run, results, []), arrivals(events, run), 0);
      const finals = keptResults(results).filter((r) => r.final && r.group !== FLUSH_GROUP);
      for (const e of events) {
        const holding = finals.filter((r) => r.group === e.group && r.start <= e.ts && e.ts < r.end);
        expect(holding).toHaveLength(1);
      }
      expect(finals.reduce((n, r) => n + r.values.count!, 0)).toBe(events.length);
    }), { numRuns: 4000 });
  });

  describe('through a checkpoint', () => {
    const db = openDatabase(tempDir('sluice-session-checkpoint-'));
    const checkpoint = new WindowCheckpoint(db);
    afterAll(() => db.close());

    it('a run stopped anywhere and resumed from the window checkpoint gives the results of a run without a stop', () => {
      fc.assert(fc.property(fc.array(eventArb, { minLength: 1, maxLength: 60 }), runArb, fc.nat(), (events, run, cutSeed) => {
        const order = arrivals(events, run);
        const cut = cutSeed % (order.length + 1);
        const whole: WindowResult[] = [];
        feed(sessionOperator(run, whole, []), order, 0);

        const resumed: WindowResult[] = [];
        const first = sessionOperator(run, resumed, []);
        feed(first, order.slice(0, cut), 0);
        checkpoint.save({ offsets: [cut], state: { operators: [['r/w', 'f', first.snapshot()]], lateCount: 0 } }, 0);
        const loaded = checkpoint.load()!;
        const second = sessionOperator(run, resumed, []);
        second.restore(loaded.state.operators[0]![2]);
        feed(second, order.slice(cut), cut);
        // Windows of different groups that end together may fire in either order; a group's own keep theirs.
        expect(byGroup(resumed)).toEqual(byGroup(whole));
      }), { numRuns: 300 });
    });
  });
});
