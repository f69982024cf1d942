import { describe, expect, it } from 'vitest';
import { WindowLimitError, WindowOperator, snapshotOperator, type LateEvent, type WindowJobSpec, type WindowResult } from '../server/src/windows/window-operator.js';

/**
 * The window operator at its other edges (rules/README.md, Windows): idle partitions and early
 * results at their interval exactly, events before the epoch, the values an aggregate takes, the
 * limits at their bound, and what a snapshot carries across a restore.
 */

function operator(overrides: Partial<WindowJobSpec> = {}) {
  const results: WindowResult[] = [];
  const late: LateEvent[] = [];
  const op = new WindowOperator({
    rule: 'r', window: { kind: 'tumbling', size: 10 }, aggregates: [{ name: 'sum', op: 'sum', field: 'v' }, { name: 'count', op: 'count' }],
    outOfOrdernessMs: 0, allowedLatenessMs: 0, idleTimeoutMs: 1_000, earlyEveryMs: 0, maxOpenWindows: 10_000, ...overrides,
  }, (r) => results.push(r), (e) => late.push(e));
  const send = (ts: number, v: unknown, { group = 'g', partition = 0, now = 0 } = {}) => op.process({ group, ts, partition, values: { v } }, now);
  return { op, results, late, send };
}

const brief = (results: WindowResult[]) => results.map((r) => [r.group, r.start, r.end, r.values.sum, r.final, r.update]);

describe('idle partitions', () => {
  it('a partition holds the watermark back until exactly the idle timeout has passed since it sent', () => {
    const { op, send } = operator();
    send(5, 1, { partition: 1, now: 0 });
    send(50, 1, { partition: 0, now: 0 });
    op.advance(999);
    expect(op.watermark).toBe(5);
    op.advance(1_000);
    expect(op.watermark).toBe(50);
    send(60, 1, { partition: 1, now: 1_500 }); // back: partition 1 counts from its last message
    send(100, 1, { partition: 0, now: 1_500 });
    op.advance(2_499);
    expect(op.watermark).toBe(60);
  });

  it('the watermark never goes back, also when an idle partition comes back behind it', () => {
    const { op, send } = operator();
    send(50, 1, { partition: 0, now: 0 });
    expect(op.watermark).toBe(50);
    send(5, 1, { partition: 1, now: 10 }); // late for [0, 10), which fired
    expect(op.watermark).toBe(50);
  });

  it('a partition\'s newest time counts, not its last one; out-of-orderness trails it', () => {
    const { op, send } = operator({ outOfOrdernessMs: 3 });
    send(5, 1, { partition: 1, now: 0 }); // holds the watermark at 2
    send(20, 1, { partition: 0, now: 0 });
    send(12, 1, { partition: 0, now: 500 }); // older than partition 0's newest
    expect(op.watermark).toBe(2);
    op.advance(1_000); // partition 1 idle: partition 0's newest (20) - 3
    expect(op.watermark).toBe(17);
  });
});

describe('early results', () => {
  it('come out exactly every earlyEveryMs of processing time, for open windows only', () => {
    const { op, results, send } = operator({ earlyEveryMs: 100, window: { kind: 'tumbling', size: 1_000 } });
    send(1, 2, { now: 0 }); // the first advance emits at once
    expect(brief(results)).toEqual([['g', 0, 1_000, 2, false, false]]);
    op.advance(99);
    expect(results).toHaveLength(1);
    op.advance(100);
    expect(results).toHaveLength(2);
    send(1_000, 0, { now: 150 }); // fires [0, 1000): final; early results only for [1000, 2000) from now on
    op.advance(200);
    expect(brief(results.slice(2))).toEqual([['g', 0, 1_000, 2, true, false], ['g', 1_000, 2_000, 0, false, false]]);
  });

  it('a window that fired and waits out its lateness gets no early results', () => {
    const { op, results, send } = operator({ earlyEveryMs: 100, allowedLatenessMs: 1_000 });
    send(1, 2, { now: 0 });
    send(10, 3, { now: 1 }); // [0, 10) fires; [10, 20) open
    const before = results.length;
    op.advance(500);
    expect(brief(results.slice(before))).toEqual([['g', 10, 20, 3, false, false]]);
  });

  it('without earlyEveryMs there are none', () => {
    const { op, results, send } = operator({ window: { kind: 'tumbling', size: 1_000 } });
    send(1, 2, { now: 0 });
    op.advance(1_000_000);
    expect(results).toEqual([]);
  });
});

