import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './support/test-server.js';

/** Arrays and nulls inside values are JSON values, stored and given back as sent (as ThingsBoard does). */
describe('JSON values from a device', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server.stop(); });

  it('stores null, arrays and objects sent over MQTT and HTTP, and gives them back with their type', async () => {
    const device = await server.createDevice('json-values');
    const client = await server.connectDevice(device.token);
    try {
      await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 1000, values: { gone: null, list: [1, 'a', { b: [2] }, null], n: 1 } }), { qos: 1 });
    } finally {
      client.end(true);
    }
    const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 2000, values: { gone: [], n: 2 } }) });
    expect(res.status).toBe(200);
    await server.sluice.storageCaughtUp();

    expect(await server.json('GET', `/api/devices/${device.id}/telemetry?keys=gone,list,n&from=0&to=5000`)).toEqual({
      gone: [{ ts: 1000, value: null }, { ts: 2000, value: [] }],
      list: [{ ts: 1000, value: [1, 'a', { b: [2] }, null] }],
      n: [{ ts: 1000, value: 1 }, { ts: 2000, value: 2 }],
    });
    expect(await server.json('GET', `/api/devices/${device.id}/telemetry/latest`)).toEqual({
      gone: { ts: 2000, value: [] }, list: { ts: 1000, value: [1, 'a', { b: [2] }, null] }, n: { ts: 2000, value: 2 },
    });
    // None of it was rejected on the way.
    expect(await server.json('GET', '/api/rejected?limit=10')).toEqual([]);
  });
});
