import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

/**
 * The edges of the nodes that decide by message time or by a condition (rules/README.md, Nodes):
 * per device, exactly at the interval and one ms either side of it, out of order, and conditions
 * that are not true or false.
 */

const deviceA: RuleMessage['device'] = { id: 'dev-a', name: 'a', type: 't', attributes: {} };
const deviceB: RuleMessage['device'] = { id: 'dev-b', name: 'b', type: 't', attributes: {} };
const msg = (ts: number, values: Record<string, number | string | boolean> = {}, device = deviceA): RuleMessage =>
  ({ deviceId: device.id, ts, values, metadata: {}, device, offset: 0, partition: 0 });

/** One node, then a save: what passes the node is what was saved. */
function chain(node: object) {
  const saved: { deviceId: string; ts: number; values: Record<string, unknown> }[] = [];
  const sinks: RuleSinks = { save: (deviceId, ts, values) => saved.push({ deviceId, ts, values }), republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
  const engine = new RuleEngine(() => 0);
  engine.put(compileRule({ id: 'r', nodes: [{ id: 'n', ...node }, { id: 'out', type: 'save' }] }, sinks));
  const passed = (messages: RuleMessage[]) => {
    const before = saved.length;
    engine.process(messages);
    return saved.slice(before);
  };
  return { passed, stats: () => engine.stats('r')!.nodes[0]! };
}

const dedupe = () => chain({ type: 'deduplicate', key: 'values.code', interval: '10s' });
const sample = () => chain({ type: 'sample', interval: '10s' });

describe('deduplicate', () => {
  it('keeps each device to itself: the same key from another device is not a duplicate', () => {
    const { passed } = dedupe();
    const out = passed([msg(0, { code: 'E1' }), msg(1, { code: 'E1' }, deviceB), msg(2, { code: 'E1' }), msg(3, { code: 'E1' }, deviceB)]);
    expect(out.map((s) => [s.deviceId, s.ts])).toEqual([['dev-a', 0], ['dev-b', 1]]);
  });

  it('another device sending the key does not restart a device\'s interval', () => {
    const { passed } = dedupe();
    // dev-b at 9 s does not touch dev-a's key: dev-a's next one, 10 s after its first, is new.
    const out = passed([msg(0, { code: 'E1' }), msg(9_000, { code: 'E1' }, deviceB), msg(10_000, { code: 'E1' }), msg(18_999, { code: 'E1' }, deviceB)]);
    expect(out.map((s) => [s.deviceId, s.ts])).toEqual([['dev-a', 0], ['dev-b', 9_000], ['dev-a', 10_000]]);
  });

  it('drops a repeat one ms before the interval is over, passes one exactly at it', () => {
    const { passed } = dedupe();
    expect(passed([msg(1_000, { code: 'E1' }), msg(10_999, { code: 'E1' })]).map((s) => s.ts)).toEqual([1_000]);
    expect(passed([msg(11_000, { code: 'E1' })]).map((s) => s.ts)).toEqual([11_000]);
    // The interval runs from the message let through, not from the dropped one.
    expect(passed([msg(20_999, { code: 'E1' }), msg(21_000, { code: 'E1' }), msg(21_001, { code: 'E1' })]).map((s) => s.ts)).toEqual([21_000]);
  });

  it('keys are compared by value: different keys of one device do not dedupe each other', () => {
    const { passed } = dedupe();
    const out = passed([msg(0, { code: 'E1' }), msg(1, { code: 'E2' }), msg(2, { code: 1 }), msg(3, { code: '1' }), msg(4, { code: 'E1' })]);
    expect(out.map((s) => s.ts)).toEqual([0, 1, 2, 3]);
  });

  it('an older message within the interval of one let through is a duplicate too, and does not restart the interval', () => {
    const { passed } = dedupe();
    // 5 s before the one let through at 10 s: within the interval.
    expect(passed([msg(10_000, { code: 'E1' }), msg(5_000, { code: 'E1' })]).map((s) => s.ts)).toEqual([10_000]);
    // 15 s is 5 s after the one let through at 10 s: a duplicate; 20 s is the interval after it.
    expect(passed([msg(15_000, { code: 'E1' }), msg(19_999, { code: 'E1' }), msg(20_000, { code: 'E1' })]).map((s) => s.ts)).toEqual([20_000]);
    // Exactly an interval older than the last let through: not within it (a device clock set back).
    expect(passed([msg(10_001, { code: 'E1' }), msg(10_000, { code: 'E1' })]).map((s) => s.ts)).toEqual([10_000]);
  });

  it('counts what it drops as dropped, not as errors', () => {
    const { passed, stats } = dedupe();
    passed([msg(0, { code: 'E1' }), msg(1, { code: 'E1' }), msg(2, { code: 'E1' })]);
    expect(stats()).toMatchObject({ in: 3, out: 1, dropped: 2, errors: 0 });
  });
});

describe('sample with an interval', () => {
  it('passes the first message, drops one ms before the interval, passes exactly at it', () => {
    const { passed } = sample();
    expect(passed([msg(1_000), msg(10_999), msg(11_000), msg(11_001), msg(20_999), msg(21_000)]).map((s) => s.ts)).toEqual([1_000, 11_000, 21_000]);
  });

  it('is per device: one device passing does not hold another back', () => {
    const { passed } = sample();
    const out = passed([msg(0), msg(1, {}, deviceB), msg(5_000), msg(9_999, {}, deviceB), msg(10_000), msg(10_001, {}, deviceB)]);
    expect(out.map((s) => [s.deviceId, s.ts])).toEqual([['dev-a', 0], ['dev-b', 1], ['dev-a', 10_000], ['dev-b', 10_001]]);
  });

  it('an older message after a newer one is held to the interval too: at most one per interval', () => {
    const { passed } = sample();
    expect(passed([msg(0), msg(10_000), msg(5_000)]).map((s) => s.ts)).toEqual([0, 10_000]);
    // 5 s did not restart the interval: 15 s is still within the one from 10 s, 20 s is past it.
    expect(passed([msg(15_000), msg(19_999), msg(20_000)]).map((s) => s.ts)).toEqual([20_000]);
    // One ms within the interval before the last passed is dropped; exactly an interval before it passes.
    expect(passed([msg(10_001), msg(10_000)]).map((s) => s.ts)).toEqual([10_000]);
  });

  it('a device whose clock went back far is sampled from its new time on', () => {
    const { passed } = sample();
    expect(passed([msg(1_000_000), msg(0), msg(9_999), msg(10_000)]).map((s) => s.ts)).toEqual([1_000_000, 0, 10_000]);
  });
});

describe('sample every n', () => {
  it('every 1 lets every message through; every 2 each other one', () => {
    expect(chain({ type: 'sample', every: 1 }).passed([msg(1), msg(2), msg(3)]).map((s) => s.ts)).toEqual([1, 2, 3]);
    expect(chain({ type: 'sample', every: 2 }).passed([1, 2, 3, 4, 5].map((t) => msg(t))).map((s) => s.ts)).toEqual([1, 3, 5]);
  });
});

describe('sample with a probability', () => {
  it('passes when the draw is below the probability, not at it', () => {
    const draws = [0.4999, 0.5, 0.5001, 0];
    const saved: number[] = [];
    const sinks: RuleSinks = { save: (_d, ts) => saved.push(ts), republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
    const engine = new RuleEngine(() => 0);
    engine.put(compileRule({ id: 'r', nodes: [{ id: 'n', type: 'sample', probability: 0.5 }, { id: 'out', type: 'save' }] }, sinks, () => draws.shift()!));
    engine.process([msg(1), msg(2), msg(3), msg(4)]);
    expect(saved).toEqual([1, 4]);
  });
});

describe('filter on a condition that is not true or false', () => {
  // rules/README.md, Nodes: a filter "passes the message when the condition is true, drops it
  // otherwise" — a value that is not `true` is not true: dropped, not an error, never passed.
  it.each([
    ['a number', 'values.v', { v: 1 }],
    ['a string', 'values.v', { v: 'true' }],
    ['a string constant', '"yes"', { v: 1 }],
    ['a number constant', '1', { v: 1 }],
    ['false', 'values.v', { v: false }],
  ])('%s: dropped', (_what, condition, values) => {
    const { passed, stats } = chain({ type: 'filter', if: condition });
    expect(passed([msg(1, values)])).toEqual([]);
    expect(stats()).toMatchObject({ in: 1, out: 0, dropped: 1, errors: 0 });
  });

  it('true (a message value or a comparison): passed', () => {
    expect(chain({ type: 'filter', if: 'values.v' }).passed([msg(1, { v: true })])).toHaveLength(1);
    expect(chain({ type: 'filter', if: 'values.v > 0' }).passed([msg(1, { v: 1 })])).toHaveLength(1);
  });
});

describe('switch on a condition that is not true or false', () => {
  it('a case whose condition gives a non-boolean does not take the message: the next case or the default does', () => {
    const logged: string[] = [];
    const sinks: RuleSinks = { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log: (_l, _f, text) => logged.push(text) };
    const engine = new RuleEngine(() => 0);
    engine.put(compileRule({ id: 'r', nodes: [
      { id: 's', type: 'switch', cases: [{ if: 'values.v', to: 'first' }, { if: 'values.w', to: 'second' }], default: 'fallback' },
      { id: 'first', type: 'log', message: 'first', next: null },
      { id: 'second', type: 'log', message: 'second', next: null },
      { id: 'fallback', type: 'log', message: 'fallback', next: null },
    ] }, sinks));
    engine.process([msg(1, { v: 1, w: true }), msg(2, { v: 'x', w: 0 }), msg(3, { v: true, w: true })]);
    expect(logged).toEqual(['second', 'fallback', 'first']);
  });
});