describe('window assignment', () => {
  it('puts events before the epoch into the windows that hold them', () => {
    const { results, send } = operator();
    send(-11, 1);
    send(-10, 2);
    send(-1, 4);
    send(0, 8);
    send(10, 0);
    expect(brief(results)).toEqual([['g', -20, -10, 1, true, false], ['g', -10, 0, 6, true, false], ['g', 0, 10, 8, true, false]]);
  });

  it('a sliding window event at a window start is in that window and not in the one ending there', () => {
    const { results, send } = operator({ window: { kind: 'sliding', size: 10, slide: 5 } });
    send(5, 1);
    send(30, 0);
    expect(brief(results.filter((r) => r.values.sum === 1))).toEqual([['g', 0, 10, 1, true, false], ['g', 5, 15, 1, true, false]]);
    expect(results.find((r) => r.start === -5)).toBeUndefined();
  });

  it('windows of one group fire in the order they end, also when they opened out of order', () => {
    const { results, send } = operator({ outOfOrdernessMs: 100 });
    send(35, 1);
    send(5, 1);
    send(25, 1);
    send(15, 1);
    send(16, 1); // finds [10, 20) among windows opened out of order
    send(200, 0);
    expect(results.map((r) => [r.start, r.values.count])).toEqual([[0, 1], [10, 2], [20, 1], [30, 1]]);
  });

  it('numbers count as they are, booleans as 1 and 0, anything else not at all; count counts every event', () => {
    const { results, send } = operator({ aggregates: [{ name: 'sum', op: 'sum', field: 'v' }, { name: 'n', op: 'count', field: 'v' }, { name: 'count', op: 'count' }] });
    for (const v of [2, true, false, 'x', null, { a: 1 }]) send(1, v);
    send(10, 0);
    expect(results[0]!.values).toEqual({ sum: 3, n: 3, count: 6 });
  });

  it('keeps groups apart', () => {
    const { results, send } = operator();
    send(1, 1, { group: 'a' });
    send(2, 10, { group: 'b' });
    send(3, 100, { group: 'a' });
    send(10, 0, { group: 'c' });
    expect(brief(results).sort()).toEqual([['a', 0, 10, 101, true, false], ['b', 0, 10, 10, true, false]]);
  });
});

describe('limits at their bound', () => {
  it('takes the window that fills maxOpenWindows exactly, refuses the one after', () => {
    const { op, send } = operator({ maxOpenWindows: 2 });
    send(1, 1);
    send(1, 1, { group: 'h' });
    expect(op.openWindows).toBe(2);
    expect(() => send(2, 1, { group: 'h' })).not.toThrow(); // no new window
    const err = (() => { try { send(3, 1, { group: 'i' }); } catch (e) { return e; } return undefined; })();
    expect(err).toBeInstanceOf(WindowLimitError);
    expect(err).toMatchObject({ limit: 'window_open_windows' });
    expect((err as Error).message).toMatch(/has 2 open windows, its limit being 2/);
    expect(op.groupCount).toBe(2);
  });

  it('takes the group that fills maxGroups exactly, refuses the one after; a known group still opens windows', () => {
    const { op, send } = operator({ maxGroups: 2, outOfOrdernessMs: 1_000 });
    send(1, 1, { group: 'a' });
    send(1, 1, { group: 'b' });
    expect(op.groupCount).toBe(2);
    expect(() => send(1, 1, { group: 'c' })).toThrow(/has open windows for 2 groups, its limit; the event of the new group "c" is refused/);
    expect(() => send(15, 1, { group: 'a' })).not.toThrow();
    expect(op.openWindows).toBe(3);
  });

  it('sessions count against the same limits, and a merge gives places back', () => {
    const { op, send } = operator({ window: { kind: 'session', gap: 10 }, maxOpenWindows: 2, outOfOrdernessMs: 1_000 });
    send(0, 1);
    send(20, 1);
    expect(op.openWindows).toBe(2);
    expect(() => send(100, 1)).toThrow(WindowLimitError);
    send(10, 1); // touches [0, 10) and [20, 30): one session
    expect(op.openWindows).toBe(1);
    expect(() => send(100, 1)).not.toThrow();
    expect(op.openWindows).toBe(2);
  });

  it('a group goes once its last window is dropped', () => {
    const { op, send } = operator({ allowedLatenessMs: 5 });
    send(1, 1, { group: 'a' });
    send(16, 1, { group: 'b' });
    expect(op.groupCount).toBe(1);
    expect(op.openWindows).toBe(1);
  });
});

