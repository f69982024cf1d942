import type { Logger } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runningAlarmNode } from '../server/src/alarms/alarm-node-spec.js';
import { AlarmOutbox } from '../server/src/alarms/alarm-outbox.js';
import { AlarmService } from '../server/src/alarms/alarm-service.js';
import type { Alarm, AlarmChange } from '../server/src/alarms/alarm-store.js';
import { compileRule } from '../server/src/rules/compiler.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';
import type { RuleInput } from '../server/src/rules/rule-schema.js';
import { openDatabase } from '../server/src/storage/database.js';
import { capturingLogger, silentLogger, tempDir } from './support/test-server.js';

const device = { id: 'dev-1', name: 'dev-1', type: 'thermo', attributes: {} };
const alarmRule = (alarm: Record<string, unknown>, input: RuleInput = 'telemetry') => ({ id: 'r', input, nodes: [{ id: 'a', type: 'alarm', alarm }] });

/**
 * The rule engine, an alarm node and the alarm service over a real SQLite file, with the server's
 * clock in the test's hands; `restart()` makes a new service over the same database, as a restart does.
 */
function alarmsOver(logger: Logger = silentLogger) {
  const db = openDatabase(tempDir());
  const engine = new RuleEngine();
  const outbox = new AlarmOutbox(db, silentLogger);
  const changes: { change: AlarmChange; alarm: Alarm }[] = [];
  const notified: AlarmChange[] = [];
  let now = 1_000_000;
  const make = () => new AlarmService(db, outbox, {
    changed: (alarm, change) => changes.push({ change, alarm: { ...alarm } }),
    notify: (_alarm, change) => notified.push(change),
  }, logger, { now: () => now, alarmNode: (rule, node) => runningAlarmNode(engine.get(rule), node) });
  let service = make();
  const sinks: RuleSinks = {
    save() {}, republish() {}, webhook() {}, window() {}, log() {},
    alarm: (rule, node, alarm, message) => service.evaluate(rule, node, alarm, message),
  };
  let nextOffset = 0;
  return {
    db, engine, changes, notified,
    get service() { return service; },
    put: (doc: unknown) => engine.put(compileRule(doc, sinks)),
    /** One message per point, each at the next offset unless the point says where. */
    send(points: { ts: number; t?: unknown; offset?: number; entry?: number; metadata?: Record<string, unknown> }[], input: RuleInput = 'telemetry') {
      const messages = points.map((p): RuleMessage => ({
        deviceId: device.id, ts: p.ts, values: p.t === undefined ? {} : { t: p.t as number }, metadata: p.metadata ?? {}, device,
        partition: 0, offset: p.offset ?? nextOffset++, entry: p.entry,
      }));
      engine.process(messages, input);
    },
    at(ms: number) { now = ms; },
    restart() { service = make(); },
    alarms: () => service.store.query({ from: 0, to: Number.MAX_SAFE_INTEGER, limit: 1000 }),
    outboxRows: () => db.prepare('SELECT count(*) FROM alarm_outbox').pluck().get() as number,
    /** The webhook notifications queued, oldest first. */
    outbox: () => (db.prepare('SELECT url, payload FROM alarm_outbox ORDER BY rowid').all() as { url: string; payload: string }[])
      .map((r) => ({ url: r.url, ...(JSON.parse(r.payload) as { change: string; alarm: Record<string, unknown> }) })),
  };
}

