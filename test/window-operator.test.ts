import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WindowLimitError, WindowOperator, type LateEvent, type WindowJobSpec, type WindowResult } from '../server/src/windows/window-operator.js';

const ALL = [
  { name: 'count', op: 'count' }, { name: 'sum', op: 'sum', field: 'v' }, { name: 'min', op: 'min', field: 'v' },
  { name: 'max', op: 'max', field: 'v' }, { name: 'avg', op: 'avg', field: 'v' }, { name: 'first', op: 'first', field: 'v' },
  { name: 'last', op: 'last', field: 'v' }, { name: 'stddev', op: 'stddev', field: 'v' },
] as WindowJobSpec['aggregates'];

function operator(overrides: Partial<WindowJobSpec> = {}) {
  const results: WindowResult[] = [];
  const late: LateEvent[] = [];
  const op = new WindowOperator({
    rule: 'r', window: { kind: 'tumbling', size: 10 }, aggregates: ALL, outOfOrdernessMs: 0, allowedLatenessMs: 0,
    idleTimeoutMs: 60_000, earlyEveryMs: 0, maxOpenWindows: 10_000, ...overrides,
  }, (r) => results.push(r), (e) => late.push(e));
  const send = (ts: number, v: number, group = 'g', partition = 0, now = 0) => op.process({ group, ts, partition, values: { v } }, now);
  return { op, results, late, send };
}

/** The aggregates computed directly from a list of (ts, v). */
function reference(events: [number, number][]) {
  const vs = events.map(([, v]) => v);
  const n = vs.length;
  const mean = vs.reduce((a, b) => a + b, 0) / n;
  const byTs = [...events].sort((a, b) => a[0] - b[0]);
  return {
    count: n, sum: vs.reduce((a, b) => a + b, 0), min: Math.min(...vs), max: Math.max(...vs), avg: mean,
    first: byTs[0]![1], last: byTs[byTs.length - 1]![1],
    stddev: n < 2 ? null : Math.sqrt(vs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)),
  };
}

const finals = (results: WindowResult[]) => results.filter((r) => r.final);

