import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpReceiver } from './support/http-receiver.js';
import { TestServer, tempDir, waitFor, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

type Alarm = { id: string; type: string; originator: string; severity: string; status: string; count: number; startTs: number; lastTs: number; ackTs: number | null; clearTs: number | null; details: { values: Record<string, number> }; change?: string };

const alarmRule = (id: string, alarm: Record<string, unknown>, types = ['thermo']) => ({ id, devices: { types }, nodes: [{ id: 'a', type: 'alarm', alarm }] });

async function post(server: TestServer, device: CreatedDevice, points: [number, number][]): Promise<void> {
  for (const [ts, t] of points) {
    const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts, values: { t } }) });
    expect(res.status).toBe(200);
  }
  await server.sluice.rulesCaughtUp();
}

describe('alarms', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server.stop(); });

  it('raises one alarm for a flapping signal (hysteresis), updates it, clears it, and tells socket.io and MQTT', async () => {
    const device = await server.createDevice('flappy', { type: 'thermo' });
    await server.json('POST', '/api/rules', alarmRule('hot', { type: 'Hot', severity: 'MAJOR', create: 'values.t > 30', clear: 'values.t < 28', escalate: [{ if: 'values.t > 40', severity: 'CRITICAL' }] }));
    const socket = connectSocket(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'] });
    const pushed: Alarm[] = [];
    socket.on('alarm', (a: Alarm) => pushed.push(a));
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    const listener = await server.connectDevice(device.token);
    const published: { change: string }[] = [];
    listener.on('message', (_t, payload) => published.push(JSON.parse(payload.toString()) as { change: string }));
    await listener.subscribeAsync('sluice/alarms/#', { qos: 1 });
    try {
      await post(server, device, [[1000, 31], [2000, 29], [3000, 31.5], [4000, 29.5], [5000, 42], [6000, 28.5]]);
      let alarms = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`);
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ type: 'Hot', status: 'ACTIVE_UNACK', severity: 'CRITICAL', count: 3, startTs: 1000, lastTs: 5000, details: { values: { t: 42 } } });
      await post(server, device, [[7000, 27]]);
      alarms = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`);
      expect(alarms.map((a) => [a.status, a.clearTs])).toEqual([['CLEARED_UNACK', 7000]]);
      await post(server, device, [[8000, 35]]);
      alarms = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`);
      expect(alarms.map((a) => a.status)).toEqual(['ACTIVE_UNACK', 'CLEARED_UNACK']);
      await waitFor('the notifications', () => (published.length >= 4 && pushed.length >= 5 ? true : undefined));
      expect(published.map((p) => p.change)).toEqual(['created', 'escalated', 'cleared', 'created']);
      // Each socket.io event is the alarm after the change, and says what changed.
      expect(pushed.map((a) => [a.change, a.status, a.severity, a.count])).toEqual([
        ['created', 'ACTIVE_UNACK', 'MAJOR', 1], ['updated', 'ACTIVE_UNACK', 'MAJOR', 2], ['escalated', 'ACTIVE_UNACK', 'CRITICAL', 3],
        ['cleared', 'CLEARED_UNACK', 'CRITICAL', 3], ['created', 'ACTIVE_UNACK', 'MAJOR', 1],
      ]);
      await server.json('POST', `/api/alarms/${alarms[0]!.id}/ack`);
      const acked = await waitFor('the acknowledged event', () => pushed.find((a) => a.change === 'acknowledged'));
      expect(acked).toMatchObject({ id: alarms[0]!.id, status: 'ACTIVE_ACK' });
    } finally {
      socket.close();
      listener.end(true);
      await server.api('DELETE', '/api/rules/hot');
    }
  });

  // The rules group applies these messages one after another, so this shows no race: writers racing
  // on one SQLite file are in alarm-store-race.test.ts.
  it('keeps one open alarm per device and type that two rules raise on each of 20 messages, counting every trigger', async () => {
    const device = await server.createDevice('busy', { type: 'thermo2' });
    await server.json('POST', '/api/rules', alarmRule('dup-1', { type: 'Dup', severity: 'MINOR', create: 'values.t > 0' }, ['thermo2']));
    await server.json('POST', '/api/rules', alarmRule('dup-2', { type: 'Dup', severity: 'WARNING', create: 'values.t > 0' }, ['thermo2']));
    await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 1000 + i, values: { t: 1 } }) })));
    await server.sluice.rulesCaughtUp();
    const alarms = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`);
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({ type: 'Dup', count: 40, severity: 'MINOR', status: 'ACTIVE_UNACK' });
  });

  it('acknowledges and clears over REST; refuses unknown, twice-acknowledged and twice-cleared alarms', async () => {
    const device = await server.createDevice('acked', { type: 'thermo3' });
    await server.json('POST', '/api/rules', alarmRule('ack-me', { type: 'AckMe', severity: 'WARNING', create: 'values.t > 0' }, ['thermo3']));
    await post(server, device, [[1000, 1]]);
    const [alarm] = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}&status=ACTIVE_UNACK`);
    const acked = await server.json<Alarm>('POST', `/api/alarms/${alarm!.id}/ack`);
    expect(acked).toMatchObject({ status: 'ACTIVE_ACK', ackTs: expect.any(Number) });
    const again = await server.api('POST', `/api/alarms/${alarm!.id}/ack`);
    await expectApiError(again, 409, /already acknowledged/);
    expect(await server.json<Alarm>('POST', `/api/alarms/${alarm!.id}/clear`)).toMatchObject({ status: 'CLEARED_ACK' });
    const clearedTwice = await server.api('POST', `/api/alarms/${alarm!.id}/clear`);
    await expectApiError(clearedTwice, 409, /already cleared/);
    const unknown = await server.api('POST', '/api/alarms/no-such-alarm/ack');
    expect(unknown.status).toBe(404);
    expect((await server.api('GET', '/api/alarms?status=BROKEN')).status).toBe(400);
    expect((await server.api('GET', '/api/alarms?severity=HUGE')).status).toBe(400);
  });

  it('raises alarms on window results (a rule with "input": "windows")', async () => {
    const device = await server.createDevice('windowed', { type: 'thermo4' });
    await server.json('POST', '/api/rules', { id: 'avg-10s', devices: { types: ['thermo4'] }, nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', fields: ['t'], ops: ['avg'], outOfOrderness: '0s' } }] });
    await server.json('POST', '/api/rules', { id: 'avg-too-high', input: 'windows', devices: { types: ['thermo4'] }, nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'AvgHigh', severity: 'MAJOR', create: 'values.avg_t > 30.0', clear: 'values.avg_t < 25.0' } }] });
    await post(server, device, [[1000, 29], [5000, 35], [9000, 35], [11_000, 20]]); // [0, 10 s) averages 33
    const alarm = await waitFor('the alarm on the window result', async () => (await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`))[0]);
    expect(alarm).toMatchObject({ type: 'AvgHigh', originator: device.id, startTs: 10_000, status: 'ACTIVE_UNACK' });
    expect(alarm.details.values.avg_t).toBeCloseTo(33, 9);
  });

  it('refuses conditions that are not true or false (a string create would never raise), naming the field', async () => {
    for (const [alarm, field, type] of [
      [{ create: '"hot"' }, 'create', 'string'],
      [{ create: 'values.t > 30', clear: 'values.t < 28 ? "yes" : "no"' }, 'clear', 'string'],
      [{ create: 'values.t > 30', escalate: [{ if: 'ts', severity: 'CRITICAL' }] }, 'escalate[0].if', 'double'],
    ] as const) {
      const res = await server.api('POST', '/api/rules', alarmRule('not-a-condition', { type: 'X', severity: 'MAJOR', ...alarm }));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error)
        .toBe(`rule "not-a-condition", node "a" (nodes[0].alarm.${field}): must be a condition (true or false), but its type is ${type}`);
    }
  });

  it('escalates to the highest severity whose condition holds, whatever the order of the entries', async () => {
    const device = await server.createDevice('escalating', { type: 'thermo5' });
    await server.json('POST', '/api/rules', alarmRule('weakest-first', { type: 'Heat', severity: 'MINOR', create: 'values.t > 30',
      escalate: [{ if: 'values.t > 40', severity: 'MAJOR' }, { if: 'values.t > 50', severity: 'CRITICAL' }] }, ['thermo5']));
    await post(server, device, [[1000, 55]]);
    expect(await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`)).toMatchObject([{ severity: 'CRITICAL' }]);
  });

  it('ends the streak of an alarm an operator clears (as ThingsBoard): the next alarm needs its `times` again', async () => {
    const device = await server.createDevice('cleared-by-hand', { type: 'thermo6' });
    await server.json('POST', '/api/rules', alarmRule('twice', { type: 'Twice', severity: 'MINOR', create: 'values.t > 30', times: 2 }, ['thermo6']));
    await post(server, device, [[1000, 31], [2000, 32]]);
    const [raised] = await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`);
    await server.json('POST', `/api/alarms/${raised!.id}/clear`);
    await post(server, device, [[3000, 33]]);
    expect((await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`)).map((a) => a.status)).toEqual(['CLEARED_UNACK']);
    await post(server, device, [[4000, 34]]);
    expect((await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`)).map((a) => [a.status, a.startTs])).toEqual([['ACTIVE_UNACK', 4000], ['CLEARED_UNACK', 2000]]);
  });

  it('takes each window once: a late update of a window does not count as another occurrence', async () => {
    const device = await server.createDevice('late-windows', { type: 'thermo7' });
    await server.json('POST', '/api/rules', { id: 'avg-late', devices: { types: ['thermo7'] }, nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', fields: ['t'], ops: ['avg'], outOfOrderness: '0s', allowedLateness: '1m' } }] });
    await server.json('POST', '/api/rules', { id: 'avg-twice', input: 'windows', devices: { types: ['thermo7'] }, nodes: [{ id: 'a', type: 'alarm', alarm: { type: 'AvgTwice', severity: 'MAJOR', create: 'values.avg_t > 30.0', times: 2 } }] });
    // [0, 10 s) is hot and final at 11 s; the late 2 s updates it; [10 s, 20 s) is hot and final at 21 s: the second window.
    await post(server, device, [[1000, 35], [11_000, 35], [2000, 36], [21_000, 20]]);
    const alarm = await waitFor('the alarm on the second window', async () => (await server.json<Alarm[]>('GET', `/api/alarms?device=${device.id}`))[0]);
    expect(alarm).toMatchObject({ type: 'AvgTwice', startTs: 20_000, count: 1 });
  });

  it('refuses an alarm node without its required settings, naming the node and field', async () => {
    const res = await server.api('POST', '/api/rules', alarmRule('bad-alarm', { type: 'X', create: 'values.t > 1' }));
    await expectApiError(res, 400, /^rule "bad-alarm", node "a" \(nodes\[0\]\.alarm\): missing required field "severity"/);
    const badExpr = await server.api('POST', '/api/rules', alarmRule('bad-alarm', { type: 'X', severity: 'MAJOR', create: 'values.t >' }));
    expect(((await badExpr.json()) as { error: string }).error).toMatch(/\(nodes\[0\]\.alarm\.create\)/);
  });
});

