import path from 'node:path';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { AlarmOutbox } from '../server/src/alarms/alarm-outbox.js';
import { migrations, openDatabase, type Db } from '../server/src/storage/database.js';
import { startHttpReceiver } from './support/http-receiver.js';
import { TestServer, silentLogger, tempDir, waitFor, type CreatedDevice } from './support/test-server.js';

/**
 * Issue 17, item 5: the notifications of one alarm arrived out of order (created, escalated,
 * cleared as escalated → cleared → created), because each queued notification had its own backoff
 * clock and all due ones went out in parallel. Now an alarm's notifications go out one at a time,
 * in the order they were queued: a later one waits for the one before it to be accepted.
 */

type Notification = { id: string; seq?: number; change: string; alarm?: { id: string } };
type Attempt = Notification & { idempotencyKey: string | undefined; accepted: boolean };
type Answer = 'accept' | 'refuse' | 'drop' | 'hang';

/**
 * A real webhook receiver: `answer` decides each request (200, 500, connection dropped, or no
 * answer ever). Lists every attempt in arrival order.
 */
async function webhookReceiver(answer: (n: Notification, requestNumber: number) => Answer) {
  const statusOf = { accept: 200, refuse: 500, drop: 'drop', hang: 'hang' } as const;
  const receiver = await startHttpReceiver((req, i) => statusOf[answer(req.json<Notification>(), i)], '/alarms');
  const attempts = (): Attempt[] => receiver.requests.map((r) =>
    ({ ...r.json<Notification>(), idempotencyKey: r.headers['idempotency-key'] as string | undefined, accepted: r.answer === 200 }));
  return {
    url: receiver.url,
    get attempts() { return attempts(); },
    failedAttempts: () => attempts().filter((a) => !a.accepted).length,
    acceptedIds: () => new Set(attempts().filter((a) => a.accepted).map((a) => a.id)),
    close: receiver.close,
  };
}

/**
 * The attempts made before every notification queued ahead of them (same alarm, lower `seq`) was
 * accepted: an in-order outbox makes none.
 */
function outOfOrderAttempts(attempts: Attempt[], alarmOf: (a: Attempt) => string, rankOf: (a: Attempt) => number): string[] {
  const accepted = new Map<string, Set<string>>();
  const problems: string[] = [];
  for (const a of attempts) {
    const done = accepted.get(alarmOf(a)) ?? new Set<string>();
    accepted.set(alarmOf(a), done);
    if (rankOf(a) > done.size) problems.push(`${a.change} of alarm ${alarmOf(a)} sent when ${done.size} of its notifications were accepted`);
    if (a.accepted) done.add(a.id);
  }
  return problems;
}

