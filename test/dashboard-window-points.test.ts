import { describe, expect, it } from 'vitest';
import { WindowPoints } from '../dashboard/src/window-points.js';

const result = (start: number, end: number, extra: { replaces?: number[]; group?: string; rule?: string } = {}) =>
  ({ rule: extra.rule ?? 'r', node: 'w', group: extra.group ?? 'd', start, end, ...(extra.replaces ? { replaces: extra.replaces } : {}) });

describe("the dashboard's window points on a chart", () => {
  it('draws a merged session once: the sessions it replaces lose their points', () => {
    const points = new WindowPoints();
    points.take(result(0, 12_000), 10);
    points.take(result(22_000, 32_000), 20);
    // A late event bridged them, and events since kept the merged session open longer.
    points.take(result(0, 35_000, { replaces: [22_000] }), 15);
    expect([...points.byEnd()]).toEqual([[35_000, 15]]);
  });

  it('drops an early result whose session moved to an earlier start', () => {
    const points = new WindowPoints();
    points.take(result(10, 15), 1); // early, partial
    points.take(result(7, 30, { replaces: [10] }), 2);
    expect([...points.byEnd()]).toEqual([[30, 2]]);
  });

  it('keeps one point per window (the newest result), and others of other rules or groups', () => {
    const points = new WindowPoints();
    points.take(result(0, 10), 1);
    points.take(result(0, 10), 2); // an update of the same window
    points.take(result(0, 10, { rule: 'other' }), 3);
    points.take(result(20, 30, { group: 'e', replaces: [0] }), 4); // another group's merge replaces nothing here
    expect([...points.byEnd()].sort()).toEqual([[10, 3], [30, 4]]);
    const one = new WindowPoints();
    one.take(result(0, 10), 1);
    one.take(result(0, 10), 2);
    expect([...one.byEnd()]).toEqual([[10, 2]]);
  });

  it('holds at most its bound of windows, forgetting the oldest', () => {
    const points = new WindowPoints(3);
    for (let i = 0; i < 10; i++) points.take(result(i * 10, i * 10 + 10), i);
    expect([...points.byEnd().keys()]).toEqual([80, 90, 100]);
  });
});
