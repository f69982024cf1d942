import { describe, expect, it } from 'vitest';
import { WindowOperator, type LateEvent, type WindowJobSpec, type WindowResult } from '../server/src/windows/window-operator.js';

/**
 * Allowed lateness at its boundary (rules/README.md, Windows): a window [start, end) fires once the
 * watermark reaches its end and late events update it while the watermark is below
 * end + allowedLateness; at end + allowedLateness its state is dropped and an event for it is late.
 * Each case is tried exactly at the boundary and one ms either side, so an off-by-one either way fails.
 */

function operator(overrides: Partial<WindowJobSpec> = {}) {
  const results: WindowResult[] = [];
  const late: LateEvent[] = [];
  const op = new WindowOperator({
    rule: 'r', window: { kind: 'tumbling', size: 10 }, aggregates: [{ name: 'sum', op: 'sum', field: 'v' }, { name: 'count', op: 'count' }],
    outOfOrdernessMs: 0, allowedLatenessMs: 5, idleTimeoutMs: 60_000, earlyEveryMs: 0, maxOpenWindows: 10_000, ...overrides,
  }, (r) => results.push(r), (e) => late.push(e));
  const send = (ts: number, v: number, group = 'g') => op.process({ group, ts, partition: 0, values: { v } }, 0);
  return { op, results, late, send };
}

const brief = (results: WindowResult[]) => results.map((r) => [r.start, r.end, r.values.sum, r.final, r.update]);

describe('tumbling window: allowed lateness at the boundary', () => {
  it('fires exactly when the watermark reaches the end, not one ms before', () => {
    const { results, send } = operator();
    send(1, 1);
    send(9, 2); // watermark 9: [0, 10) still open
    expect(results).toEqual([]);
    send(10, 100); // watermark 10 = end
    expect(brief(results)).toEqual([[0, 10, 3, true, false]]);
  });

  it('takes a late event while the watermark is one ms short of end + lateness, as an update', () => {
    const { results, late, send, op } = operator();
    send(1, 1);
    send(14, 100); // watermark 14 = end + lateness - 1
    expect(op.watermark).toBe(14);
    send(2, 10);
    expect(late).toEqual([]);
    expect(brief(results)).toEqual([[0, 10, 1, true, false], [0, 10, 11, true, true]]);
  });

  it('calls an event late once the watermark is exactly end + lateness, and drops the window\'s state then', () => {
    const { results, late, send, op } = operator();
    send(1, 1);
    send(14, 100);
    expect(op.openWindows).toBe(2); // [0, 10) within its lateness, [10, 20) open
    send(15, 100); // watermark 15 = end + lateness
    expect(op.openWindows).toBe(1);
    send(2, 10);
    expect(late).toEqual([{ rule: 'r', group: 'g', ts: 2, watermark: 15 }]);
    expect(brief(results)).toEqual([[0, 10, 1, true, false]]);
  });

  it('the last ms of a window is in it, the end is in the next one, also when late', () => {
    const { results, late, send } = operator();
    send(0, 1);
    send(14, 100);
    send(9, 10); // [0, 10) updated
    send(10, 1000); // [10, 20): open, no update of [0, 10)
    expect(late).toEqual([]);
    expect(brief(results)).toEqual([[0, 10, 1, true, false], [0, 10, 11, true, true]]);
  });

  it('a late event within the lateness for a window that had no events yet fires it at once', () => {
    const { results, late, send } = operator();
    send(20, 1); // watermark 20: [0, 10) and [10, 20) never had events
    send(12, 5); // [10, 20) ends exactly at the watermark, its lateness runs to 25: taken, and complete
    expect(late).toEqual([]);
    expect(brief(results)).toEqual([[10, 20, 5, true, false]]);
    send(13, 1); // within the lateness again: an update now
    expect(brief(results.slice(1))).toEqual([[10, 20, 6, true, true]]);
    send(3, 7); // [0, 10): its lateness ran out at 15
    expect(late).toEqual([{ rule: 'r', group: 'g', ts: 3, watermark: 20 }]);
  });

  it('without lateness, an event whose window ended at the watermark is late, one ms before the end is not', () => {
    const { results, late, send } = operator({ allowedLatenessMs: 0, outOfOrdernessMs: 5 });
    send(14, 1); // watermark 9
    send(0, 2); // [0, 10) still open
    expect(late).toEqual([]);
    send(15, 3); // watermark 10: [0, 10) fires and goes
    send(9, 4);
    expect(late).toEqual([{ rule: 'r', group: 'g', ts: 9, watermark: 10 }]);
    expect(brief(results)).toEqual([[0, 10, 2, true, false]]);
  });
});

