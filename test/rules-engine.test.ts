import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';
import { repoRoot } from './support/child-server.js';

const device: RuleMessage['device'] = { id: 'dev-1', name: 'room-1', type: 'room-sensor', attributes: { room: 'A', floor: 2 } };
const msg = (values: Record<string, number | string | boolean>, ts = 1_000, d = device): RuleMessage =>
  ({ deviceId: d.id, ts, values, metadata: {}, device: d, offset: 0, partition: 0 });

function recordingSinks() {
  const saved: { deviceId: string; ts: number; values: Record<string, unknown> }[] = [];
  const published: { topic: string; payload: string }[] = [];
  const logged: { level: string; text: string; fields: Record<string, unknown> }[] = [];
  const webhooks: { url: string; body: string }[] = [];
  const sinks: RuleSinks = {
    save: (deviceId, ts, values) => saved.push({ deviceId, ts, values }),
    republish: (topic, payload) => published.push({ topic, payload }),
    webhook: (r) => webhooks.push({ url: r.url, body: r.body }),
    window: () => {},
    alarm: () => {},
    log: (level, fields, text) => logged.push({ level, fields, text }),
  };
  return { sinks, saved, published, logged, webhooks };
}

/** Runs messages through one rule and returns what reached its `save` node. */
function run(rule: object, messages: RuleMessage[], random?: () => number) {
  const r = recordingSinks();
  const engine = new RuleEngine(() => 0);
  engine.put(compileRule(rule, r.sinks, random));
  engine.process(messages);
  return { ...r, engine };
}

const rule = (...nodes: object[]) => ({ id: 'r', nodes: [...nodes, { id: 'out', type: 'save' }] });

