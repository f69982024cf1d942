import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

describe('device HTTP API', () => {
  let server: TestServer;
  let device: CreatedDevice;
  const post = (token: string, kind: string, body: string | Buffer, contentType = 'application/json') =>
    fetch(`${server.baseUrl}/api/v1/${token}/${kind}`, { method: 'POST', body, headers: { 'content-type': contentType } });

  beforeAll(async () => {
    server = await TestServer.start({ maxPayloadBytes: 512 });
    device = await server.createDevice('http-dev');
  });
  afterAll(async () => { await server?.stop(); });

  it('stores telemetry in all three forms, without the admin token', async () => {
    expect((await post(device.token, 'telemetry', '{"a":1}')).status).toBe(200);
    expect((await post(device.token, 'telemetry', '{"ts":1000,"values":{"b":2}}')).status).toBe(200);
    expect((await post(device.token, 'telemetry', '[{"ts":2000,"values":{"b":3}}]', 'text/plain')).status).toBe(200);
    await server.sluice.storageCaughtUp();
    const latest = await server.json<Record<string, { ts: number; value: unknown }>>('GET', `/api/devices/${device.id}/telemetry/latest`);
    expect(latest.a!.value).toBe(1);
    expect(latest.b).toEqual({ ts: 2000, value: 3 });
  });

  it('stores client attributes', async () => {
    expect((await post(device.token, 'attributes', '{"fw":"2.0"}')).status).toBe(200);
    await server.sluice.storageCaughtUp();
    const got = await server.json<{ clientAttributes: Record<string, unknown> }>('GET', `/api/devices/${device.id}`);
    expect(got.clientAttributes).toEqual({ fw: '2.0' });
  });

  it('answers 401 for an unknown token', async () => {
    const res = await post('wrong-token', 'telemetry', '{"a":1}');
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'unknown device token' });
  });

  it('answers 400 with the reason for a malformed payload, and lists it without the token', async () => {
    const res = await post(device.token, 'telemetry', '{"ts":"x","values":{"a":1}}');
    await expectApiError(res, 400, /"ts" must be a non-negative whole number/);
    const [last] = await server.json<{ topic: string; reason: string; deviceId: string }[]>('GET', '/api/rejected?limit=1');
    expect(last).toMatchObject({ deviceId: device.id, topic: '/api/v1/<token>/telemetry' });
    expect(JSON.stringify(last)).not.toContain(device.token);
  });

  it('answers 413 for a payload over the limit, and lists it', async () => {
    const res = await post(device.token, 'telemetry', JSON.stringify({ big: 'x'.repeat(1000) }));
    await expectApiError(res, 413, /exceeds the 512-byte limit/);
    const [last] = await server.json<{ reason: string; topic: string }[]>('GET', '/api/rejected?limit=1');
    expect(last!.reason).toMatch(/exceeds the 512-byte limit/);
    expect(last!.topic).toBe('/api/v1/<token>/telemetry');
  });

  it('answers 400 for an empty body', async () => {
    const res = await post(device.token, 'telemetry', '');
    expect(res.status).toBe(400);
  });
});