describe('alarm conditions', () => {
  it('refuses a condition that is not true or false, naming the field; a message value that is not a boolean fails that message', () => {
    const a = alarmsOver();
    expect(() => a.put(alarmRule({ type: 'X', severity: 'MAJOR', create: '"hot"' }))).toThrow(
      /^rule "r", node "a" \(nodes\[0\]\.alarm\.create\): must be a condition \(true or false\), but its type is string$/);
    expect(() => a.put(alarmRule({ type: 'X', severity: 'MAJOR', create: 'values.t > 1', clear: 'ts + 1.0' }))).toThrow(/\(nodes\[0\]\.alarm\.clear\): .* its type is double/);
    expect(() => a.put(alarmRule({ type: 'X', severity: 'MAJOR', create: 'values.t > 1', escalate: [{ if: '1', severity: 'CRITICAL' }] }))).toThrow(/\(nodes\[0\]\.alarm\.escalate\[0\]\.if\): .* its type is int/);
    // `values.t` may be a boolean: allowed, and checked per message.
    a.put(alarmRule({ type: 'X', severity: 'MAJOR', create: 'values.t' }));
    a.send([{ ts: 1, t: 'yes' }, { ts: 2, t: true }]);
    expect(a.engine.stats('r')!.errors.map((e) => e.error)).toEqual(['alarm.create is of type string for this message, not true or false']);
    expect(a.alarms()).toHaveLength(1);
  });

  it('escalates to the highest severity whose condition holds, whatever the order; an open alarm\'s severity never goes down (as in ThingsBoard)', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30',
      escalate: [{ if: 'values.t > 40', severity: 'MAJOR' }, { if: 'values.t > 50', severity: 'CRITICAL' }] }));
    a.send([{ ts: 1000, t: 55 }]);
    expect(a.alarms()[0]).toMatchObject({ severity: 'CRITICAL', count: 1 });
    a.send([{ ts: 2000, t: 45 }, { ts: 3000, t: 31 }]);
    expect(a.changes.map((c) => [c.change, c.alarm.severity])).toEqual([['created', 'CRITICAL'], ['updated', 'CRITICAL'], ['updated', 'CRITICAL']]);
  });

  it('applies each message once: the same log position again changes nothing; each entry of one record counts', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', times: 3 }));
    const record = [{ ts: 1000, t: 31, offset: 7, entry: 0 }, { ts: 2000, t: 32, offset: 7, entry: 1 }];
    a.send(record);
    a.send(record); // read again, as after a crash
    expect(a.alarms()).toEqual([]);
    a.send([{ ts: 3000, t: 33, offset: 7, entry: 2 }]);
    a.send([{ ts: 3000, t: 33, offset: 7, entry: 2 }, { ts: 1000, t: 31, offset: 6 }]);
    expect(a.alarms()).toMatchObject([{ count: 1, startTs: 3000 }]);
  });

  it('ends the streaks of an alarm an operator clears, as its clear condition does (ThingsBoard): the next alarm needs its full `times` again', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', times: 2 }));
    a.send([{ ts: 1000, t: 31 }, { ts: 2000, t: 32 }]);
    const [first] = a.alarms();
    a.service.clear(first!.id);
    a.send([{ ts: 3000, t: 33 }]);
    expect(a.alarms().map((x) => x.status)).toEqual(['CLEARED_UNACK']);
    a.send([{ ts: 4000, t: 34 }]);
    expect(a.alarms().map((x) => [x.status, x.startTs])).toEqual([['ACTIVE_UNACK', 4000], ['CLEARED_UNACK', 2000]]);
  });
});

