import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

/**
 * Issue 16, expressions: a backtracking regular expression or nested comprehensions over long
 * lists held the event loop for seconds per message. Now `matches` runs on RE2 and every
 * evaluation has a budget; what goes over it fails that message for that rule node only.
 */

const device: RuleMessage['device'] = { id: 'dev-1', name: 'room-1', type: 'room-sensor', attributes: {} };
const msg = (values: Record<string, unknown>, ts = 1_000): RuleMessage =>
  ({ deviceId: device.id, ts, values: values as RuleMessage['values'], metadata: {}, device, offset: 0, partition: 0 });

function engineWith(...rules: object[]) {
  const saved: { rule: string; values: Record<string, unknown> }[] = [];
  const limitHits: { rule: string; node: string; limit: string }[] = [];
  const sinks = (rule: string): RuleSinks => ({
    save: (_d, _ts, values) => saved.push({ rule, values }),
    republish: () => {}, webhook: () => {}, window: () => {}, alarm: () => {}, log: () => {},
  });
  const engine = new RuleEngine(() => 0);
  engine.onLimit = (rule, node, limit) => limitHits.push({ rule, node, limit });
  for (const r of rules) engine.put(compileRule(r, sinks((r as { id: string }).id)));
  return { engine, saved, limitHits };
}

const filterRule = (id: string, condition: string) => ({ id, nodes: [{ id: 'f', type: 'filter', if: condition }, { id: 'out', type: 'save' }] });

/** Runs the messages and says how long it took, in ms. */
function timed(f: () => void): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

function refusal(doc: object): string {
  try {
    compileRule(doc, { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log() {} });
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
    return (err as Error).message;
  }
  throw new Error('the rule was accepted');
}

describe('matches runs on RE2', () => {
  it('a backtracking pattern against 31 a\'s and a "!" is answered at once, not in 25 s', () => {
    const { engine, saved } = engineWith(filterRule('redos', 'values.s.matches("^(a+)+$")'), filterRule('other', 'has(values.s)'));
    const ms = timed(() => engine.process([msg({ s: `${'a'.repeat(31)}!` }), msg({ s: 'aaa' })]));
    expect(ms).toBeLessThan(1000);
    expect(saved.map((s) => [s.rule, s.values.s])).toEqual([['other', `${'a'.repeat(31)}!`], ['redos', 'aaa'], ['other', 'aaa']]);
  });

  it('speaks RE2 syntax, as CEL specifies', () => {
    const { engine, saved } = engineWith(filterRule('re2', 'values.code.matches("^(?P<site>[A-Z]{2})-\\\\d{4}$")'));
    engine.process([msg({ code: 'AB-1234' }), msg({ code: 'AB-12' })]);
    expect(saved.map((s) => s.values.code)).toEqual(['AB-1234']);
    expect(engine.stats('re2')!.nodes[0]!.errors).toBe(0);
  });

  it('refuses at load a pattern RE2 cannot run (backreference, lookahead), naming the node and field', () => {
    expect(refusal(filterRule('r', 'values.s.matches("(a)\\\\1")'))).toMatch(/^rule "r", node "f" \(nodes\[0\]\.if\): matches: invalid regular expression .*invalid escape sequence/);
    expect(refusal(filterRule('r', 'values.s.matches("a(?=b)")'))).toMatch(/^rule "r", node "f" \(nodes\[0\]\.if\): matches: invalid regular expression/);
  });

  it('refuses at load a pattern that is too long or compiles to too big a program', () => {
    expect(refusal(filterRule('r', `values.s.matches("${'a'.repeat(600)}")`))).toMatch(/\(nodes\[0\]\.if\): matches: the regular expression is 600 characters long, over the limit of 512/);
    expect(refusal(filterRule('r', 'values.s.matches("\\\\pL{1000}")'))).toMatch(/\(nodes\[0\]\.if\): matches: .* compiles to \d+ instructions, over the limit of 1000/);
  });

  it('a pattern computed per message runs on RE2 too; an invalid one fails that message only', () => {
    const { engine, saved } = engineWith(filterRule('dyn', 'values.s.matches(values.p)'));
    const ms = timed(() => engine.process([msg({ s: `${'a'.repeat(31)}!`, p: '^(a+)+$' }), msg({ s: 'ab', p: '(a)\\1' }), msg({ s: 'ab', p: '^a' })]));
    expect(ms).toBeLessThan(1000);
    expect(saved.map((s) => s.values.s)).toEqual(['ab']);
    expect(engine.stats('dyn')!.errors.map((e) => e.error)).toEqual([expect.stringMatching(/invalid regular expression/)]);
  });
});