describe('snapshots', () => {
  const spec = { allowedLatenessMs: 10, aggregates: [{ name: 'sum', op: 'sum', field: 'v' }, { name: 'p50', op: 'p50', field: 'v' }] } as Partial<WindowJobSpec>;

  it('a restored operator keeps the windows within their lateness, drops them when it passes, and keeps its counts', () => {
    const first = operator(spec);
    first.send(1, 4);
    first.send(2, 6);
    first.send(12, 1); // [0, 10) fired, kept until 20
    const saved = JSON.parse(JSON.stringify(snapshotOperator(first.op))) as ReturnType<WindowOperator['snapshot']>;
    const second = operator(spec);
    second.op.restore(saved);
    expect([second.op.watermark, second.op.openWindows, second.op.groupCount]).toEqual([12, 2, 1]);
    second.send(3, 10); // within the lateness: an update, its digest restored too
    expect(second.results.map((r) => [r.start, r.values.sum, r.values.p50, r.update])).toEqual([[0, 20, 6, true]]);
    second.send(20, 0); // [0, 10) at its end + lateness: gone; [10, 20) fired
    expect(second.op.openWindows).toBe(2);
    second.send(4, 1);
    expect(second.late.map((e) => e.ts)).toEqual([4]);
  });

  it('restoring replaces what the operator held', () => {
    const a = operator(spec);
    a.send(1, 1);
    const b = operator(spec);
    b.send(-50, 1, { group: 'other', partition: 3 });
    b.op.restore(JSON.parse(JSON.stringify(a.op.snapshot())));
    expect([b.op.watermark, b.op.openWindows, b.op.groupCount]).toEqual([1, 1, 1]);
    b.send(10, 0); // partition 3 is gone: the watermark is 10, and only what was restored fires
    expect(b.results.map((r) => [r.group, r.start, r.values.sum])).toEqual([['g', 0, 1]]);
    expect(b.op.openWindows).toBe(2);
  });

  it('a restored operator keeps its partitions: one behind still holds the watermark back', () => {
    const a = operator(spec);
    a.send(1, 1, { partition: 0 });
    a.send(50, 1, { partition: 1 });
    const b = operator(spec);
    b.op.restore(JSON.parse(JSON.stringify(a.op.snapshot())));
    b.send(60, 1, { partition: 1 });
    expect(b.op.watermark).toBe(1);
    expect(b.results).toEqual([]);
  });

  it('an early-result clock restored goes on where it was', () => {
    const a = operator({ earlyEveryMs: 100, window: { kind: 'tumbling', size: 1_000 } });
    a.send(1, 1, { now: 50 });
    const b = operator({ earlyEveryMs: 100, window: { kind: 'tumbling', size: 1_000 } });
    b.op.restore(JSON.parse(JSON.stringify(a.op.snapshot())));
    b.op.advance(149);
    expect(b.results).toEqual([]);
    b.op.advance(150);
    expect(b.results).toHaveLength(1);
  });
});

describe('sessions', () => {
  const sessions = (overrides: Partial<WindowJobSpec> = {}) => operator({ window: { kind: 'session', gap: 10 }, outOfOrdernessMs: 1_000, ...overrides });

  it('two open sessions an event bridges fire once, merged, not as an update', () => {
    const { op, results, send } = sessions();
    send(0, 1);
    send(20, 2);
    send(10, 4);
    send(2_000, 0);
    op.advance(0);
    expect(brief(results.filter((r) => r.start < 2_000))).toEqual([['g', 0, 30, 7, true, false]]);
  });

  it('a known group may open another session at the group limit', () => {
    const { op, send } = sessions({ maxGroups: 1 });
    send(0, 1);
    expect(() => send(100, 1)).not.toThrow();
    expect(op.openWindows).toBe(2);
    expect(() => send(100, 1, { group: 'new' })).toThrow(/the event of the new group "new" is refused/);
  });

  it('an event at a session\'s start after an early result does not supersede that result', () => {
    const { op, results, send } = sessions({ earlyEveryMs: 100 });
    send(5, 1, { now: 0 }); // early result under start 5
    send(5, 2, { now: 1 });
    send(2_000, 0, { now: 2 });
    op.advance(3);
    const final = results.find((r) => r.final && r.start === 5)!;
    expect(final.values.sum).toBe(3);
    expect(final.replaces).toBeUndefined();
  });
});