describe('rule nodes', () => {
  it('filter keeps what matches its condition', () => {
    const { saved } = run(rule({ id: 'f', type: 'filter', if: 'values.t > 25 && device.type == "room-sensor"' }), [msg({ t: 20 }), msg({ t: 30 }), msg({ h: 1 })]);
    expect(saved.map((s) => s.values)).toEqual([{ t: 30 }]);
  });

  it('sample lets every n-th message of each device through', () => {
    const other = { ...device, id: 'dev-2' };
    const { saved } = run(rule({ id: 's', type: 'sample', every: 3 }), [1, 2, 3, 4, 5, 6, 7].flatMap((n) => [msg({ n }), msg({ n }, 1000, other)]));
    expect(saved.filter((s) => s.deviceId === 'dev-1').map((s) => s.values.n)).toEqual([1, 4, 7]);
    expect(saved.filter((s) => s.deviceId === 'dev-2').map((s) => s.values.n)).toEqual([1, 4, 7]);
  });

  it('sample lets at most one message per interval through, by message time', () => {
    const { saved } = run(rule({ id: 's', type: 'sample', interval: '10s' }), [0, 5_000, 9_999, 10_000, 15_000, 25_000].map((ts) => msg({ ts }, ts)));
    expect(saved.map((s) => s.ts)).toEqual([0, 10_000, 25_000]);
  });

  it('sample with a probability uses it', () => {
    const draws = [0.05, 0.5, 0.09, 0.95];
    const { saved } = run(rule({ id: 's', type: 'sample', probability: 0.1 }), draws.map((_, i) => msg({ i })), () => draws.shift()!);
    expect(saved.map((s) => s.values.i)).toEqual([0, 2]);
  });

  it('deduplicate drops a repeated key within the interval', () => {
    const { saved } = run(rule({ id: 'd', type: 'deduplicate', key: 'values.code', interval: '1m' }),
      [msg({ code: 'E1' }, 0), msg({ code: 'E1' }, 30_000), msg({ code: 'E2' }, 31_000), msg({ code: 'E1' }, 61_000)]);
    expect(saved.map((s) => [s.values.code, s.ts])).toEqual([['E1', 0], ['E2', 31_000], ['E1', 61_000]]);
  });

  it('enrich adds device fields, attributes, constants and computed values to the metadata', () => {
    const { engine, logged } = (() => {
      const r = recordingSinks();
      const e = new RuleEngine();
      e.put(compileRule({ id: 'r', nodes: [
        { id: 'e', type: 'enrich', device: ['name', 'type'], attributes: ['room', 'missing'], constants: { site: 'p1' }, computed: { hot: 'values.t > 25', where: 'metadata.site + "/" + metadata.room' } },
        { id: 'l', type: 'log', message: 'x' },
      ] }, r.sinks));
      e.process([msg({ t: 30 })]);
      return { engine: e, logged: r.logged };
    })();
    expect(logged[0]!.fields.metadata).toEqual({ deviceName: 'room-1', deviceType: 'room-sensor', room: 'A', site: 'p1', hot: true, where: 'p1/A' });
    expect(engine.stats('r')!.nodes.map((n) => n.out)).toEqual([1, 1]);
  });

  it('transform keeps, drops, renames, converts units and computes values, in that order', () => {
    const { saved } = run(rule({
      id: 't', type: 'transform', keep: ['t', 'h', 'junk'], drop: ['junk'], rename: { t: 'temp_f' },
      convert: { temp_f: { from: 'C', to: 'F' } }, set: { comfort: 'values.h < 60 && values.temp_f > 68', h2: 'values.h * 2' },
    }), [msg({ t: 100, h: 50, junk: 1, other: 2 })]);
    expect(saved[0]!.values).toEqual({ temp_f: 212, h: 50, comfort: true, h2: 100 });
  });

  it('switch routes by the first matching case, else to default, else drops', () => {
    const r = recordingSinks();
    const engine = new RuleEngine();
    engine.put(compileRule({ id: 'r', nodes: [
      { id: 'route', type: 'switch', cases: [{ if: 'values.v > 10', to: 'high' }, { if: 'values.v > 5', to: 'mid' }], default: 'low' },
      { id: 'high', type: 'log', message: 'high', next: null },
      { id: 'mid', type: 'log', message: 'mid', next: null },
      { id: 'low', type: 'log', message: 'low' },
    ] }, r.sinks));
    engine.process([msg({ v: 20 }), msg({ v: 7 }), msg({ v: 1 })]);
    expect(r.logged.map((l) => l.text)).toEqual(['high', 'mid', 'low']);
  });

  it('republish fills the topic template; webhook and log receive the message', () => {
    const { published, webhooks, logged } = run({ id: 'r', nodes: [
      { id: 'p', type: 'republish', topic: 'rules/{deviceType}/{deviceName}/{deviceId}' },
      { id: 'w', type: 'webhook', url: 'http://127.0.0.1:9/hook' },
      { id: 'l', type: 'log', level: 'warn', message: 'seen' },
    ] }, [msg({ a: 1 }), { ...msg({ a: 2 }), partition: 3, offset: 17, entry: 2 }]);
    expect(published[0]!.topic).toBe('rules/room-sensor/room-1/dev-1');
    // key: the rule, the node, the input topic and the message's place in it (partition-offset-entry).
    expect(JSON.parse(published[0]!.payload)).toEqual({ deviceId: 'dev-1', ts: 1000, values: { a: 1 }, metadata: {}, key: 'r/p/telemetry/0-0-0' });
    expect(JSON.parse(published[1]!.payload)).toMatchObject({ values: { a: 2 }, key: 'r/p/telemetry/3-17-2' });
    expect(JSON.parse(webhooks[0]!.body)).toMatchObject({ deviceId: 'dev-1', values: { a: 1 }, key: 'r/w/telemetry/0-0-0' });
    expect(JSON.parse(webhooks[1]!.body)).toMatchObject({ key: 'r/w/telemetry/3-17-2' });
    expect(logged[0]).toMatchObject({ level: 'warn', text: 'seen' });
  });

  it('applies a rule only to the devices its selector names', () => {
    const other = { id: 'dev-9', name: 'm', type: 'machine', attributes: { room: 'A' } };
    const selected = (devices: object) => run({ ...rule(), devices }, [msg({ a: 1 }), msg({ a: 2 }, 1000, other)]).saved.map((s) => s.deviceId);
    expect(selected({ types: ['machine'] })).toEqual(['dev-9']);
    expect(selected({ ids: ['dev-1'] })).toEqual(['dev-1']);
    expect(selected({ attributes: { room: 'A' } })).toEqual(['dev-1', 'dev-9']);
    expect(selected({ attributes: { floor: 2 } })).toEqual(['dev-1']);
  });

  it('counts an error, records it and goes on with the next message when a node fails', () => {
    const { engine, saved } = run(rule({ id: 'f', type: 'filter', if: 'values.t > 25' }), [msg({ h: 1 }), msg({ t: 30 })]);
    expect(saved).toHaveLength(1);
    const stats = engine.stats('r')!;
    expect(stats.nodes[0]).toMatchObject({ id: 'f', in: 2, out: 1, errors: 1 });
    expect(stats.errors[0]).toMatchObject({ node: 'f', deviceId: 'dev-1', error: expect.stringMatching(/No such key: t/) });
  });

  it('keeps a trace of the last messages in and out of each node when asked', () => {
    const { engine } = run(rule({ id: 'f', type: 'filter', if: 'values.t > 25' }), []);
    engine.setTrace('r', 2);
    engine.process([msg({ t: 1 }), msg({ t: 30 }), msg({ t: 40 }), msg({ t: 2 })]);
    const trace = engine.stats('r')!.trace;
    expect(trace.size).toBe(2);
    expect(trace.nodes.f!.map((t) => [t.in.values.t, t.outcome])).toEqual([[40, 'out'], [2, 'dropped']]);
    expect(trace.nodes.f![0]!.to).toBe('out');
  });

  it('hot reload: a replaced rule applies from the next batch on, with fresh counters', () => {
    const r = recordingSinks();
    const engine = new RuleEngine();
    engine.put(compileRule(rule({ id: 'f', type: 'filter', if: 'values.t > 25' }), r.sinks));
    engine.process([msg({ t: 20 })]);
    engine.put(compileRule(rule({ id: 'f', type: 'filter', if: 'values.t > 15' }), r.sinks));
    engine.process([msg({ t: 20 })]);
    expect(r.saved).toHaveLength(1);
    expect(engine.stats('r')!.nodes[0]!.in).toBe(1);
    engine.put(compileRule({ ...rule({ id: 'f', type: 'filter', if: 'true' }), enabled: false }, r.sinks));
    engine.process([msg({ t: 20 })]);
    expect(r.saved).toHaveLength(1);
  });
});

