import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { childApi, childRulesCaughtUp } from './support/qos1-streams.js';
import { startHttpReceiver, type HttpReceiver } from './support/http-receiver.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'alarm-crash-admin';
type Alarm = { id: string; type: string; severity: string; status: string; count: number; startTs: number; lastTs: number };
type Notification = { id: string; change: string; alarm: Alarm };

async function post(server: ChildServer, token: string, points: [ts: number, t: number][]): Promise<void> {
  for (const [ts, t] of points) {
    const res = await fetch(`http://127.0.0.1:${server.ports.http}/api/v1/${token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts, values: { t } }) });
    if (res.status !== 200) throw new Error(`telemetry: ${res.status}`);
  }
  await childRulesCaughtUp(server, ADMIN);
}

/** The alarm changes a server announced (each is also its MQTT notification on sluice/alarms/<type>), from its log lines. */
function announced(server: ChildServer): string[] {
  return server.output().split('\n').filter((l) => l.includes('"component":"alarms"') && l.includes('"change"'))
    .map((l) => `${(JSON.parse(l) as { change: string }).change}`);
}

/**
 * kill -9, then the rules group made to re-read the whole log on restart (the window checkpoint
 * gone: every partition from its earliest offset) — the most a crash can make it re-read, since a
 * crash right after any step leaves a checkpoint from before it.
 */
async function crashAndRestart(server: ChildServer, dataDir: string, args: string[]): Promise<ChildServer> {
  server.child.kill('SIGKILL');
  await server.exited;
  const db = new Database(path.join(dataDir, 'sluice.db'));
  try {
    db.prepare('DELETE FROM window_checkpoint').run();
  } finally {
    db.close();
  }
  const next = await startChildSluice(dataDir, args);
  await childRulesCaughtUp(next, ADMIN);
  return next;
}

describe('alarms after kill -9 between the steps of their life', () => {
  /** The webhook endpoint of every alarm here: it keeps every notification (a redelivery keeps its id). */
  let receiver: HttpReceiver;
  beforeAll(async () => { receiver = await startHttpReceiver(() => 200, '/alarms'); });
  afterAll(() => receiver?.close());

  it('applies a streak, a raise, an escalation and a clear once each: same alarm, same count, no notification twice', async () => {
    const rulesDir = tempDir();
    const dataDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'hot.json'), JSON.stringify({
      id: 'hot', devices: { types: ['thermo'] },
      nodes: [{ id: 'a', type: 'alarm', alarm: {
        type: 'Hot', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', times: 3,
        escalate: [{ if: 'values.t > 50', severity: 'CRITICAL' }], webhook: receiver.url,
      } }],
    }));
    const args = ['--admin-token', ADMIN, '--rules-dir', rulesDir];
    const servers: ChildServer[] = [];
    const alarms = () => childApi<Alarm[]>(servers.at(-1)!, ADMIN, 'GET', '/api/alarms');
    try {
      servers.push(await startChildSluice(dataDir, args));
      const device = await childApi<{ id: string; token: string }>(servers[0]!, ADMIN, 'POST', '/api/devices', { name: 'thermo-1', type: 'thermo' });

      // A streak of 2 of 3: re-read, it must not count again (2 + 2 would raise).
      await post(servers.at(-1)!, device.token, [[1000, 31], [2000, 32]]);
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      expect(await alarms()).toEqual([]);

      // The third match raises it.
      await post(servers.at(-1)!, device.token, [[3000, 33]]);
      const [created] = await alarms();
      expect(created).toMatchObject({ status: 'ACTIVE_UNACK', severity: 'MINOR', count: 1, startTs: 3000 });
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      expect(await alarms()).toEqual([created]);

      // Escalated.
      await post(servers.at(-1)!, device.token, [[4000, 55]]);
      const [escalated] = await alarms();
      expect(escalated).toMatchObject({ id: created!.id, severity: 'CRITICAL', count: 2, lastTs: 4000 });
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      expect(await alarms()).toEqual([escalated]);

      // Cleared: re-reading the streak that raised it must not raise it again.
      await post(servers.at(-1)!, device.token, [[5000, 10]]);
      const [cleared] = await alarms();
      expect(cleared).toMatchObject({ id: created!.id, status: 'CLEARED_UNACK', count: 2 });
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      expect(await alarms()).toEqual([cleared]);

      expect(servers.flatMap(announced)).toEqual(['created', 'escalated', 'cleared']);
      const changes = () => [...new Map(receiver.bodies<Notification>().filter((n) => n.alarm.id === created!.id).map((n) => [n.id, n.change])).values()];
      await waitFor('the three webhook notifications', () => (changes().length >= 3 ? true : undefined), 10_000);
      expect(changes()).toEqual(['created', 'escalated', 'cleared']);
    } finally {
      for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
      await Promise.all(servers.map((s) => s.exited));
    }
    const db = new Database(path.join(dataDir, 'sluice.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) FROM alarm_outbox').pluck().get()).toBe(3);
    } finally {
      db.close();
    }
  }, 120_000);

  it('takes a window result that the replay after kill -9 appends again as the same window: no second occurrence, no second raise', async () => {
    const rulesDir = tempDir();
    const dataDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'per-10s.json'), JSON.stringify({
      id: 'per-10s', devices: { types: ['windowed'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', fields: ['t'], ops: ['avg'], outOfOrderness: '0s' } }],
    }));
    fs.writeFileSync(path.join(rulesDir, 'warm.json'), JSON.stringify({
      id: 'warm', input: 'windows', devices: { types: ['windowed'] },
      nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Warm', severity: 'MINOR', create: 'values.avg_t > 30.0', times: 2, webhook: receiver.url } }],
    }));
    const args = ['--admin-token', ADMIN, '--rules-dir', rulesDir];
    const servers: ChildServer[] = [];
    const alarms = () => childApi<Alarm[]>(servers.at(-1)!, ADMIN, 'GET', '/api/alarms');
    /** Waits until the `windows` topic holds `n` results and the rules have read them all. */
    const windowResults = async (n: number) => {
      await waitFor(`${n} results in the windows topic`, async () => {
        const log = await childApi<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>(servers.at(-1)!, ADMIN, 'GET', '/api/log');
        const windows = log.topics.find((t) => t.name === 'windows')!;
        return windows.partitions.reduce((sum, p) => sum + p.endOffset, 0) >= n ? true : undefined;
      }, 15_000);
      await childRulesCaughtUp(servers.at(-1)!, ADMIN);
    };
    try {
      servers.push(await startChildSluice(dataDir, args));
      const device = await childApi<{ id: string; token: string }>(servers[0]!, ADMIN, 'POST', '/api/devices', { name: 'windowed-1', type: 'windowed' });
      // [0, 10 s) is warm: the first of two windows in a row.
      await post(servers.at(-1)!, device.token, [[1000, 35], [11_000, 35]]);
      await windowResults(1);
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      await windowResults(2); // [0, 10 s) again, from the replay
      expect(await alarms()).toEqual([]);
      // [10 s, 20 s) is warm too: raised.
      await post(servers.at(-1)!, device.token, [[21_000, 20]]);
      await windowResults(3);
      const [raised] = await alarms();
      expect(raised).toMatchObject({ type: 'Warm', startTs: 20_000, count: 1 });
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      await windowResults(5);
      expect(await alarms()).toEqual([raised]);
      expect(servers.flatMap(announced)).toEqual(['created']);
    } finally {
      for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
      await Promise.all(servers.map((s) => s.exited));
    }
  }, 120_000);

  it('raises a `for` alarm of a device gone quiet on the timer, once, across kill -9 before and after the raise', async () => {
    const rulesDir = tempDir();
    const dataDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'held.json'), JSON.stringify({
      id: 'held', devices: { types: ['quiet'] },
      nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '3s', webhook: receiver.url } }],
    }));
    const args = ['--admin-token', ADMIN, '--rules-dir', rulesDir];
    const servers: ChildServer[] = [];
    const alarmsOf = async (deviceId: string) => childApi<Alarm[]>(servers.at(-1)!, ADMIN, 'GET', `/api/alarms?device=${deviceId}`);
    try {
      servers.push(await startChildSluice(dataDir, args));
      const quiet = await childApi<{ id: string; token: string }>(servers[0]!, ADMIN, 'POST', '/api/devices', { name: 'quiet-1', type: 'quiet' });
      const sentinel = await childApi<{ id: string; token: string }>(servers[0]!, ADMIN, 'POST', '/api/devices', { name: 'quiet-2', type: 'quiet' });
      // One reading over the threshold, then nothing: the duration ends on the server's clock.
      const since = Date.now();
      await post(servers.at(-1)!, quiet.token, [[since, 31]]);
      expect(await alarmsOf(quiet.id)).toEqual([]);
      // kill -9 before it is due: the condition is remembered and raised by the next server.
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      const [raised] = await waitFor('the alarm raised on the timer', async () => {
        const a = await alarmsOf(quiet.id);
        return a.length > 0 ? a : undefined;
      }, 10_000);
      expect(raised).toMatchObject({ type: 'Held', status: 'ACTIVE_UNACK', count: 1, startTs: since + 3000, lastTs: since + 3000 });

      // kill -9 after the raise: the next server neither raises it again nor counts the reading again.
      servers.push(await crashAndRestart(servers.at(-1)!, dataDir, args));
      // A second device's alarm, due later, shows that the timer has looked at everything due before it.
      const sentinelSince = Date.now();
      await post(servers.at(-1)!, sentinel.token, [[sentinelSince, 35]]);
      await waitFor('the second device\'s alarm', async () => ((await alarmsOf(sentinel.id)).length > 0 ? true : undefined), 10_000);
      expect(await alarmsOf(quiet.id)).toEqual([raised]);
      expect(servers.flatMap(announced)).toEqual(['created', 'created']);
      const ids = () => new Set(receiver.bodies<Notification>().filter((n) => n.alarm.id === raised!.id).map((n) => n.id));
      await waitFor('the webhook notification', () => (ids().size >= 1 ? true : undefined), 10_000);
      expect(ids().size).toBe(1);
    } finally {
      for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
      await Promise.all(servers.map((s) => s.exited));
    }
  }, 120_000);
});
