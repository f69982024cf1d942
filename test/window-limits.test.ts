import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';
import { WindowEngine } from '../server/src/windows/window-engine.js';
import { compileWindowNode } from '../server/src/windows/window-node-spec.js';
import { WindowLimitError, WindowOperator, type WindowJobSpec, type WindowResult } from '../server/src/windows/window-operator.js';

/**
 * Issue 16, windows: a sliding window of 1 day every 1 ms made 100,000 windows per event, and a
 * groupBy of many values leaked a group per refused event. Now such a window is refused at load,
 * open windows and groups are capped per node, and a refused event leaves nothing behind.
 */

function operator(overrides: Partial<WindowJobSpec> = {}) {
  const results: WindowResult[] = [];
  const op = new WindowOperator({
    rule: 'r/w', window: { kind: 'tumbling', size: 10 }, aggregates: [{ name: 'count', op: 'count' }], outOfOrdernessMs: 0, allowedLatenessMs: 0,
    idleTimeoutMs: 60_000, earlyEveryMs: 0, maxOpenWindows: 10_000, ...overrides,
  }, (r) => results.push(r), () => {});
  const send = (ts: number, group = 'g') => op.process({ group, ts, partition: 0, values: {} }, 0);
  return { op, results, send };
}

const refusedWith = (f: () => void): WindowLimitError => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(WindowLimitError);
    return err as WindowLimitError;
  }
  throw new Error('the event was accepted');
};

const noSinks: RuleSinks = { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
const windowRule = (window: object) => ({ id: 'r', nodes: [{ id: 'w', type: 'window', window: { fields: ['t'], ops: ['avg'], ...window } }] });

function refusal(doc: object): string {
  try {
    compileRule(doc, noSinks);
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
    return (err as Error).message;
  }
  throw new Error('the rule was accepted');
}

describe('window limits at load', () => {
  it('refuses a sliding window that puts an event into more than 100 windows, naming the node and field', () => {
    expect(refusal(windowRule({ kind: 'sliding', size: '1d', slide: '1ms' })))
      .toMatch(/^rule "r", node "w" \(nodes\[0\]\.window\.slide\): puts each event into 86400000 windows \(size \/ slide\), over the limit of 100/);
    expect(() => compileRule(windowRule({ kind: 'sliding', size: '100s', slide: '1s' }), noSinks)).not.toThrow();
  });

  it('caps open windows per node at 10,000 by default, and refuses a node asking for more than the server allows', () => {
    expect(compileWindowNode('r', 'w', { kind: 'tumbling', size: '1m', fields: ['t'], ops: ['avg'] }).job.maxOpenWindows).toBe(10_000);
    expect(refusal(windowRule({ kind: 'tumbling', size: '1m', maxOpenWindows: 50_000 }))).toMatch(/\(nodes\[0\]\.window\.maxOpenWindows\): must be at most 10000 on this server/);
    expect(compileWindowNode('r', 'w', { kind: 'tumbling', size: '1m', fields: ['t'], ops: ['avg'], maxOpenWindows: 500 }).job.maxOpenWindows).toBe(500);
  });
});

describe('window limits per event', () => {
  it('an event refused for the open-window limit leaves no group behind, however many groups try', () => {
    const { op, send } = operator({ maxOpenWindows: 2 });
    send(1, 'a');
    send(1, 'b');
    const refusals = Array.from({ length: 1000 }, (_, i) => refusedWith(() => send(1, `g${i}`)));
    expect(op.openWindows).toBe(2);
    expect(op.snapshot().groups.map(([g]) => g)).toEqual(['a', 'b']);
    expect(new Set(refusals.map((e) => e.limit))).toEqual(new Set(['window_open_windows']));
  });

  it('caps the groups of a node', () => {
    const { op, send } = operator({ maxGroups: 3 });
    for (const g of ['a', 'b', 'c']) send(1, g);
    expect(refusedWith(() => send(1, 'd')).limit).toBe('window_groups');
    send(2, 'a'); // a known group goes on
    expect(op.snapshot().groups).toHaveLength(3);
    const sessions = operator({ window: { kind: 'session', gap: 10 }, maxGroups: 1 });
    sessions.send(1, 'a');
    expect(refusedWith(() => sessions.send(1, 'b')).limit).toBe('window_groups');
    expect(sessions.op.snapshot().groups).toHaveLength(1);
  });

  it('a sliding-window event refused at the limit is in none of its windows, not in some', () => {
    const { op, results, send } = operator({ window: { kind: 'sliding', size: 10, slide: 2 }, outOfOrdernessMs: 20, maxOpenWindows: 5 });
    send(9); // windows starting 8, 6, 4, 2, 0
    expect(op.openWindows).toBe(5);
    refusedWith(() => send(7)); // would also need the window starting at -2
    refusedWith(() => send(40)); // refused too, but its time fires the five windows
    expect(results.filter((r) => r.final).map((r) => [r.start, r.values.count])).toEqual([[0, 1], [2, 1], [4, 1], [6, 1], [8, 1]]);
  });

  it('a refused event still moves the watermark, so windows fire and the node takes events again', () => {
    const { op, results, send } = operator({ maxOpenWindows: 1 });
    send(1, 'a');
    refusedWith(() => send(15, 'b'));
    expect(results.map((r) => [r.group, r.start])).toEqual([['a', 0]]);
    expect(op.openWindows).toBe(0);
    send(16, 'b');
    expect(op.openWindows).toBe(1);
  });

  it('counts the refused events as errors of the node, under their limit', () => {
    const windows = new WindowEngine({ result() {}, late() {} }, () => 0);
    const sinks: RuleSinks = { ...noSinks, window: (rule, node, compiled, message) => windows.handle(rule, node, compiled, message) };
    const engine = new RuleEngine(() => 0);
    const hits: string[] = [];
    engine.onLimit = (_rule, _node, limit) => hits.push(limit);
    engine.put(compileRule({ id: 'r', nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '1m', groupBy: { field: 'zone' }, fields: ['t'], ops: ['avg'] } }] },
      sinks, { limits: { maxWindowGroups: 100 } }));
    const device = { id: 'd', name: 'd', type: 't', attributes: {} };
    const messages: RuleMessage[] = Array.from({ length: 150 }, (_, i) => ({ deviceId: 'd', ts: 1000, values: { t: 1, zone: `z${i}` }, metadata: {}, device, offset: i, partition: 0 }));
    engine.process(messages);
    expect(engine.stats('r')!.nodes[0]).toMatchObject({ in: 150, out: 100, errors: 50, limited: { window_groups: 50 } });
    expect(hits).toHaveLength(50);
    expect(windows.openWindows()).toBe(100);
  });
});
