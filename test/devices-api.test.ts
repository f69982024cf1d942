import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

describe('operator API: devices', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server?.stop(); });

  it('creates a device with a random token and reads it back', async () => {
    const res = await server.api('POST', '/api/devices', { name: 'boiler-1', type: 'boiler', attributes: { site: 'north', floor: 2 } });
    expect(res.status).toBe(201);
    const device = (await res.json()) as CreatedDevice;
    expect(device).toMatchObject({ name: 'boiler-1', type: 'boiler', attributes: { site: 'north', floor: 2 } });
    expect(device.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(device.token).toMatch(/^[A-Za-z0-9_-]{20}$/);
    const other = await server.createDevice('boiler-2');
    expect(other.token).not.toBe(device.token);
    expect(other.type).toBe('default');

    expect(await server.json('GET', `/api/devices/${device.id}`)).toMatchObject({ id: device.id, name: 'boiler-1' });
    const list = await server.json<CreatedDevice[]>('GET', '/api/devices');
    expect(list.map((d) => d.name)).toEqual(expect.arrayContaining(['boiler-1', 'boiler-2']));
  });

  it('patches name, type and attributes (merge: null removes a key)', async () => {
    const device = await server.createDevice('pump', { attributes: { site: 'a', floor: 1 } });
    const patched = await server.json<CreatedDevice>('PATCH', `/api/devices/${device.id}`, { type: 'pump-v2', attributes: { floor: null, zone: 'z1' } });
    expect(patched).toMatchObject({ name: 'pump', type: 'pump-v2', attributes: { site: 'a', zone: 'z1' }, token: device.token });
    expect(patched.attributes).not.toHaveProperty('floor');
  });

  it('deletes a device', async () => {
    const device = await server.createDevice('short-lived');
    expect((await server.api('DELETE', `/api/devices/${device.id}`)).status).toBe(204);
    expect((await server.api('GET', `/api/devices/${device.id}`)).status).toBe(404);
  });

  const badBodies: [string, unknown, RegExp][] = [
    ['a missing name', { type: 'x' }, /^name: /],
    ['an empty name', { name: '  ' }, /^name: must not be empty/],
    ['a numeric name', { name: 42 }, /^name: must be a string/],
    ['attributes that are not an object', { name: 'x', attributes: [1] }, /^attributes: must be a JSON object/],
    ['an unknown field', { name: 'x', colour: 'red' }, /colour/],
    ['a body that is not an object', [1, 2], /must be a JSON object/],
    ['a body that is not JSON', '{"name":', /^body: not valid JSON/],
  ];
  for (const [what, body, message] of badBodies) {
    it(`answers 400 naming the field for ${what}`, async () => {
      const res = await server.api('POST', '/api/devices', body);
      await expectApiError(res, 400, message);
    });
  }

  it('answers 400 for a bad PATCH body', async () => {
    const device = await server.createDevice('patch-target');
    const res = await server.api('PATCH', `/api/devices/${device.id}`, { name: '' });
    await expectApiError(res, 400, /^name: must not be empty/);
  });

  it('answers 409 for a duplicate name', async () => {
    await server.createDevice('unique-name');
    const res = await server.api('POST', '/api/devices', { name: 'unique-name' });
    await expectApiError(res, 409, /already exists/);
  });

  it('answers 404 for an unknown device id on every route', async () => {
    const id = '00000000-0000-0000-0000-000000000000';
    for (const [method, route, body] of [
      ['GET', `/api/devices/${id}`], ['PATCH', `/api/devices/${id}`, { type: 'x' }], ['DELETE', `/api/devices/${id}`],
      ['GET', `/api/devices/${id}/telemetry/latest`], ['GET', `/api/devices/${id}/telemetry?keys=a`],
    ] as const) {
      const res = await server.api(method, route, body);
      expect(res.status, `${method} ${route}`).toBe(404);
      expect(((await res.json()) as { error: string }).error).toMatch(/no device with id/);
    }
  });

  it('answers 401 without the admin token or with a wrong one', async () => {
    expect((await fetch(`${server.baseUrl}/api/devices`)).status).toBe(401);
    const wrong = await fetch(`${server.baseUrl}/api/devices`, { headers: { authorization: 'Bearer nope' } });
    await expectApiError(wrong, 401, /admin token is wrong/);
    expect((await fetch(`${server.baseUrl}/api/log`)).status).toBe(401);
    expect((await fetch(`${server.baseUrl}/api/rejected`)).status).toBe(401);
  });

  it('answers 404 with a JSON error for an unknown route', async () => {
    const res = await server.api('GET', '/api/nothing-here');
    await expectApiError(res, 404, /no route GET \/api\/nothing-here/);
  });

  it('lists devices with their latest values in one request, and refuses an unknown include', async () => {
    const d = await server.createDevice('with-latest');
    const res = await fetch(`${server.baseUrl}/api/v1/${d.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 5, values: { x: 1 } }) });
    expect(res.status).toBe(200);
    await server.sluice.storageCaughtUp();
    const list = await server.json<{ id: string; latest: Record<string, { ts: number; value: unknown }> }[]>('GET', '/api/devices?include=latest');
    expect(list.find((x) => x.id === d.id)!.latest).toEqual({ x: { ts: 5, value: 1 } });
    const bad = await server.api('GET', '/api/devices?include=everything');
    await expectApiError(bad, 400, /^include: must be latest/);
  });

  it('serves health, metrics and the log description', async () => {
    expect(await (await fetch(`${server.baseUrl}/healthz`)).json()).toMatchObject({ status: 'ok' });
    const metrics = await fetch(`${server.baseUrl}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/);
    expect(await metrics.text()).toMatch(/sluice_process_cpu_seconds_total/);
    const log = await server.json<{ topics: { name: string; partitions: unknown[] }[] }>('GET', '/api/log');
    expect(log.topics).toEqual([
      expect.objectContaining({ name: 'telemetry', partitions: expect.any(Array) }),
      expect.objectContaining({ name: 'windows', partitions: expect.any(Array) }),
    ]);
    expect(log.topics[0]!.partitions).toHaveLength(4);
  });

  it('validates the rejected list limit', async () => {
    for (const bad of ['0', 'abc', '100000']) {
      const res = await server.api('GET', `/api/rejected?limit=${bad}`);
      await expectApiError(res, 400, /^limit: must be/);
    }
  });
});
