import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

/**
 * What a deduplicate node remembers when it is full or large (rules/README.md, `deduplicate`):
 * keys past their interval go first, then the one whose interval ends first, counted. What it
 * remembers shows in a message older than the last one let through (out of order): within that
 * key's interval it is dropped while the key is remembered, and passes once it was forgotten.
 */

const device: RuleMessage['device'] = { id: 'dev-1', name: 'd', type: 't', attributes: {} };
const msg = (code: string, ts: number): RuleMessage => ({ deviceId: device.id, ts, values: { code }, metadata: {}, device, offset: 0, partition: 0 });

function dedupe(maxKeys: number, interval = '10ms') {
  const passed: string[] = [];
  const hits: string[] = [];
  const sinks: RuleSinks = { save: (_d, ts, values) => passed.push(`${values.code as string}@${ts}`), republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
  const engine = new RuleEngine(() => 0);
  engine.put(compileRule({ id: 'r', nodes: [{ id: 'd', type: 'deduplicate', key: 'values.code', interval }, { id: 'out', type: 'save' }] },
    sinks, { limits: { dedupeMaxKeys: maxKeys }, onLimit: (_r, _n, _limit, message) => hits.push(message) }));
  const send = (...messages: [string, number][]) => engine.process(messages.map(([code, ts]) => msg(code, ts)));
  return { send, passed, hits };
}

describe('deduplicate when full', () => {
  it('forgets an expired key at the front and nothing else', () => {
    const { send, passed, hits } = dedupe(2);
    send(['k1', 0], ['k2', 1], ['k3', 20]); // full at k3: k1 (20 ms old) goes, k2 (expired too, but not needed) stays
    send(['k2', 2]); // 1 ms after k2's message: a duplicate while k2 is remembered
    expect(passed).toEqual(['k1@0', 'k2@1', 'k3@20']);
    expect(hits).toEqual([]);
  });

  it('when the front is within its interval, sweeps the keys past theirs elsewhere before forgetting one that is not', () => {
    const { send, passed, hits } = dedupe(3);
    // b came after a but is older (out of order): not at the front. At d, a is 6 ms old, b exactly 10.
    send(['a', 100], ['b', 96], ['c', 105], ['d', 106]);
    expect(hits).toEqual([]);
    send(['a', 107], ['c', 108], ['d', 109]);
    expect(passed).toEqual(['a@100', 'b@96', 'c@105', 'd@106']);
  });

  it('forgets the key let through longest ago, counting it with how long ago that was', () => {
    const { send, passed, hits } = dedupe(2);
    send(['a', 0], ['b', 5], ['a', 10]); // a let through again: now the newest
    send(['c', 12]); // full: b (7 ms ago) goes, not a
    expect(hits).toEqual(['deduplicate remembers at most 2 keys; forgot one last let through 7 ms before, within its interval']);
    send(['a', 13], ['b', 14]);
    expect(passed).toEqual(['a@0', 'b@5', 'a@10', 'c@12', 'b@14']);
  });

  it('a key let through again keeps the others it had room for', () => {
    const { send, passed } = dedupe(2);
    send(['a', 0], ['b', 5], ['b', 15]); // b again, with room: a (expired, but not needed gone) stays
    send(['a', 1]);
    expect(passed).toEqual(['a@0', 'b@5', 'b@15']);
  });
});

describe('deduplicate with many keys', () => {
  const many = (n: number, ts: number): [string, number][] => Array.from({ length: n }, (_, i) => [`k${i}`, ts]);

  it('up to 10,000 keys it sweeps only when full; above, at most once per interval', () => {
    const { send, passed } = dedupe(100_000);
    send(...many(10_000, 0)); // 10,000 keys: no sweep yet
    send(['n1', 5]); // above 10,000: a sweep (nothing past its interval), the next not before 15
    send(['n2', 12]); // no sweep: k0 is still remembered
    send(['k0', 3]);
    expect(passed.slice(10_000)).toEqual(['n1@5', 'n2@12']);
    send(['n3', 15]); // a sweep: every k (15 ms old) goes
    send(['k1', 3]);
    expect(passed.slice(10_000)).toEqual(['n1@5', 'n2@12', 'n3@15', 'k1@3']);
  });

  it('few keys are never swept before the node is full', () => {
    const { send, passed } = dedupe(100);
    send(['a', 0], ['b', 20], ['a', 5]);
    expect(passed).toEqual(['a@0', 'b@20']);
  });
});

describe('deduplicate settings', () => {
  it('a key expression that does not compile is refused naming the key field', () => {
    expect(() => compileRule({ id: 'r', nodes: [{ id: 'd', type: 'deduplicate', key: 'values.', interval: '1s' }] }, { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log() {} }))
      .toThrow(/^rule "r", node "d" \(nodes\[0\]\.key\): /);
  });
});