describe('sliding window: allowed lateness per window', () => {
  it('an event goes into the windows still within their lateness and is late only when none is', () => {
    // size 10, slide 5: ts 7 is in [0, 10) and [5, 15).
    const { results, late, send } = operator({ window: { kind: 'sliding', size: 10, slide: 5 }, allowedLatenessMs: 5 });
    send(7, 1);
    send(15, 0); // watermark 15: [0, 10) is at end + lateness (gone), [5, 15) fired and within it
    expect(brief(results)).toEqual([[0, 10, 1, true, false], [5, 15, 1, true, false]]);
    send(8, 10);
    expect(late).toEqual([]);
    expect(brief(results.slice(2))).toEqual([[5, 15, 11, true, true]]);
    send(20, 0); // watermark 20: [5, 15) at end + lateness too
    send(9, 100);
    expect(late).toEqual([{ rule: 'r', group: 'g', ts: 9, watermark: 20 }]);
  });
});

describe('session window: allowed lateness at the boundary', () => {
  const session = (allowedLatenessMs = 5) => operator({ window: { kind: 'session', gap: 10 }, allowedLatenessMs });

  it('fires when the watermark reaches the last event + gap, not one ms before', () => {
    const { results, send } = session();
    send(0, 1);
    send(30, 0); // a session of its own; watermark 30 > 10
    expect(brief(results)).toEqual([[0, 10, 1, true, false]]);
    const s = session();
    s.send(0, 1);
    s.send(9, 2); // extends [0, 19)
    s.send(30, 0);
    expect(brief(s.results)).toEqual([[0, 19, 3, true, false]]);
  });

  it('a late event touching a fired session one ms before its lateness ends updates it; at the end it is late', () => {
    const a = session();
    a.send(0, 1); // [0, 10)
    a.send(14, 0, 'other'); // watermark 14 = end + lateness - 1: [0, 10) fired, kept
    a.send(5, 10); // touches it: merged, [0, 15), complete when the watermark reaches 15
    expect(a.late).toEqual([]);
    expect(brief(a.results.filter((r) => r.group === 'g'))).toEqual([[0, 10, 1, true, false]]);
    a.send(15, 0, 'other');
    expect(brief(a.results.filter((r) => r.group === 'g'))).toEqual([[0, 10, 1, true, false], [0, 15, 11, true, true]]);

    const b = session();
    b.send(0, 1);
    b.send(14, 0, 'other');
    b.send(15, 0, 'other'); // watermark 15 = end + lateness: [0, 10) dropped
    b.send(5, 10); // would touch [0, 10), but that is gone; its own [5, 15) + 5 = 20 > 15: a session of its own, complete
    expect(b.late).toEqual([]);
    expect(brief(b.results.filter((r) => r.group === 'g'))).toEqual([[0, 10, 1, true, false], [5, 15, 10, true, false]]);
    b.send(0, 100); // [0, 10) + 5 = 15 <= 15, and touches [5, 15), kept: merged into it, an update
    expect(b.late).toEqual([]);
    expect(brief(b.results.filter((r) => r.group === 'g').slice(2))).toEqual([[0, 15, 110, true, true]]);
  });

  it('an event on its own is late exactly when its own end + lateness is at the watermark, not one ms before', () => {
    const { late, send, results } = session(5);
    send(100, 0); // watermark 100
    send(85, 1); // own session [85, 95): 95 + 5 = 100 <= 100: late
    expect(late.map((e) => e.ts)).toEqual([85]);
    send(86, 2); // [86, 96): 101 > 100: taken, complete already: fires at once
    expect(late.map((e) => e.ts)).toEqual([85]);
    expect(brief(results)).toEqual([[86, 96, 2, true, false]]);
  });
});