describe('rule documents that are refused', () => {
  const { sinks } = recordingSinks();
  const refuse = (doc: unknown) => {
    try {
      compileRule(doc, sinks);
    } catch (err) {
      expect(err).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
      return (err as Error).message;
    }
    throw new Error('the rule was accepted');
  };

  it.each([
    ['an unknown node kind', rule({ id: 'x', type: 'teleport' }), /^rule "r", node "x" \(nodes\[0\]\.type\): unknown node kind; the kinds are filter, sample/],
    ['a missing required field', rule({ id: 'f', type: 'filter' }), /^rule "r", node "f" \(nodes\[0\]\): missing required field "if"/],
    ['an unknown field', rule({ id: 'f', type: 'filter', if: 'true', iff: 'x' }), /^rule "r", node "f" \(nodes\[0\]\): unknown field "iff"/],
    ['an expression that does not parse', rule({ id: 'f', type: 'filter', if: 'values.t > ' }), /^rule "r", node "f" \(nodes\[0\]\.if\): Unexpected token/],
    ['a function that does not exist', rule({ id: 't', type: 'transform', set: { x: 'launch(values.t)' } }), /^rule "r", node "t" \(nodes\[0\]\.set\.x\): .*launch/],
    ['reaching for constructor', rule({ id: 'f', type: 'filter', if: 'values.constructor == 1' }), /\(nodes\[0\]\.if\): "constructor" may not be used/],
    ['reaching for __proto__', rule({ id: 'f', type: 'filter', if: 'values["__proto__"] == 1' }), /\(nodes\[0\]\.if\): "__proto__" may not be used/],
    ['reaching for process', rule({ id: 'f', type: 'filter', if: 'process.exit(1) == 1' }), /\(nodes\[0\]\.if\): Unknown variable: process/],
    ['a routing cycle', { id: 'r', nodes: [{ id: 'a', type: 'log', next: 'b' }, { id: 'b', type: 'log', next: 'a' }] }, /^rule "r", node "b" \(nodes\[1\]\): routing makes a cycle: a → b → a/],
    ['a route to a node that does not exist', { id: 'r', nodes: [{ id: 's', type: 'switch', cases: [{ if: 'true', to: 'nowhere' }] }] }, /\(nodes\[0\]\.cases\[0\]\.to\): no node "nowhere"/],
    ['two nodes with one id', { id: 'r', nodes: [{ id: 'a', type: 'log' }, { id: 'a', type: 'log' }] }, /\(nodes\[1\]\.id\): node id "a" is used twice/],
    ['a bad unit', rule({ id: 't', type: 'transform', convert: { t: { from: 'C', to: 'bar' } } }), /\(nodes\[0\]\.convert\.t\): cannot convert C to bar/],
    ['sample with two modes', rule({ id: 's', type: 'sample', every: 2, interval: '1s' }), /node "s" \(nodes\[0\]\): give exactly one/],
    ['no nodes', { id: 'r', nodes: [] }, /^rule "r" \(nodes\): must NOT have fewer than 1 items/],
    ['not an object', [1, 2], /^rule: must be object/],
    ['a bad id', { id: 'no spaces please', nodes: [{ id: 'a', type: 'log' }] }, /^rule "no spaces please" \(id\): must match pattern/],
  ])('%s', (_what, doc, message) => {
    expect(refuse(doc)).toMatch(message);
  });
});

describe('example rules', () => {
  it('every rule in rules/ compiles', () => {
    const dir = path.join(repoRoot, 'rules');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'schema.json');
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) expect(() => compileRule(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), recordingSinks().sinks), f).not.toThrow();
  });
});
