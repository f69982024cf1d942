import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

/**
 * Issue 16, deduplicate: with high-cardinality keys and a long interval it kept every key. Now
 * it keeps at most `dedupeMaxKeys`: keys past their interval go first, then the one longest
 * unseen, whose next message is then let through as new (and counted).
 */

const device: RuleMessage['device'] = { id: 'dev-1', name: 'd', type: 't', attributes: {} };
const msg = (code: string, ts: number): RuleMessage => ({ deviceId: device.id, ts, values: { code }, metadata: {}, device, offset: 0, partition: 0 });

function dedupe(interval: string, maxKeys: number) {
  const saved: { ts: number; code: unknown }[] = [];
  const hits: string[] = [];
  const sinks: RuleSinks = { save: (_d, ts, values) => saved.push({ ts, code: values.code }), republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
  const engine = new RuleEngine(() => 0);
  engine.put(compileRule({ id: 'r', nodes: [{ id: 'd', type: 'deduplicate', key: 'values.code', interval }, { id: 'out', type: 'save' }] },
    sinks, { limits: { dedupeMaxKeys: maxKeys }, onLimit: (_r, _n, limit) => hits.push(limit) }));
  return { engine, saved, hits };
}

describe('deduplicate keeps a bounded number of keys', () => {
  it('at the bound it forgets the key longest unseen: that key\'s next message passes, the recent ones stay deduplicated', () => {
    const { engine, saved, hits } = dedupe('1d', 1000);
    engine.process(Array.from({ length: 5000 }, (_, i) => msg(`k${i}`, i)));
    expect(saved).toHaveLength(5000);
    engine.process([msg('k0', 6000), msg('k4999', 6001)]);
    expect(saved.slice(5000).map((s) => s.code)).toEqual(['k0']);
    expect(engine.stats('r')!.nodes[0]!.limited).toEqual({ dedupe_keys: 4001 });
    expect(hits).toHaveLength(4001);
  });

  it('forgets keys past their interval before any that are not', () => {
    const { engine, saved, hits } = dedupe('10s', 1000);
    engine.process(Array.from({ length: 1000 }, (_, i) => msg(`old${i}`, 0)));
    engine.process([msg('fresh', 20_000), msg('fresh', 20_001), msg('old1', 20_002)]);
    expect(saved.slice(1000).map((s) => s.code)).toEqual(['fresh', 'old1']);
    expect(engine.stats('r')!.nodes[0]!.limited).toEqual({});
    expect(hits).toEqual([]);
  });

  it('the key forgotten is the one whose interval ends first (its last message let through is the oldest)', () => {
    const { engine, saved } = dedupe('1d', 3);
    // "busy" at 3 is a duplicate: its interval still runs from 0, so it is the first to go for "c".
    engine.process([msg('busy', 0), msg('a', 1), msg('b', 2), msg('busy', 3), msg('c', 4)]);
    engine.process([msg('busy', 5), msg('c', 6)]);
    expect(saved.map((s) => s.code)).toEqual(['busy', 'a', 'b', 'c', 'busy']);
  });
});