const changeRank: Record<string, number> = { created: 0, escalated: 1, cleared: 2 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function openTempDb(dir = tempDir()): { db: Db; dir: string } {
  const db = openDatabase(dir);
  cleanups.push(() => { if (db.open) db.close(); });
  return { db, dir };
}

/** Calls deliverDue until `done`, within a deadline (the outbox's own timer is not started). */
async function deliverUntil(outbox: AlarmOutbox, what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  await waitFor(what, async () => {
    await outbox.deliverDue();
    return done();
  }, timeoutMs);
}

describe('alarm webhook notifications, per alarm in order', () => {
  it('a receiver that fails for a while then accepts gets every notification, per alarm in order', async () => {
    let accepting = false;
    // Until told to accept, odd-numbered requests lose their connection and even-numbered ones get a 500.
    const receiver = await webhookReceiver((_n, i) => (accepting ? 'accept' : i % 2 === 1 ? 'drop' : 'refuse'));
    cleanups.push(receiver.close);
    const server = await TestServer.start({ alarmRetry: { firstMs: 50, maxMs: 500 } });
    cleanups.push(() => server.stop());
    await server.json('POST', '/api/rules', { id: 'hooked', devices: { types: ['boiler'] }, nodes: [{ id: 'a', type: 'alarm', alarm: {
      type: 'Overheat', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', escalate: [{ if: 'values.t > 50', severity: 'CRITICAL' }], webhook: receiver.url,
    } }] });
    const devices: { device: CreatedDevice; client: MqttClient }[] = [];
    for (let i = 0; i < 4; i++) {
      const device = await server.createDevice(`boiler-${i}`, { type: 'boiler' });
      const client = await server.connectDevice(device.token);
      cleanups.push(() => { client.end(true); });
      devices.push({ device, client });
    }
    const publishAll = async (ts: number, t: number) => {
      for (const { client } of devices) await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts, values: { t } }), { qos: 1 });
      await server.sluice.rulesCaughtUp();
    };
    const failedMoreBy = (n: number) => {
      const target = receiver.failedAttempts() + n;
      return waitFor(`${n} more failed attempts`, () => receiver.failedAttempts() >= target, 10_000);
    };

    // Each change queued while the ones before it are still being refused.
    await publishAll(1000, 35); // created
    await failedMoreBy(2 * devices.length);
    await publishAll(2000, 55); // escalated
    await failedMoreBy(2 * devices.length);
    await publishAll(3000, 10); // cleared
    await failedMoreBy(2 * devices.length);
    accepting = true;
    await waitFor('every notification accepted', () => receiver.acceptedIds().size >= 3 * devices.length, 20_000);

    expect(outOfOrderAttempts(receiver.attempts, (a) => a.alarm!.id, (a) => changeRank[a.change]!)).toEqual([]);
    const alarms = await server.json<{ id: string }[]>('GET', '/api/alarms');
    expect(alarms).toHaveLength(devices.length);
    for (const alarm of alarms) {
      const firstArrivals = new Map<string, Attempt>();
      for (const a of receiver.attempts) if (a.accepted && a.alarm!.id === alarm.id && !firstArrivals.has(a.id)) firstArrivals.set(a.id, a);
      expect([...firstArrivals.values()].map((a) => [a.change, a.seq])).toEqual([['created', 1], ['escalated', 2], ['cleared', 3]]);
    }
    // A retry is the same notification: same id, sent as its Idempotency-Key too.
    for (const a of receiver.attempts) expect(a.idempotencyKey).toBe(a.id);
    expect(new Set(receiver.attempts.map((a) => a.id))).toEqual(receiver.acceptedIds());
    expect(receiver.acceptedIds().size).toBe(3 * devices.length);
  }, 60_000);

  it('sends only the head of an alarm\'s queue: the next one waits for it, even once its own time has come', async () => {
    const receiver = await webhookReceiver(() => 'hang');
    cleanups.push(receiver.close);
    const { db } = openTempDb();
    const outbox = new AlarmOutbox(db, silentLogger, { firstMs: 60_000, maxMs: 60_000 }, Date.now, { maxInFlightPerTarget: 4, timeoutMs: 300 });
    cleanups.push(() => outbox.stop());
    for (const change of ['created', 'escalated', 'cleared']) outbox.add('alarm-1', receiver.url, { change });
    await outbox.deliverDue();
    expect(receiver.attempts.map((a) => [a.change, a.seq])).toEqual([['created', 1]]);
    expect(outbox.stats).toMatchObject({ failedAttempts: 1, pending: 3, inFlight: 0 });
    // The head is backing off; the two behind it are past their next_at but wait for it.
    await outbox.deliverDue();
    expect(receiver.attempts).toHaveLength(1);
  });

  it('one alarm\'s failing notification holds up neither the other alarms of its URL nor other URLs', async () => {
    const receiver = await webhookReceiver((n) => (n.alarm?.id === 'stuck' ? 'refuse' : 'accept'));
    const other = await webhookReceiver(() => 'accept');
    cleanups.push(receiver.close, other.close);
    const { db } = openTempDb();
    const outbox = new AlarmOutbox(db, silentLogger, { firstMs: 10, maxMs: 20 }, Date.now, { maxInFlightPerTarget: 2 });
    cleanups.push(() => outbox.stop());
    for (const change of ['created', 'escalated', 'cleared']) {
      for (const alarm of ['stuck', 'a', 'b', 'c']) outbox.add(alarm, receiver.url, { change, alarm: { id: alarm } });
      outbox.add('elsewhere', other.url, { change, alarm: { id: 'elsewhere' } });
    }
    await deliverUntil(outbox, 'the other alarms\' notifications', () => outbox.stats.delivered === 12);
    expect(new Set(receiver.attempts.filter((a) => a.alarm!.id === 'stuck').map((a) => a.change))).toEqual(new Set(['created']));
    expect(receiver.failedAttempts()).toBeGreaterThan(0);
    expect(outOfOrderAttempts([...receiver.attempts, ...other.attempts], (a) => a.alarm!.id, (a) => changeRank[a.change]!)).toEqual([]);
    expect(outbox.stats.pending).toBe(3);
  });

  it('keeps the order across a restart', async () => {
    let accepting = false;
    const receiver = await webhookReceiver(() => (accepting ? 'accept' : 'refuse'));
    cleanups.push(receiver.close);
    const { db, dir } = openTempDb();
    const first = new AlarmOutbox(db, silentLogger, { firstMs: 10, maxMs: 20 });
    const ids = ['created', 'escalated', 'cleared'].map((change) => first.add('alarm-1', receiver.url, { change }));
    await first.deliverDue();
    first.stop();
    db.close();

    accepting = true;
    const reopened = openTempDb(dir).db;
    const second = new AlarmOutbox(reopened, silentLogger, { firstMs: 10, maxMs: 20 });
    cleanups.push(() => second.stop());
    await deliverUntil(second, 'all three after the restart', () => receiver.acceptedIds().size === 3);
    expect(receiver.attempts.filter((a) => a.accepted).map((a) => [a.id, a.change, a.seq])).toEqual(
      [[ids[0], 'created', 1], [ids[1], 'escalated', 2], [ids[2], 'cleared', 3]]);
    expect(receiver.attempts.filter((a) => !a.accepted).map((a) => a.change)).toEqual(['created']);
  });
});

