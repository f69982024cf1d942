import { beforeEach, describe, expect, it } from 'vitest';
import { AlarmStore, higherSeverity, type AlarmTrigger } from '../server/src/alarms/alarm-store.js';
import { openDatabase, type Db } from '../server/src/storage/database.js';
import { tempDir } from './support/test-server.js';

// The alarm store over a real SQLite file, driven directly: the lifecycle of docs/api.md#alarms.

const trigger = (over: Partial<AlarmTrigger> = {}): AlarmTrigger => ({
  type: 'Hot', originator: 'dev-1', rule: 'r', severity: 'MINOR', startTs: 1000, ts: 1000, details: { t: 31 }, webhook: null, ...over,
});
const everything = { from: 0, to: Number.MAX_SAFE_INTEGER, limit: 1000 };

describe('alarm store', () => {
  let db: Db;
  let store: AlarmStore;
  beforeEach(() => {
    db = openDatabase(tempDir());
    store = new AlarmStore(db);
  });

  it('creates an ACTIVE_UNACK alarm on the first trigger, as stored', () => {
    const { alarm, change } = store.trigger(trigger({ startTs: 1000, ts: 1500, webhook: 'http://hook/x', details: { t: 31, nested: { a: [1] } } }));
    expect(change).toBe('created');
    expect(alarm).toEqual({
      id: expect.any(String), type: 'Hot', originator: 'dev-1', rule: 'r', severity: 'MINOR', status: 'ACTIVE_UNACK',
      startTs: 1000, lastTs: 1500, ackTs: null, clearTs: null, count: 1, details: { t: 31, nested: { a: [1] } }, webhook: 'http://hook/x',
    });
    expect(store.get(alarm.id)).toEqual(alarm);
    // A trigger whose time is before its start (a `for` met later than the message): lastTs is the start.
    expect(store.trigger(trigger({ originator: 'dev-2', startTs: 5000, ts: 4000 })).alarm).toMatchObject({ startTs: 5000, lastTs: 5000 });
  });

  it('updates the open alarm on further triggers: count, latest time (never back), details; severity only up', () => {
    const first = store.trigger(trigger()).alarm;
    const second = store.trigger(trigger({ ts: 3000, details: { t: 35 } }));
    expect(second).toMatchObject({ change: 'updated', alarm: { id: first.id, count: 2, lastTs: 3000, severity: 'MINOR', details: { t: 35 } } });
    const late = store.trigger(trigger({ ts: 2000, severity: 'CRITICAL', details: { t: 50 } }));
    expect(late).toMatchObject({ change: 'escalated', alarm: { id: first.id, count: 3, lastTs: 3000, severity: 'CRITICAL', details: { t: 50 } } });
    const lower = store.trigger(trigger({ ts: 4000, severity: 'WARNING' }));
    expect(lower).toMatchObject({ change: 'updated', alarm: { count: 4, lastTs: 4000, severity: 'CRITICAL' } });
    const same = store.trigger(trigger({ ts: 5000, severity: 'CRITICAL' }));
    expect(same.change).toBe('updated');
    expect(store.get(first.id)).toEqual({ ...same.alarm, startTs: 1000 });
    expect(store.get(first.id)).toMatchObject({ count: 5, lastTs: 5000, severity: 'CRITICAL', details: { t: 31 } });
    expect(store.query(everything)).toHaveLength(1);
  });

  it('keeps one open alarm per originator and type, apart from other types and originators', () => {
    store.trigger(trigger());
    store.trigger(trigger({ type: 'Cold' }));
    store.trigger(trigger({ originator: 'dev-2' }));
    store.trigger(trigger());
    const alarms = store.query(everything);
    expect(alarms.map((a) => [a.originator, a.type, a.count]).sort()).toEqual([['dev-1', 'Cold', 1], ['dev-1', 'Hot', 2], ['dev-2', 'Hot', 1]]);
  });

  it('clears the open alarm of a type (the clear condition); a trigger after that raises a new one', () => {
    expect(store.clearOpen('dev-1', 'Hot', 500)).toBeUndefined();
    const first = store.trigger(trigger()).alarm;
    store.trigger(trigger({ type: 'Cold' }));
    const cleared = store.clearOpen('dev-1', 'Hot', 2000);
    expect(cleared).toMatchObject({ id: first.id, status: 'CLEARED_UNACK', clearTs: 2000, ackTs: null });
    expect(store.get(first.id)).toEqual(cleared);
    expect(store.clearOpen('dev-1', 'Hot', 2500)).toBeUndefined();
    const next = store.trigger(trigger({ startTs: 3000, ts: 3000 }));
    expect(next.change).toBe('created');
    expect(next.alarm.id).not.toBe(first.id);
    expect(store.get(first.id)).toMatchObject({ status: 'CLEARED_UNACK', count: 1 });
    // The other type stayed open.
    expect(store.query({ ...everything, status: 'ACTIVE_UNACK' }).map((a) => a.type).sort()).toEqual(['Cold', 'Hot']);
  });

  it('acknowledges an active alarm, which stays open; refuses to acknowledge it twice', () => {
    const { alarm } = store.trigger(trigger());
    const acked = store.acknowledge(alarm.id, 2000);
    expect(acked).toMatchObject({ status: 'ACTIVE_ACK', ackTs: 2000, clearTs: null });
    expect(store.get(alarm.id)).toEqual(acked);
    expect(() => store.acknowledge(alarm.id, 2500)).toThrow(expect.objectContaining({ code: 'CONFLICT', message: expect.stringMatching(/already acknowledged \(ACTIVE_ACK\)/) }));
    // Still the open one: the next trigger updates it, and keeps the acknowledgement.
    expect(store.trigger(trigger({ ts: 3000 }))).toMatchObject({ change: 'updated', alarm: { id: alarm.id, count: 2, status: 'ACTIVE_ACK', ackTs: 2000 } });
    const cleared = store.clear(alarm.id, 4000);
    expect(cleared).toMatchObject({ status: 'CLEARED_ACK', ackTs: 2000, clearTs: 4000 });
    expect(store.get(alarm.id)).toEqual(cleared);
    expect(() => store.acknowledge(alarm.id, 4500)).toThrow(/already acknowledged \(CLEARED_ACK\)/);
  });

  it('clears by id, then acknowledges a cleared alarm, which stays cleared; refuses to clear twice', () => {
    const { alarm } = store.trigger(trigger());
    const cleared = store.clear(alarm.id, 2000);
    expect(cleared).toMatchObject({ status: 'CLEARED_UNACK', clearTs: 2000, ackTs: null });
    expect(() => store.clear(alarm.id, 2500)).toThrow(expect.objectContaining({ code: 'CONFLICT', message: expect.stringMatching(/already cleared \(CLEARED_UNACK\)/) }));
    const acked = store.acknowledge(alarm.id, 3000);
    expect(acked).toMatchObject({ status: 'CLEARED_ACK', ackTs: 3000, clearTs: 2000 });
    expect(store.get(alarm.id)).toEqual(acked);
    expect(() => store.clear(alarm.id, 3500)).toThrow(/already cleared \(CLEARED_ACK\)/);
    // Acknowledging did not reopen it: the next trigger raises a new alarm.
    expect(store.trigger(trigger({ startTs: 4000, ts: 4000 })).change).toBe('created');
    expect(store.clearOpen('dev-1', 'Hot', 5000)).toMatchObject({ startTs: 4000, status: 'CLEARED_UNACK' });
  });

  it('answers not found for an unknown id', () => {
    for (const call of [() => store.get('nope'), () => store.acknowledge('nope', 1), () => store.clear('nope', 1)]) {
      expect(call).toThrow(expect.objectContaining({ code: 'NOT_FOUND', message: 'no alarm "nope"' }));
    }
  });

  it('queries by status, originator and severity, start time in [from, to], newest first, at most limit', () => {
    const a = store.trigger(trigger({ originator: 'a', startTs: 1000, ts: 1000, severity: 'MAJOR' })).alarm;
    const b = store.trigger(trigger({ originator: 'b', startTs: 2000, ts: 2000 })).alarm;
    const c = store.trigger(trigger({ originator: 'a', type: 'Cold', startTs: 3000, ts: 3000 })).alarm;
    store.acknowledge(b.id, 2500);
    const ids = (q: Partial<Parameters<AlarmStore['query']>[0]>) => store.query({ ...everything, ...q }).map((x) => x.id);
    expect(ids({})).toEqual([c.id, b.id, a.id]);
    expect(ids({ limit: 2 })).toEqual([c.id, b.id]);
    expect(ids({ from: 2000, to: 3000 })).toEqual([c.id, b.id]);
    expect(ids({ from: 1000, to: 2000 })).toEqual([b.id, a.id]);
    expect(ids({ from: 1001, to: 2999 })).toEqual([b.id]);
    expect(ids({ device: 'a' })).toEqual([c.id, a.id]);
    expect(ids({ status: 'ACTIVE_ACK' })).toEqual([b.id]);
    expect(ids({ status: 'ACTIVE_UNACK' })).toEqual([c.id, a.id]);
    expect(ids({ severity: 'MAJOR' })).toEqual([a.id]);
    expect(ids({ severity: 'MINOR', device: 'a' })).toEqual([c.id]);
    expect(ids({ status: 'CLEARED_UNACK' })).toEqual([]);
    expect(store.query({ ...everything, device: 'b' })).toEqual([store.get(b.id)]);
  });

  it('orders severities CRITICAL > MAJOR > MINOR > WARNING > INDETERMINATE', () => {
    const order = ['INDETERMINATE', 'WARNING', 'MINOR', 'MAJOR', 'CRITICAL'] as const;
    for (let i = 0; i < order.length; i++) {
      for (let j = 0; j < order.length; j++) {
        expect(higherSeverity(order[i]!, order[j]!), `${order[i]} vs ${order[j]}`).toBe(order[Math.max(i, j)]);
      }
    }
  });
});