describe('window operator', () => {
  it('fires a tumbling window once the watermark passes its end, with every aggregate right', () => {
    const { results, send } = operator();
    const events: [number, number][] = [[1, 4], [3, 8], [5, 15], [9, 16]];
    for (const [ts, v] of events) send(ts, v);
    expect(results).toEqual([]);
    send(10, 1);
    expect(results).toHaveLength(1);
    const r = results[0]!;
    expect(r).toMatchObject({ rule: 'r', group: 'g', start: 0, end: 10, final: true, update: false });
    const ref = reference(events);
    for (const [k, v] of Object.entries(ref)) expect(r.values[k]).toBeCloseTo(v as number, 9);
  });

  it('gives the same results when events come out of order within the bound', () => {
    const inOrder = operator({ outOfOrdernessMs: 5 });
    const shuffled = operator({ outOfOrdernessMs: 5 });
    const events: [number, number][] = [[1, 1], [2, 2], [4, 3], [6, 4], [9, 5], [11, 6], [13, 7], [20, 8], [31, 9]];
    for (const [ts, v] of events) inOrder.send(ts, v);
    for (const i of [1, 0, 3, 2, 5, 4, 6, 7, 8]) shuffled.send(events[i]![0], events[i]![1]);
    expect(finals(shuffled.results)).toEqual(finals(inOrder.results));
    expect(shuffled.late).toEqual([]);
  });

  it('updates a fired window with a late event within the allowed lateness, marked as an update', () => {
    const { results, late, send } = operator({ allowedLatenessMs: 10 });
    send(1, 1);
    send(12, 2); // fires [0, 10)
    send(5, 3); // late, within lateness
    expect(late).toEqual([]);
    expect(results.map((r) => [r.start, r.values.sum, r.update])).toEqual([[0, 1, false], [0, 4, true]]);
  });

  it('sends an event later than the allowed lateness to the late output, without changing results', () => {
    const { results, late, send } = operator({ allowedLatenessMs: 5 });
    send(1, 1);
    send(16, 2); // watermark 16: [0,10) fired and its lateness (until 15) is over
    send(3, 100);
    expect(late).toEqual([{ rule: 'r', group: 'g', ts: 3, watermark: 16 }]);
    expect(results.map((r) => r.values.sum)).toEqual([1]);
  });

  it('waits for the slowest partition, until it has been idle for the idle timeout', () => {
    const { op, results, send } = operator({ idleTimeoutMs: 1000 });
    send(1, 1, 'g', 0, 0);
    send(2, 1, 'g', 1, 0);
    send(25, 1, 'g', 0, 100); // partition 1 is at 2: the watermark stays at 2
    expect(results).toEqual([]);
    op.advance(900);
    expect(results).toEqual([]);
    op.advance(1200); // partition 1 idle: partition 0 alone sets the watermark (25)
    expect(results.map((r) => [r.start, r.values.count])).toEqual([[0, 2]]);
    expect(op.watermark).toBe(25);
  });

  it('assigns an event to every sliding window that holds it', () => {
    const { results, send } = operator({ window: { kind: 'sliding', size: 10, slide: 5 } });
    send(7, 1);
    send(30, 1);
    expect(results.filter((r) => r.values.count === 1 && r.start < 30).map((r) => [r.start, r.end])).toEqual([[0, 10], [5, 15]]);
  });

  it('merges sessions, also when a late event bridges two fired sessions', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, allowedLatenessMs: 100 });
    send(0, 1);
    send(2, 1); // session [0, 7)
    send(10, 1); // session [10, 15)
    send(30, 1); // watermark 30: both fire
    expect(results.map((r) => [r.start, r.end, r.values.count, r.update])).toEqual([[0, 7, 2, false], [10, 15, 1, false]]);
    send(6, 1); // [6, 11) bridges them: one session [0, 15) of 4 events
    const merged = results[results.length - 1]!;
    expect(merged).toMatchObject({ start: 0, end: 15, update: true, replaces: [10] });
    expect(merged.values.count).toBe(4);
  });

  it('merges sessions that only touch: events exactly one gap apart are one session', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, outOfOrdernessMs: 15 });
    send(0, 1);
    send(5, 1); // [5, 10) touches [0, 5)
    send(20, 1); // watermark 5; [20, 25) does not touch [10, 15) below
    send(10, 1); // out of order: touches [0, 10) at its end
    send(100, 1);
    expect(finals(results).map((r) => [r.start, r.end, r.values.count])).toEqual([[0, 15, 3], [20, 25, 1]]);
  });

  it('supersedes the old start when a late event moves a session that already went out to an earlier start', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, allowedLatenessMs: 100 });
    send(10, 1); // [10, 15)
    send(16, 1); // watermark 16: [10, 15) fires; [16, 21) open
    send(12, 1); // late: bridges both into [10, 21), not complete yet
    send(6, 1); // [6, 11): the merged session now starts at 6
    send(40, 1);
    const merged = finals(results).find((r) => r.start === 6)!;
    expect(merged).toMatchObject({ start: 6, end: 21, update: true, replaces: [10] });
    expect(merged.values.count).toBe(4);
  });

  it('supersedes an early result whose session later starts earlier', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, outOfOrdernessMs: 5, earlyEveryMs: 1000 });
    send(10, 1, 'g', 0, 0); // an early result of [10, 15)
    expect(results.map((r) => [r.start, r.final])).toEqual([[10, false]]);
    send(7, 1, 'g', 0, 1); // in bound: the session is [7, 15) now
    send(100, 1, 'g', 0, 2);
    expect(finals(results)[0]).toMatchObject({ start: 7, end: 15, update: false, replaces: [10] });
  });

  it('takes an event behind the watermark into the open session it touches instead of calling it late', () => {
    const { results, late, send } = operator({ window: { kind: 'session', gap: 5 }, outOfOrdernessMs: 5 });
    send(10, 1); // [10, 15)
    send(19, 1); // watermark 14; [19, 24)
    send(9, 1); // [9, 14) ends at the watermark, but touches the open [10, 15)
    send(100, 1);
    expect(late).toEqual([]);
    expect(finals(results).map((r) => [r.start, r.end, r.values.count])).toEqual([[9, 15, 2], [19, 24, 1]]);
  });

  it('lists a superseded start once, in the result that supersedes it', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, allowedLatenessMs: 100 });
    send(0, 1);
    send(2, 1);
    send(10, 1);
    send(30, 1); // [0, 7) and [10, 15) fire
    send(6, 1); // bridges them: [0, 15) replaces [10]
    send(3, 1); // updates [0, 15) again
    expect(finals(results).slice(-2).map((r) => [r.start, r.end, r.values.count, r.replaces])).toEqual([[0, 15, 4, [10]], [0, 15, 5, undefined]]);
  });

  it('bounds what a session remembers to supersede: no early results while 100 superseded starts wait', () => {
    const { results, send } = operator({ window: { kind: 'session', gap: 5 }, outOfOrdernessMs: 1_000_000, earlyEveryMs: 1 });
    send(10_000, 1, 'g', 0, 0);
    // Each event moves the session's start earlier, after an early result under the last start.
    for (let i = 1; i <= 300; i++) send(10_000 - i * 5, 1, 'g', 0, i);
    send(2_000_000, 1, 'g', 0, 301);
    const final = finals(results).find((r) => r.group === 'g' && r.start === 10_000 - 300 * 5)!;
    expect(final.values.count).toBe(301);
    expect(final.replaces!.length).toBeLessThanOrEqual(100);
    // Every start an early result went out under is superseded: none is left behind.
    const earlyStarts = new Set(results.filter((r) => !r.final && r.start <= 10_000).map((r) => r.start));
    expect([...earlyStarts].filter((s) => s !== final.start && !final.replaces!.includes(s))).toEqual([]);
  });

  it('emits early, partial results of open windows when asked', () => {
    const { op, results, send } = operator({ window: { kind: 'tumbling', size: 3_600_000 }, earlyEveryMs: 1000 });
    send(1, 5, 'g', 0, 0);
    send(2, 7, 'g', 0, 10);
    op.advance(1500);
    const early = results.filter((r) => !r.final);
    expect(early.at(-1)).toMatchObject({ start: 0, final: false, values: { count: 2, sum: 12 } });
  });

  it('drops a window\'s state once its lateness has passed, and refuses windows beyond the limit', () => {
    const { op, send } = operator({ allowedLatenessMs: 10 });
    send(1, 1);
    send(12, 1);
    expect(op.openWindows).toBe(2);
    send(40, 1);
    expect(op.openWindows).toBe(1);
    const limited = operator({ maxOpenWindows: 2 });
    limited.send(1, 1, 'a');
    limited.send(1, 1, 'b');
    expect(() => limited.send(1, 1, 'c')).toThrow(WindowLimitError);
  });

  it('computes percentiles with a t-digest, also across merged sessions', () => {
    const pct = [{ name: 'p50', op: 'p50', field: 'v' }, { name: 'p99', op: 'p99', field: 'v' }] as WindowJobSpec['aggregates'];
    const { results, send } = operator({ aggregates: pct, window: { kind: 'tumbling', size: 1000 } });
    for (let v = 1; v <= 100; v++) send(v, v);
    send(2000, 0);
    expect(results[0]!.values.p50).toBeCloseTo(50.5, 0);
    expect(results[0]!.values.p99).toBeGreaterThanOrEqual(98);
    const sessions = operator({ aggregates: pct, window: { kind: 'session', gap: 10 } });
    for (let v = 1; v <= 50; v++) sessions.send(v * 3, v); // one session: gaps of 3
    sessions.send(1000, 0);
    expect(sessions.results[0]!.values.p50).toBeCloseTo(25.5, 0);
  });

  it('resumes from a snapshot (through JSON) with the same results as without one', () => {
    const spec = { aggregates: [...ALL, { name: 'p50', op: 'p50', field: 'v' }] as WindowJobSpec['aggregates'], window: { kind: 'sliding', size: 20, slide: 10 } as const, allowedLatenessMs: 5 };
    const events: [number, number][] = Array.from({ length: 60 }, (_, i) => [i * 3, (i * 37) % 11]);
    const whole = operator(spec);
    for (const [ts, v] of events) whole.send(ts, v);
    const first = operator(spec);
    for (const [ts, v] of events.slice(0, 30)) first.send(ts, v);
    const saved = JSON.parse(JSON.stringify(first.op.snapshot(), (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? `~${x}` : x)),
      (_k, x) => (typeof x === 'string' && x.startsWith('~') ? Number(x.slice(1)) : x));
    const second = operator(spec);
    second.op.restore(saved);
    for (const [ts, v] of events.slice(30)) second.send(ts, v);
    expect([...first.results, ...second.results]).toEqual(whole.results);
  });

  it('gives the same final results for any arrival order within the out-of-orderness bound (property)', () => {
    const bound = 50;
    fc.assert(fc.property(
      fc.array(fc.record({ ts: fc.integer({ min: 0, max: 2000 }), v: fc.integer({ min: -100, max: 100 }), g: fc.constantFrom('a', 'b', 'c'), jitter: fc.integer({ min: 0, max: bound - 1 }) }), { minLength: 1, maxLength: 200 }),
      fc.constantFrom<WindowJobSpec['window']>({ kind: 'tumbling', size: 100 }, { kind: 'sliding', size: 100, slide: 25 }, { kind: 'session', gap: 30 }),
      (events, window) => {
        const run = (order: typeof events) => {
          const o = operator({ window, outOfOrdernessMs: bound, aggregates: ALL.filter((a) => a.op !== 'stddev') });
          for (const e of order) o.send(e.ts, e.v, e.g);
          expect(o.late).toEqual([]);
          return finals(o.results).map((r) => JSON.stringify(r)).sort();
        };
        const ordered = [...events].sort((x, y) => x.ts - y.ts);
        // Arrival by ts + jitter (< bound): no event arrives after one more than the bound newer.
        const jittered = [...events].sort((x, y) => x.ts + x.jitter - (y.ts + y.jitter));
        expect(run(jittered)).toEqual(run(ordered));
      },
    ), { numRuns: 300 });
  });
});