describe('`for` conditions on the timer', () => {
  it('raises the alarm of a device gone quiet once the duration is met on the server\'s clock, starting then', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m', details: { t: 'values.t' } }));
    a.at(100_000);
    a.send([{ ts: 100_000, t: 31 }]);
    a.at(110_000);
    a.send([{ ts: 110_000, t: 35 }]);
    a.at(159_999);
    a.service.raiseDue();
    expect(a.alarms()).toEqual([]);
    a.at(160_000);
    a.service.raiseDue();
    expect(a.alarms()).toMatchObject([{ type: 'Held', startTs: 160_000, lastTs: 160_000, count: 1, details: { t: 35 } }]);
    expect(a.notified).toEqual(['created']);
    // The streak goes on: the next reading updates the alarm, whatever its time.
    a.send([{ ts: 150_000, t: 36 }]);
    expect(a.alarms()).toMatchObject([{ count: 2 }]);
    a.at(1_000_000);
    expect(a.service.raiseDue()).toBe(0);
  });

  it('counts what is left of the duration on the server\'s clock from the last message, whatever the device\'s clock says', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m' }));
    // A device an hour behind: its readings held 10 s by its clock; 50 s are left from when the last came.
    a.at(10_000_000);
    a.send([{ ts: 6_400_000, t: 31 }, { ts: 6_410_000, t: 32 }]);
    a.at(10_049_999);
    a.service.raiseDue();
    expect(a.alarms(), 'not raised at once because the device\'s times are an hour old').toEqual([]);
    a.at(10_050_000);
    a.service.raiseDue();
    // It starts when the duration was met, in the device's time, as alarms a message completes do.
    expect(a.alarms()).toMatchObject([{ type: 'Held', startTs: 6_460_000 }]);
    // A device an hour ahead waits the 60 s, not the hour.
    const b = alarmsOver();
    b.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m' }));
    b.at(10_000_000);
    b.send([{ ts: 13_600_000, t: 31 }]);
    b.at(10_060_000);
    b.service.raiseDue();
    expect(b.alarms()).toMatchObject([{ startTs: 13_660_000 }]);
  });

  it('starts an alarm a message completes when the duration was met, not at that message', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m' }));
    a.at(0);
    a.send([{ ts: 0, t: 31 }, { ts: 90_000, t: 32 }]);
    expect(a.alarms()).toMatchObject([{ startTs: 60_000, lastTs: 90_000 }]);
  });

  it('does not raise a due condition again after a restart, nor one whose streak a message ended', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s', webhook: 'http://127.0.0.1:9/hook' }));
    a.at(0);
    a.send([{ ts: 0, t: 31 }]);
    a.at(10_000);
    a.service.raiseDue();
    a.restart();
    a.at(20_000);
    a.service.raiseDue();
    expect(a.alarms()).toMatchObject([{ count: 1 }]);
    expect(a.notified).toEqual(['created']);
    expect(a.outboxRows()).toBe(1);

    const b = alarmsOver();
    b.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s' }));
    b.send([{ ts: 0, t: 31 }, { ts: 5000, t: 20 }]);
    b.at(100_000);
    b.service.raiseDue();
    expect(b.alarms()).toEqual([]);
  });

  it('does not raise for a rule removed, disabled or changed since the streak counted', () => {
    for (const change of ['removed', 'disabled', 'changed'] as const) {
      const a = alarmsOver();
      const spec = { type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s' };
      a.put(alarmRule(spec));
      a.at(0);
      a.send([{ ts: 0, t: 31 }]);
      if (change === 'removed') a.engine.remove('r');
      if (change === 'disabled') a.put({ ...alarmRule(spec), enabled: false });
      if (change === 'changed') a.put(alarmRule({ ...spec, for: '1h' }));
      a.at(10_000);
      a.service.raiseDue();
      expect(a.alarms(), change).toEqual([]);
    }
  });

  it('raises at most maxDuePerTick per tick, the earliest due first', () => {
    const db = alarmsOver();
    db.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1s' }));
    // 600 originators: one message each, a millisecond apart, due 1 s after it.
    for (let i = 0; i < 600; i++) {
      db.at(i);
      db.engine.process([{ deviceId: `d${i}`, ts: i, values: { t: 31 }, metadata: {}, device: { ...device, id: `d${i}` }, partition: 0, offset: i } satisfies RuleMessage]);
    }
    db.at(10_000);
    expect(db.service.raiseDue()).toBe(500);
    expect(db.alarms().map((x) => x.originator).sort()).toEqual(Array.from({ length: 500 }, (_, i) => `d${i}`).sort());
    expect(db.service.raiseDue()).toBe(100);
    expect(db.alarms()).toHaveLength(600);
    expect(db.service.raiseDue()).toBe(0);
  });
});

describe('alarms on window results', () => {
  const window = (end: number, update = false, offset?: number) => ({
    ts: end, t: 31, offset, metadata: { windowRule: 'w', windowNode: 'n', windowStart: end - 60_000, windowEnd: end, update },
  });

  it('takes each window once: a late update of it, or its result appended again after a restart, is no second occurrence', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Warm', severity: 'MINOR', create: 'values.t > 30', times: 2 }, 'windows'));
    a.send([window(60_000), window(60_000, true)], 'windows');
    a.send([window(60_000)], 'windows'); // the same result at a new offset of the windows topic
    expect(a.alarms()).toEqual([]);
    a.send([window(120_000)], 'windows');
    expect(a.alarms()).toMatchObject([{ startTs: 120_000, count: 1 }]);
  });
});