describe('every evaluation has a budget', () => {
  const list = Array.from({ length: 2000 }, (_, i) => i + 1);
  const nested = 'values.o.l.all(x, values.o.l.all(y, x + y > 0.0))';

  it('nested comprehensions over a long list fail that message for that rule, fast, counted under eval_budget', () => {
    const { engine, saved, limitHits } = engineWith(filterRule('nested', nested), filterRule('other', 'has(values.o)'));
    const ms = timed(() => engine.process([msg({ o: { l: list } }), msg({ o: { l: [1, 2, 3] } })]));
    expect(ms).toBeLessThan(1000);
    expect(saved.map((s) => s.rule)).toEqual(['other', 'nested', 'other']);
    const stats = engine.stats('nested')!;
    expect(stats.nodes[0]).toMatchObject({ in: 2, out: 1, errors: 1, limited: { eval_budget: 1 } });
    expect(stats.errors[0]!.error).toMatch(/more than 100000 evaluation steps, its budget/);
    expect(limitHits).toEqual([{ rule: 'nested', node: 'f', limit: 'eval_budget' }]);
    expect(engine.stats('other')!.nodes[0]).toMatchObject({ errors: 0, out: 2 });
  });

  it('an `||` that CEL would let absorb the failure still fails the message', () => {
    const { engine, saved } = engineWith(filterRule('or', `${nested} || true`));
    engine.process([msg({ o: { l: list } })]);
    expect(saved).toEqual([]);
    expect(engine.stats('or')!.nodes[0]!.limited).toEqual({ eval_budget: 1 });
  });

  it('a string doubled again and again stops at the size limit', () => {
    const doubling = 'cel.bind(a, values.s + values.s, cel.bind(b, a + a, cel.bind(c, b + b, cel.bind(d, c + c, d + d)))).size() > 0';
    const { engine, saved } = engineWith(filterRule('grow', doubling));
    const ms = timed(() => engine.process([msg({ s: 'x'.repeat(20_000) }), msg({ s: 'x' })]));
    expect(ms).toBeLessThan(1000);
    expect(saved).toHaveLength(1);
    expect(engine.stats('grow')!.errors[0]!.error).toMatch(/built a string of \d+ characters, over the limit of 100000/);
  });

  it('duration() of a long run of digits fails at once (cel-js parses it with a pattern that backtracks)', () => {
    const { engine, saved } = engineWith(filterRule('dur', 'duration(values.d) > duration("1s")'));
    const ms = timed(() => engine.process([msg({ d: `${'1'.repeat(2000)}x` }), msg({ d: '1h30m' })]));
    expect(ms).toBeLessThan(1000);
    expect(saved.map((s) => s.values.d)).toEqual(['1h30m']);
    expect(engine.stats('dur')!.errors[0]!.error).toMatch(/too long for a duration/);
  });

  it('refuses at load an expression whose worst case is over the budget: literal lists iterated inside each other', () => {
    const l = `[${Array.from({ length: 40 }, (_, i) => i + 1).join(', ')}]`;
    expect(refusal(filterRule('r', `${l}.all(x, ${l}.all(y, ${l}.all(z, x + y + z > 0)))`)))
      .toMatch(/^rule "r", node "f" \(nodes\[0\]\.if\): in its worst case this expression takes about \d+ evaluation steps, over the budget of 100000/);
    expect(refusal(filterRule('r', `duration("${'1'.repeat(100)}x") > duration("1s")`))).toMatch(/\(nodes\[0\]\.if\): duration: .*too long/);
  });

  it('takes its budget from the server\'s limits', () => {
    const sinks: RuleSinks = { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
    const engine = new RuleEngine(() => 0);
    engine.put(compileRule(filterRule('small', 'values.o.l.all(x, x > 0.0)'), sinks, { limits: { evalBudget: 50 } }));
    engine.process([msg({ o: { l: [1, 2, 3] } }), msg({ o: { l: list } })]);
    expect(engine.stats('small')!.nodes[0]).toMatchObject({ out: 1, errors: 1, limited: { eval_budget: 1 } });
  });
});