describe('the outbox migration (seq and queue heads)', () => {
  it('numbers existing notifications per alarm in the order they were written, and sends the rest in that order', async () => {
    const receiver = await webhookReceiver(() => 'accept');
    cleanups.push(receiver.close);
    const dir = tempDir();
    // The schema as it was when the outbox was created, with notifications queued by the old code:
    // alarm-1's escalated was delivered before its created (the bug), alarm-2's were all delivered.
    const old = new Database(path.join(dir, 'sluice.db'));
    const outboxMigration = migrations.findIndex((m) => m.includes('CREATE TABLE alarm_outbox'));
    for (const m of migrations.slice(0, outboxMigration + 1)) old.exec(m);
    old.pragma(`user_version = ${outboxMigration + 1}`);
    const insert = old.prepare('INSERT INTO alarm_outbox (id, alarm_id, url, payload, attempts, next_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const row = (id: string, alarm: string, change: string, attempts: number, nextAt: number, deliveredAt: number | null) =>
      insert.run(id, alarm, receiver.url, JSON.stringify({ id, change, alarm: { id: alarm } }), attempts, nextAt, deliveredAt);
    row('n1', 'alarm-1', 'created', 5, Date.now() + 3_600_000, null); // backing off for an hour
    row('n2', 'alarm-2', 'created', 1, 0, 1);
    row('n3', 'alarm-1', 'escalated', 1, 0, 2);
    row('n4', 'alarm-2', 'cleared', 1, 0, 3);
    row('n5', 'alarm-1', 'cleared', 3, Date.now() + 3_600_000, null);
    old.close();

    const { db } = openTempDb(dir);
    expect(db.pragma('user_version', { simple: true })).toBe(migrations.length);
    expect(db.prepare('SELECT id, seq, head FROM alarm_outbox ORDER BY alarm_id, seq').all()).toEqual([
      { id: 'n1', seq: 1, head: 1 }, { id: 'n3', seq: 2, head: 0 }, { id: 'n5', seq: 3, head: 0 },
      { id: 'n2', seq: 1, head: 0 }, { id: 'n4', seq: 2, head: 0 },
    ]);
    // Backoff belongs to the head: alarm-1's cleared is sent as soon as created is accepted, not in an hour.
    db.prepare("UPDATE alarm_outbox SET next_at = 0 WHERE id = 'n1'").run();
    const outbox = new AlarmOutbox(db, silentLogger);
    cleanups.push(() => outbox.stop());
    await deliverUntil(outbox, 'the two undelivered', () => receiver.acceptedIds().size === 2);
    expect(receiver.attempts.map((a) => [a.id, a.change, a.seq])).toEqual([['n1', 'created', 1], ['n5', 'cleared', 3]]);
    // A new notification of a migrated alarm continues its numbering.
    outbox.add('alarm-2', receiver.url, { change: 'created' });
    await deliverUntil(outbox, 'the new one', () => receiver.acceptedIds().size === 3);
    expect(receiver.attempts.at(-1)).toMatchObject({ seq: 3 });
  });
});