describe('alarm service: streaks, clears and what it tells', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('ends a streak on a message where the create condition does not hold: `times` counts again; without a clear condition the alarm stays open', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', times: 2 }));
    a.send([{ ts: 1000, t: 31 }, { ts: 2000, t: 25 }, { ts: 3000, t: 31 }]);
    expect(a.alarms()).toEqual([]);
    a.send([{ ts: 4000, t: 32 }]);
    expect(a.alarms()).toMatchObject([{ startTs: 4000, count: 1, status: 'ACTIVE_UNACK' }]);
    a.send([{ ts: 5000, t: 10 }, { ts: 6000, t: 5 }]);
    expect(a.alarms()).toMatchObject([{ status: 'ACTIVE_UNACK', count: 1, clearTs: null }]);
  });

  it('clears the open alarm when its clear condition holds, once per message, and ends the streaks of every rule raising that type', () => {
    const a = alarmsOver();
    a.put({ id: 'r', nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MAJOR', create: 'values.t > 40', clear: 'values.t < 20' } }] });
    // Another rule raises the same type; it never sees the cold readings (its filter drops them).
    a.put({ id: 'r2', nodes: [{ id: 'f', type: 'filter', if: 'values.t > 25' }, { id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MINOR', create: 'values.t > 30', times: 2 } }] });
    a.send([{ ts: 1000, t: 31 }, { ts: 2000, t: 32 }]);
    expect(a.alarms()).toMatchObject([{ status: 'ACTIVE_UNACK', severity: 'MINOR', startTs: 2000 }]);
    a.send([{ ts: 3000, t: 10, offset: 100 }]);
    expect(a.alarms()).toMatchObject([{ status: 'CLEARED_UNACK', clearTs: 3000 }]);
    expect(a.changes.map((c) => c.change)).toEqual(['created', 'cleared']);
    expect(a.notified).toEqual(['created', 'cleared']);
    // r2's streak ended with the clear: one reading is not its two in a row.
    a.send([{ ts: 4000, t: 33, offset: 101 }]);
    expect(a.alarms().map((x) => x.status)).toEqual(['CLEARED_UNACK']);
    a.send([{ ts: 5000, t: 34, offset: 102 }]);
    expect(a.alarms().map((x) => [x.status, x.startTs])).toEqual([['ACTIVE_UNACK', 5000], ['CLEARED_UNACK', 2000]]);
    // The clear read again after a crash (with what came after it already applied) clears nothing again.
    a.send([{ ts: 3000, t: 10, offset: 100 }, { ts: 4000, t: 33, offset: 101 }, { ts: 5000, t: 34, offset: 102 }]);
    expect(a.alarms().map((x) => [x.status, x.count])).toEqual([['ACTIVE_UNACK', 1], ['CLEARED_UNACK', 1]]);
    expect(a.changes.map((c) => c.change)).toEqual(['created', 'cleared', 'created']);
  });

  it('does not let a clear that found no open alarm clear, when read again after a crash, the alarm another rule raised after it', () => {
    const a = alarmsOver();
    a.put({ id: 'r', nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MAJOR', create: 'values.t > 40', clear: 'values.t < 20' } }] });
    a.put({ id: 'r2', nodes: [{ id: 'f', type: 'filter', if: 'values.t > 25' }, { id: 'a', type: 'alarm', alarm: { type: 'Hot', severity: 'MINOR', create: 'values.t > 30' } }] });
    a.send([{ ts: 1000, t: 10, offset: 0 }]); // nothing open to clear: no change
    expect(a.changes).toEqual([]);
    a.send([{ ts: 2000, t: 31, offset: 1 }]); // r2 raises
    // The rules group's offsets were not committed: both records are read again.
    a.send([{ ts: 1000, t: 10, offset: 0 }, { ts: 2000, t: 31, offset: 1 }]);
    expect(a.alarms()).toMatchObject([{ status: 'ACTIVE_UNACK', count: 1, startTs: 2000 }]);
    expect(a.changes.map((c) => c.change)).toEqual(['created']);
  });

  it('goes on updating the alarm a streak raised, also for a late reading from before its duration was met', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m' }));
    a.send([{ ts: 0, t: 31 }, { ts: 90_000, t: 32 }]);
    a.send([{ ts: 30_000, t: 33 }]);
    expect(a.alarms()).toMatchObject([{ startTs: 60_000, lastTs: 90_000, count: 2 }]);
  });

  it('does not put a streak on the timer before its `times` are met', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s', times: 3 }));
    a.at(0);
    a.send([{ ts: 0, t: 31 }, { ts: 1000, t: 32 }]);
    a.at(1_000_000);
    expect(a.service.raiseDue()).toBe(0);
    expect(a.alarms()).toEqual([]);
  });

  it('takes a streak whose rule went away off the due list: the timer looks at it once', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s' }));
    a.at(0);
    a.send([{ ts: 0, t: 31 }]);
    a.engine.remove('r');
    a.at(20_000);
    expect(a.service.raiseDue()).toBe(1);
    expect(a.service.raiseDue()).toBe(0);
    expect(a.alarms()).toEqual([]);
  });

  it('raises a due alarm of a device whose clock is behind with its last time at the duration\'s end, in the device\'s time', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '1m' }));
    a.at(10_000_000);
    a.send([{ ts: 6_400_000, t: 31 }]);
    a.at(10_060_000);
    a.service.raiseDue();
    expect(a.alarms()).toMatchObject([{ startTs: 6_460_000, lastTs: 6_460_000 }]);
  });

  it('ignores a window\'s late update (alarms on window results), but not a telemetry message that carries update: true', () => {
    const windows = alarmsOver();
    windows.put(alarmRule({ type: 'Warm', severity: 'MINOR', create: 'values.t > 30' }, 'windows'));
    const update = { windowRule: 'w', windowNode: 'n', windowStart: 0, windowEnd: 60_000, update: true };
    windows.send([{ ts: 60_000, t: 31, metadata: update }], 'windows');
    expect(windows.alarms()).toEqual([]);
    const telemetry = alarmsOver();
    telemetry.put(alarmRule({ type: 'Warm', severity: 'MINOR', create: 'values.t > 30' }));
    telemetry.send([{ ts: 1000, t: 31, metadata: { update: true } }]);
    expect(telemetry.alarms()).toMatchObject([{ type: 'Warm' }]);
  });

  it('queues a webhook notification on create, escalate and clear (by its condition or an operator), and tells listeners and the log of every change', () => {
    const { logger, lines } = capturingLogger();
    const a = alarmsOver(logger);
    const hook = 'http://127.0.0.1:9/hook';
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', escalate: [{ if: 'values.t > 40', severity: 'CRITICAL' }], webhook: hook }));
    a.send([{ ts: 1000, t: 31 }, { ts: 2000, t: 32 }, { ts: 3000, t: 45 }, { ts: 4000, t: 10 }, { ts: 5000, t: 33 }]);
    const second = a.alarms()[0]!;
    expect(a.service.acknowledge(second.id)).toMatchObject({ status: 'ACTIVE_ACK' });
    expect(a.service.clear(second.id)).toMatchObject({ status: 'CLEARED_ACK' });
    const changes = ['created', 'updated', 'escalated', 'cleared', 'created', 'acknowledged', 'cleared'];
    expect(a.changes.map((c) => c.change)).toEqual(changes);
    expect(a.changes.at(-2)!.alarm).toMatchObject({ id: second.id, status: 'ACTIVE_ACK' });
    expect(a.changes.at(-1)!.alarm).toMatchObject({ id: second.id, status: 'CLEARED_ACK' });
    expect(a.notified).toEqual(['created', 'escalated', 'cleared', 'created', 'cleared']);
    const queued = a.outbox();
    expect(queued.map((q) => [q.url, q.change, q.alarm.status])).toEqual([
      [hook, 'created', 'ACTIVE_UNACK'], [hook, 'escalated', 'ACTIVE_UNACK'], [hook, 'cleared', 'CLEARED_UNACK'], [hook, 'created', 'ACTIVE_UNACK'], [hook, 'cleared', 'CLEARED_ACK'],
    ]);
    // The payload is the alarm as the API shows it: no webhook URL in it.
    expect(queued[1]!.alarm).toEqual({ ...publicFields(a.alarms()[1]!), lastTs: 3000, count: 3, status: 'ACTIVE_UNACK', clearTs: null, details: expect.any(Object) });
    expect(queued.every((q) => !('webhook' in q.alarm))).toBe(true);
    const logged = lines.filter((l) => typeof l.change === 'string');
    expect(logged.map((l) => l.msg)).toEqual(changes.map((c) => `alarm ${c}: Hot`));
    expect(logged[2]).toMatchObject({ level: 30, alarm: a.alarms()[1]!.id, type: 'Hot', originator: 'dev-1', severity: 'CRITICAL', change: 'escalated' });
  });

  it('queues nothing for an alarm without a webhook', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', escalate: [{ if: 'values.t > 40', severity: 'CRITICAL' }] }));
    a.send([{ ts: 1000, t: 31 }, { ts: 2000, t: 45 }, { ts: 3000, t: 10 }]);
    expect(a.changes.map((c) => c.change)).toEqual(['created', 'escalated', 'cleared']);
    expect(a.outboxRows()).toBe(0);
  });

  it('takes no write lock for a message that changes nothing, nor for a timer tick with nothing due', () => {
    const a = alarmsOver();
    a.put(alarmRule({ type: 'Hot', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', times: 2 }));
    // Another connection holds the write lock; this one would fail at once on taking it.
    a.db.pragma('busy_timeout = 0');
    const other = openDatabase(a.db.name.replace(/sluice\.db$/, ''));
    other.exec('BEGIN IMMEDIATE');
    try {
      a.send([{ ts: 1000, t: 25 }, { ts: 2000, t: 22 }]); // neither condition holds, and no streak to end
      expect(a.service.raiseDue()).toBe(0);
      expect(a.engine.stats('r')!.errors).toEqual([]);
      a.send([{ ts: 3000, t: 31 }]); // this one starts a streak: it must write
      expect(a.engine.stats('r')!.errors).toHaveLength(1);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });

  it('raises due alarms on its timer, logs a tick that failed and tries again on the next; stops for good', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { logger, lines } = capturingLogger();
    const a = alarmsOver(logger);
    a.put(alarmRule({ type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '10s' }));
    a.at(0);
    a.send([{ ts: 0, t: 31 }]);
    a.service.startDueChecks(1000);
    a.service.startDueChecks(1000);
    expect(vi.getTimerCount()).toBe(1);
    a.at(10_000);
    a.db.pragma('busy_timeout = 0');
    const other = openDatabase(a.db.name.replace(/sluice\.db$/, ''));
    other.exec('BEGIN IMMEDIATE');
    vi.advanceTimersByTime(1000);
    other.exec('ROLLBACK');
    other.close();
    expect(a.alarms()).toEqual([]);
    expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual(['could not raise the alarms that came due; trying again']);
    expect(lines.find((l) => l.level === 50)!.err).toMatchObject({ code: 'SQLITE_BUSY' });
    vi.advanceTimersByTime(1000);
    expect(a.alarms()).toMatchObject([{ type: 'Held', startTs: 10_000 }]);
    a.service.stop();
    expect(vi.getTimerCount()).toBe(0);
    a.service.startDueChecks(1000);
    expect(vi.getTimerCount()).toBe(0);
    // Stopped before it ever started: it never starts.
    a.restart();
    a.service.stop();
    a.service.startDueChecks(1000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not keep the process alive with its timer', () => {
    const a = alarmsOver();
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timeouts();
    a.service.startDueChecks(60_000);
    try {
      expect(timeouts()).toBe(before);
    } finally {
      a.service.stop();
    }
  });
});

/** An alarm's fields as the API shows them. */
function publicFields(alarm: Alarm): Record<string, unknown> {
  const { webhook: _webhook, ...rest } = alarm;
  return rest;
}
