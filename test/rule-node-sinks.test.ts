import { describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import type { CompileContext } from '../server/src/rules/node-kind.js';
import { windowNode } from '../server/src/rules/nodes/window.js';
import { defaultRuleLimits } from '../server/src/rules/rule-limits.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

/**
 * What each node hands its sink and the next node (rules/README.md, Nodes): settings and their
 * defaults, compiled and run in the test process.
 */

const device: RuleMessage['device'] = { id: 'dev-1', name: 'room-1', type: 'room-sensor', attributes: { room: 'A', floor: 2 } };
const msg = (values: Record<string, unknown>, extra: Partial<RuleMessage> = {}): RuleMessage =>
  ({ deviceId: device.id, ts: 1_000, values: values as RuleMessage['values'], metadata: {}, device, offset: 7, partition: 1, ...extra });

function recording() {
  const calls: { sink: string; args: unknown[] }[] = [];
  const record = (sink: string) => (...args: unknown[]) => { calls.push({ sink, args }); };
  const sinks: RuleSinks = {
    save: record('save'), republish: record('republish'), webhook: record('webhook'), window: record('window'), alarm: record('alarm'), log: record('log'),
  };
  return { sinks, calls, of: (sink: string) => calls.filter((c) => c.sink === sink).map((c) => c.args) };
}

/** Runs the messages through `nodes` followed by a log node `after`; returns the sinks' calls and what reached `after`. */
function run(nodes: object[], messages: RuleMessage[], options: { input?: 'telemetry' | 'windows'; limits?: object } = {}) {
  const r = recording();
  const engine = new RuleEngine(() => 0);
  engine.put(compileRule({ id: 'r', ...(options.input ? { input: options.input } : {}), nodes: [...nodes, { id: 'after', type: 'log', message: 'after' }] }, r.sinks, { limits: options.limits }));
  engine.process(messages, options.input);
  const reached = r.of('log').filter((a) => a[2] === 'after').map((a) => a[1] as { values: unknown; metadata: unknown; ts: number });
  return { ...r, reached, stats: engine.stats('r')! };
}

const refused = (nodes: object[], limits?: object) => {
  try {
    compileRule({ id: 'r', nodes }, recording().sinks, { limits });
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_INPUT' });
    return (err as Error).message;
  }
  throw new Error('the rule was accepted');
};

describe('save', () => {
  it('stores the values as they are without a prefix, and passes the message on', () => {
    const { of, reached } = run([{ id: 's', type: 'save' }], [msg({ t: 1, on: true })]);
    expect(of('save')).toEqual([['dev-1', 1_000, { t: 1, on: true }]]);
    expect(reached.map((m) => m.values)).toEqual([{ t: 1, on: true }]);
  });

  it('prefixes every key with `prefix`; the message passed on keeps its own keys', () => {
    const { of, reached } = run([{ id: 's', type: 'save', prefix: 'f_' }], [msg({ t: 1, h: 'x' })]);
    expect(of('save')).toEqual([['dev-1', 1_000, { f_t: 1, f_h: 'x' }]]);
    expect(reached.map((m) => m.values)).toEqual([{ t: 1, h: 'x' }]);
  });
});

describe('log', () => {
  it('logs at info with "rule <id>" by default, the message\'s fields with it, and passes it on', () => {
    const { of, reached } = run([{ id: 'l', type: 'log' }], [msg({ t: 1 }, { metadata: { site: 'p' } })]);
    expect(of('log')[0]).toEqual(['info', { rule: 'r', node: 'l', deviceId: 'dev-1', ts: 1_000, values: { t: 1 }, metadata: { site: 'p' } }, 'rule r']);
    expect(reached).toHaveLength(1);
  });

  it('uses the level and message given', () => {
    const { of } = run([{ id: 'l', type: 'log', level: 'debug', message: 'hot' }], [msg({ t: 1 })]);
    expect(of('log')[0]!.slice(0, 1)).toEqual(['debug']);
    expect(of('log')[0]![2]).toBe('hot');
  });
});

describe('republish', () => {
  it('fills every placeholder of the topic, publishes at QoS 0 without retain by default, and passes the message on', () => {
    const { of, reached } = run([{ id: 'p', type: 'republish', topic: 'rules/{deviceId}/x/{deviceName}-{deviceType}/{deviceId}' }], [msg({ t: 1 }, { entry: 3 })]);
    const [topic, payload, qos, retain] = of('republish')[0]!;
    expect(topic).toBe('rules/dev-1/x/room-1-room-sensor/dev-1');
    expect(JSON.parse(payload as string)).toEqual({ deviceId: 'dev-1', ts: 1_000, values: { t: 1 }, metadata: {}, key: 'r/p/telemetry/1-7-3' });
    expect([qos, retain]).toEqual([0, false]);
    expect(reached).toHaveLength(1);
  });

  it('a topic without placeholders is used as it is; qos and retain as given', () => {
    const { of } = run([{ id: 'p', type: 'republish', topic: 'rules/all', qos: 1, retain: true }], [msg({ t: 1 })]);
    expect(of('republish')[0]!.filter((a, i) => i !== 1)).toEqual(['rules/all', 1, true]);
  });

  it('keys messages of window results by the windows topic', () => {
    const { of } = run([{ id: 'p', type: 'republish', topic: 'rules/w' }], [msg({ avg: 1 })], { input: 'windows' });
    expect(JSON.parse(of('republish')[0]![1] as string).key).toBe('r/p/windows/1-7-0');
  });
});

describe('webhook', () => {
  type Request = { url: string; headers: Record<string, string>; body: string; retries: number; timeoutMs: number; rule: string; node: string };

  it('defaults: JSON content type, 5 retries, 5 s timeout; the message key as the Idempotency-Key; passes the message on', () => {
    const { of, reached } = run([{ id: 'w', type: 'webhook', url: 'http://127.0.0.1:9/hook' }], [msg({ t: 1 })]);
    const [request] = of('webhook')[0] as [Request];
    expect(request).toEqual({
      url: 'http://127.0.0.1:9/hook', headers: { 'content-type': 'application/json', 'idempotency-key': 'r/w/telemetry/1-7-0' },
      body: JSON.stringify({ deviceId: 'dev-1', ts: 1_000, values: { t: 1 }, metadata: {}, key: 'r/w/telemetry/1-7-0' }),
      retries: 5, timeoutMs: 5_000, rule: 'r', node: 'w',
    });
    expect(reached).toHaveLength(1);
  });

  it('sends the headers given, but never their own Idempotency-Key (any case); retries and timeout as given', () => {
    const { of } = run([{ id: 'w', type: 'webhook', url: 'https://example.com/h', headers: { 'X-Token': 'abc', 'Idempotency-KEY': 'mine', 'content-type': 'text/plain' }, retries: 0, timeout: '2s' }], [msg({ t: 1 })]);
    const [request] = of('webhook')[0] as [Request];
    expect(request.headers).toEqual({ 'content-type': 'text/plain', 'X-Token': 'abc', 'idempotency-key': 'r/w/telemetry/1-7-0' });
    expect([request.retries, request.timeoutMs]).toEqual([0, 2_000]);
  });

  it('takes a timeout exactly at the server\'s limit, refuses one a ms over it, and refuses 0', () => {
    expect(() => compileRule({ id: 'r', nodes: [{ id: 'w', type: 'webhook', url: 'http://h/', timeout: '10s' }] }, recording().sinks, { limits: { webhookMaxTimeoutMs: 10_000 } })).not.toThrow();
    expect(refused([{ id: 'w', type: 'webhook', url: 'http://h/', timeout: '10001ms' }], { webhookMaxTimeoutMs: 10_000 })).toMatch(/\(nodes\[0\]\.timeout\): must be at most 10000 ms on this server/);
    expect(refused([{ id: 'w', type: 'webhook', url: 'http://h/', timeout: '0s' }])).toMatch(/\(nodes\[0\]\.timeout\): must be longer than 0/);
    expect(() => compileRule({ id: 'r', nodes: [{ id: 'w', type: 'webhook', url: 'http://h/', timeout: '1ms' }] }, recording().sinks)).not.toThrow();
  });

  it('refuses a URL that does not parse, naming the field', () => {
    // The schema asks for http(s)://; what passes it may still not parse.
    expect(refused([{ id: 'w', type: 'webhook', url: 'http://' }])).toMatch(/\(nodes\[0\]\.url\): "http:\/\/" is not a valid URL/);
  });
});

describe('window and alarm nodes', () => {
  it('a window node hands the message to the window engine with its rule, node and settings, and passes it on', () => {
    const m = msg({ t: 1 });
    const { of, reached } = run([{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '1m', fields: ['t'], ops: ['avg'] } }], [m]);
    const [rule, node, compiled, message] = of('window')[0]!;
    expect([rule, node, message]).toEqual(['r', 'w', m]);
    expect(compiled).toMatchObject({ job: { rule: 'r/w', window: { kind: 'tumbling', size: 60_000 }, aggregates: [{ name: 'avg_t', op: 'avg', field: 't' }] } });
    expect(reached).toHaveLength(1);
  });

  it('a window setting that does not fit is refused naming it under window.', () => {
    expect(refused([{ id: 'w', type: 'window', window: { kind: 'sliding', size: '1m', slide: '2m', fields: ['t'], ops: ['avg'] } }])).toMatch(/\(nodes\[0\]\.window\.slide\): must not be longer than size/);
    expect(refused([{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '1m' } }])).toMatch(/\(nodes\[0\]\.window\): give aggregates, or fields and ops/);
  });

  it('a window setting the schema would not let through still fails naming window, not crashing', () => {
    // Compiled directly, past the schema: a duration that does not parse.
    const ctx = { ruleId: 'r', nodeId: 'w', limits: defaultRuleLimits, fail: (field: string, message: string) => { throw new Error(`${field}: ${message}`); } } as unknown as CompileContext;
    expect(() => windowNode.compile({ window: { kind: 'tumbling', size: '1 minute', fields: ['t'], ops: ['avg'] } }, ctx)).toThrow(/^window: "1 minute" is not a duration/);
  });

  it('an alarm node hands the message to the alarm service with its rule, node and compiled alarm, and passes it on', () => {
    const m = msg({ t: 31 });
    const { of, reached } = run([{ id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MAJOR', create: 'values.t > 30' } }], [m]);
    const [rule, node, alarm, message] = of('alarm')[0]!;
    expect([rule, node, message]).toEqual(['r', 'a', m]);
    expect(alarm).toMatchObject({ type: 'Hot', input: 'telemetry' });
    expect(reached).toHaveLength(1);
  });
});

describe('enrich', () => {
  it('adds nothing when given nothing, and keeps what the metadata had', () => {
    const { reached } = run([{ id: 'e', type: 'enrich' }], [msg({ t: 1 }, { metadata: { site: 'p' } })]);
    expect(Object.keys(reached[0]!.metadata as object)).toEqual(['site']);
  });

  it('device name alone, attributes present only, constants, and computed values that see what came before them', () => {
    const original = msg({ t: 30 }, { metadata: { site: 'p' } });
    const { reached } = run([{ id: 'e', type: 'enrich', device: ['name'], attributes: ['floor', 'absent'], constants: { site: 'q', n: 2 }, computed: { a: 'metadata.site + "!"', b: 'metadata.a + "?"' } }], [original]);
    expect(reached[0]!.metadata).toEqual({ deviceName: 'room-1', floor: 2, site: 'q', n: 2, a: 'q!', b: 'q!?' });
    expect(Object.keys(reached[0]!.metadata as object)).not.toContain('absent'); // not even as undefined
    expect(original.metadata).toEqual({ site: 'p' }); // never changed in place
  });

  it('device type alone', () => {
    const { reached } = run([{ id: 'e', type: 'enrich', device: ['type'] }], [msg({ t: 1 })]);
    expect(reached[0]!.metadata).toEqual({ deviceType: 'room-sensor' });
  });
});

describe('transform', () => {
  const transform = (settings: object, values: Record<string, unknown>) => run([{ id: 't', type: 'transform', ...settings }], [msg(values)]);

  it('without settings passes the values as they are', () => {
    expect(transform({}, { a: 1, b: 'x' }).reached.map((m) => m.values)).toEqual([{ a: 1, b: 'x' }]);
  });

  it('keep alone keeps only those; drop alone drops only those', () => {
    expect(transform({ keep: ['a'] }, { a: 1, b: 2 }).reached[0]!.values).toEqual({ a: 1 });
    expect(transform({ drop: ['a'] }, { a: 1, b: 2 }).reached[0]!.values).toEqual({ b: 2 });
  });

  it('rename moves the keys named and keeps the others', () => {
    expect(transform({ rename: { a: 'x' } }, { a: 1, b: 2 }).reached[0]!.values).toEqual({ x: 1, b: 2 });
  });

  it('converts numbers only, after renaming; a key missing or not a number stays as it is', () => {
    expect(transform({ rename: { c: 't' }, convert: { t: { from: 'C', to: 'F' }, s: { from: 'C', to: 'F' }, gone: { from: 'C', to: 'F' } } }, { c: 100, s: 'hot' }).reached[0]!.values)
      .toEqual({ t: 212, s: 'hot' });
  });

  it('set sees the values as transformed so far, and stores numbers, booleans, strings and maps', () => {
    const { reached } = transform({ rename: { a: 'b' }, set: { n: 'values.b * 2.0', yes: 'values.b > 0', s: '"x"', m: '{"k": values.b}' } }, { a: 2 });
    expect(reached[0]!.values).toEqual({ b: 2, n: 4, yes: true, s: 'x', m: { k: 2 } });
  });

  it('set refuses a null or a list for that message, saying which', () => {
    const nul = transform({ set: { x: 'null' } }, { a: 1 });
    expect(nul.reached).toEqual([]);
    expect(nul.stats.errors[0]!.error).toMatch(/^set\.x: the expression gave null, not a number, boolean, string or map/);
    const list = transform({ set: { x: '[1, 2]' } }, { a: 1 });
    expect(list.stats.errors[0]!.error).toMatch(/^set\.x: the expression gave a list, not/);
  });

  it('drops a message left without values, and never changes the message in place', () => {
    const original = msg({ a: 1 });
    const { reached, stats } = run([{ id: 't', type: 'transform', drop: ['a'] }], [original]);
    expect(reached).toEqual([]);
    expect(stats.nodes[0]).toMatchObject({ in: 1, dropped: 1, errors: 0 });
    expect(original.values).toEqual({ a: 1 });
  });

  it('refuses a unit conversion that cannot be, naming the key', () => {
    expect(refused([{ id: 't', type: 'transform', convert: { t: { from: 'C', to: 'km' } } }])).toMatch(/\(nodes\[0\]\.convert\.t\): cannot convert C to km/);
  });
});

describe('switch', () => {
  it('names the case or the default at fault when a rule is refused', () => {
    expect(refused([{ id: 's', type: 'switch', cases: [{ if: 'true', to: 'l' }, { if: 'values.', to: 'l' }] }, { id: 'l', type: 'log' }])).toMatch(/\(nodes\[0\]\.cases\[1\]\.if\): /);
    expect(refused([{ id: 's', type: 'switch', cases: [{ if: 'true', to: 'l' }], default: 'nowhere' }, { id: 'l', type: 'log' }])).toMatch(/\(nodes\[0\]\.default\): no node "nowhere"/);
  });

  it('without a default drops what no case takes; routes to the first case that holds', () => {
    const r = recording();
    const engine = new RuleEngine(() => 0);
    engine.put(compileRule({ id: 'r', nodes: [
      { id: 's', type: 'switch', cases: [{ if: 'values.v > 5', to: 'a' }, { if: 'values.v > 1', to: 'b' }] },
      { id: 'a', type: 'log', message: 'a', next: null },
      { id: 'b', type: 'log', message: 'b', next: null },
    ] }, r.sinks));
    engine.process([msg({ v: 0 }), msg({ v: 9 }), msg({ v: 3 })]);
    expect(r.of('log').map((a) => a[2])).toEqual(['a', 'b']);
    expect(engine.stats('r')!.nodes[0]).toMatchObject({ in: 3, out: 2, dropped: 1 });
  });
});
