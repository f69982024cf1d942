import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../server/src/storage/database.js';
import { WindowStore } from '../server/src/windows/window-store.js';
import type { WindowResult } from '../server/src/windows/window-operator.js';
import { TestServer, tempDir, waitFor, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

type Result = { rule: string; node: string; group: string; start: number; end: number; values: Record<string, number | null>; final: boolean; replaces?: number[] };

describe('windows in rules, end to end', () => {
  let server: TestServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await TestServer.start();
    device = await server.createDevice('w-1', { type: 'thermo', attributes: { site: 'north' } });
  });
  afterAll(async () => { await server.stop(); });

  const publish = async (points: [number, number][], to = device) => {
    const client = await server.connectDevice(to.token);
    for (const [ts, t] of points) await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts, values: { t } }), { qos: 1 });
    client.end(true);
    await server.sluice.rulesCaughtUp();
  };

  it('aggregates per window, stores the results, pushes them over socket.io and lists late events', async () => {
    const res = await server.api('POST', '/api/rules', {
      id: 'per-10s',
      devices: { types: ['thermo'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', groupBy: { attribute: 'site' }, fields: ['t'], ops: ['avg', 'max', 'count'], outOfOrderness: '0s' } }],
    });
    expect(res.status).toBe(201);
    const socket = connectSocket(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'] });
    const pushed: Result[] = [];
    socket.on('window', (r: Result) => pushed.push(r));
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    try {
      await publish([[1_000, 10], [5_000, 20], [9_999, 30], [12_000, 5]]); // the last one closes [0, 10s)
      const results = await waitFor('the first window', async () => {
        const r = await server.json<Result[]>('GET', '/api/windows?rule=per-10s');
        return r.length > 0 ? r : undefined;
      });
      expect(results).toEqual([{ rule: 'per-10s', node: 'w', group: 'north', start: 0, end: 10_000, values: { avg_t: 20, max_t: 30, count_t: 3 }, final: true }]);
      await waitFor('the live push', () => (pushed.length > 0 ? true : undefined));
      expect(pushed[0]).toMatchObject({ rule: 'per-10s', group: 'north', start: 0, final: true });

      await publish([[3_000, 99]]); // too late: no allowed lateness
      const late = await server.json<{ count: number; events: { ts: number }[] }>('GET', '/api/windows/late');
      expect(late.count).toBe(1);
      expect(late.events[0]).toMatchObject({ ts: 3_000 });
      expect((await server.json<Result[]>('GET', '/api/windows?rule=per-10s'))[0]!.values.count_t).toBe(3);
    } finally {
      socket.close();
    }
  });

  it('a late event that bridges two fired sessions leaves one final session, pushed and passed to rules with what it replaces', async () => {
    const sensor = await server.createDevice('s-1', { type: 'session-sensor' });
    await server.json('POST', '/api/rules', {
      id: 'sessions', devices: { types: ['session-sensor'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'session', gap: '10s', fields: ['t'], ops: ['count', 'sum'], outOfOrderness: '0s', allowedLateness: '1h' } }],
    });
    await server.json('POST', '/api/rules', {
      id: 'on-merged', input: 'windows',
      nodes: [
        { id: 'merged', type: 'filter', if: 'size(metadata.replaces) > 0' },
        { id: 'out', type: 'republish', topic: 'rules/merged/{deviceId}', qos: 1 },
      ],
    });
    const socket = connectSocket(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'] });
    const pushed: Result[] = [];
    socket.on('window', (r: Result) => { if (r.rule === 'sessions') pushed.push(r); });
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    const listener = await server.connectDevice(sensor.token);
    const republished: { deviceId: string; values: Record<string, number>; metadata: Record<string, unknown> }[] = [];
    listener.on('message', (_topic, payload) => republished.push(JSON.parse(payload.toString())));
    await listener.subscribeAsync('rules/merged/#', { qos: 1 });
    const sessions = () => server.json<Result[]>('GET', '/api/windows?rule=sessions');
    const t = 1_000_000;
    try {
      // [t, t+12s) and [t+22s, t+32s); the event at t+60s moves the watermark past both.
      await publish([[t, 1], [t + 2_000, 2], [t + 22_000, 3], [t + 60_000, 4]], sensor);
      await waitFor('both sessions stored', async () => ((await sessions()).length === 2 ? true : undefined));
      // Late, within the lateness: [t+12s, t+22s) touches both, which become one session.
      await publish([[t + 12_000, 5]], sensor);
      const merged = { rule: 'sessions', node: 'w', group: sensor.id, start: t, end: t + 32_000, values: { count_t: 4, sum_t: 11 }, final: true };
      await waitFor('the merged session alone', async () => ((await sessions()).length === 1 ? true : undefined));
      expect(await sessions()).toEqual([merged]);
      await waitFor('the merged session pushed', () => (pushed.length === 3 ? true : undefined));
      expect(pushed[2]).toEqual({ ...merged, replaces: [t + 22_000] });
      await waitFor('the window rule to see the merge', () => (republished.length > 0 ? true : undefined));
      expect(republished).toHaveLength(1);
      expect(republished[0]).toMatchObject({ deviceId: sensor.id, values: { count_t: 4, sum_t: 11 },
        metadata: { windowRule: 'sessions', windowStart: t, windowEnd: t + 32_000, update: true, replaces: [t + 22_000] } });
    } finally {
      listener.end(true);
      socket.close();
    }
  });

  it('refuses bad window settings and bad query parameters', async () => {
    const bad = await server.api('POST', '/api/rules', { id: 'bad-w', nodes: [{ id: 'w', type: 'window', window: { kind: 'sliding', size: '10s' } }] });
    await expectApiError(bad, 400, /^rule "bad-w", node "w" \(nodes\[0\]\.window\): missing required field "slide"/);
    const noAgg = await server.api('POST', '/api/rules', { id: 'bad-w', nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s' } }] });
    expect(((await noAgg.json()) as { error: string }).error).toMatch(/\(nodes\[0\]\.window\): give aggregates/);
    for (const q of ['from=x', 'limit=0', 'from=10&to=5', 'nope=1']) {
      expect((await server.api('GET', `/api/windows?${q}`)).status).toBe(400);
    }
  });
});

describe('the window store', () => {
  const result = (start: number, end: number, final: boolean, extra: Partial<WindowResult> = {}): WindowResult =>
    ({ rule: 'r/w', group: 'g', start, end, values: { n: end - start }, final, update: false, ...extra });

  it('deletes the results a final result replaces, and nothing else', () => {
    const db = openDatabase(tempDir('sluice-window-store-'));
    try {
      const store = new WindowStore(db);
      store.save(result(0, 7, true), 1);
      store.save(result(10, 15, true), 1);
      store.save(result(20, 25, false), 1); // early
      store.save(result(10, 15, true, { group: 'other' }), 1);
      store.save(result(0, 25, false, { replaces: [10, 20] }), 2); // a partial result deletes nothing
      expect(store.query({ group: 'g', from: 0, to: 100, limit: 10 }).map((r) => [r.start, r.final])).toEqual([[0, true], [10, true], [20, false]]);
      store.save(result(0, 25, true, { update: true, replaces: [10, 20] }), 3);
      expect(store.query({ from: 0, to: 100, limit: 10 }).map((r) => [r.group, r.start, r.end, r.final])).toEqual([['g', 0, 25, true], ['other', 10, 15, true]]);
    } finally {
      db.close();
    }
  });
});