describe('alarm conditions and notifications across restarts and outages', () => {
  it('remembers a duration condition that was counting across a restart; the alarm starts when the duration was met', async () => {
    const dataDir = tempDir();
    const first = await TestServer.start({ dataDir });
    const device = await first.createDevice('slow-heat', { type: 'thermo' });
    await first.json('POST', '/api/rules', alarmRule('held', { type: 'Held', severity: 'MAJOR', create: 'values.t > 30', for: '60s' }));
    // Held since 50 s ago: met 10 s from now, on the server's clock too.
    const since = Date.now() - 50_000;
    await post(first, device, [[since, 31], [since + 30_000, 32]]);
    expect(await first.json<Alarm[]>('GET', '/api/alarms')).toEqual([]);
    await first.stop();
    const second = await TestServer.start({ dataDir });
    try {
      await post(second, device, [[since + 61_000, 33]]);
      const alarms = await second.json<Alarm[]>('GET', '/api/alarms');
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ type: 'Held', startTs: since + 60_000 });
    } finally {
      await second.stop();
    }
  });

  it('delivers every webhook notification after the endpoint refused for 10 s', async () => {
    let acceptFrom = Infinity;
    const hook = await startHttpReceiver(() => (Date.now() < acceptFrom ? 503 : 200), '/alarms');
    const url = hook.url;
    const received = () => hook.requests.filter((r) => r.answer === 200).map((r) => r.json<{ id: string; change: string }>());
    const server = await TestServer.start();
    try {
      const device = await server.createDevice('hooked', { type: 'thermo' });
      acceptFrom = Date.now() + 10_000;
      await server.json('POST', '/api/rules', alarmRule('hooked', { type: 'Hooked', severity: 'MINOR', create: 'values.t > 30', clear: 'values.t < 20', escalate: [{ if: 'values.t > 50', severity: 'CRITICAL' }], webhook: url }));
      await post(server, device, [[1000, 35], [2000, 55], [3000, 10]]);
      await waitFor('all three notifications', () => (received().length >= 3 ? true : undefined), 25_000);
      expect(hook.requests.filter((r) => r.answer === 503).length).toBeGreaterThan(0);
      expect(received().map((r) => r.change).sort()).toEqual(['cleared', 'created', 'escalated']);
      expect(new Set(received().map((r) => r.id)).size).toBe(3);
    } finally {
      await server.stop();
      await hook.close();
    }
  }, 40_000);
});
