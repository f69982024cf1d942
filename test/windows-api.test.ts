import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, waitFor, type CreatedDevice } from './support/test-server.js';

type Result = { rule: string; node: string; group: string; start: number; end: number; values: Record<string, number | null>; final: boolean };

describe('windows in rules, end to end', () => {
  let server: TestServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await TestServer.start();
    device = await server.createDevice('w-1', { type: 'thermo', attributes: { site: 'north' } });
  });
  afterAll(async () => { await server.stop(); });

  const publish = async (points: [number, number][]) => {
    const client = await server.connectDevice(device.token);
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

  it('refuses bad window settings and bad query parameters', async () => {
    const bad = await server.api('POST', '/api/rules', { id: 'bad-w', nodes: [{ id: 'w', type: 'window', window: { kind: 'sliding', size: '10s' } }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^rule "bad-w", node "w" \(nodes\[0\]\.window\): missing required field "slide"/);
    const noAgg = await server.api('POST', '/api/rules', { id: 'bad-w', nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s' } }] });
    expect(((await noAgg.json()) as { error: string }).error).toMatch(/\(nodes\[0\]\.window\): give aggregates/);
    for (const q of ['from=x', 'limit=0', 'from=10&to=5', 'nope=1']) {
      expect((await server.api('GET', `/api/windows?${q}`)).status).toBe(400);
    }
  });
});
