import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { TestServer, waitFor, type CreatedDevice } from './support/test-server.js';

type Latest = Record<string, { ts: number; value: unknown }>;
type Rejected = { ts: number; deviceId?: string; topic: string; reason: string }[];

describe('MQTT device API', () => {
  let server: TestServer;
  let device: CreatedDevice;
  let client: MqttClient;

  beforeAll(async () => {
    server = await TestServer.start({ maxPayloadBytes: 1024 });
    device = await server.createDevice('mqtt-dev', { type: 'room-sensor' });
    client = await server.connectDevice(device.token);
  });
  afterAll(async () => {
    client?.end(true);
    await server?.stop();
  });

  const latest = () => server.json<Latest>('GET', `/api/devices/${device.id}/telemetry/latest`);
  const rejected = () => server.json<Rejected>('GET', '/api/rejected');

  it('stores flat values at server time, acknowledged at QoS 1', async () => {
    const before = Date.now();
    await client.publishAsync('v1/devices/me/telemetry', '{"temperature":21.5,"door":true,"mode":"eco","pos":{"lat":1.5}}', { qos: 1 });
    await server.sluice.storageCaughtUp();
    const values = await latest();
    expect(values.temperature!.value).toBe(21.5);
    expect(values.door!.value).toBe(true);
    expect(values.mode!.value).toBe('eco');
    expect(values.pos!.value).toEqual({ lat: 1.5 });
    expect(values.temperature!.ts).toBeGreaterThanOrEqual(before);
    expect(values.temperature!.ts).toBeLessThanOrEqual(Date.now());
  });

  it('sends the QoS 1 PUBACK only once the message is in the log', async () => {
    const logEnd = async () => {
      const log = await server.json<{ topics: { partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
      return log.topics[0]!.partitions.reduce((sum, p) => sum + p.endOffset, 0);
    };
    const before = await logEnd();
    for (let i = 0; i < 5; i++) {
      await client.publishAsync('v1/devices/me/telemetry', `{"seq":${i}}`, { qos: 1 });
      // No waiting: the acknowledgement itself says the record is there.
      expect(await logEnd()).toBe(before + i + 1);
    }
  });

  it('stores {ts, values} and arrays at the device\'s time', async () => {
    await client.publishAsync('v1/devices/me/telemetry', '{"ts":1000,"values":{"pressure":1013}}', { qos: 1 });
    await client.publishAsync('v1/devices/me/telemetry', '[{"ts":2000,"values":{"pressure":1014}},{"ts":3000,"values":{"pressure":1015}}]', { qos: 1 });
    await server.sluice.storageCaughtUp();
    const series = await server.json<Record<string, { ts: number; value: number }[]>>('GET', `/api/devices/${device.id}/telemetry?keys=pressure`);
    expect(series.pressure).toEqual([{ ts: 1000, value: 1013 }, { ts: 2000, value: 1014 }, { ts: 3000, value: 1015 }]);
  });

  it('stores client attributes', async () => {
    await client.publishAsync('v1/devices/me/attributes', '{"firmware":"1.2.3","model":"TH-1"}', { qos: 1 });
    await server.sluice.storageCaughtUp();
    const got = await server.json<{ clientAttributes: Record<string, unknown> }>('GET', `/api/devices/${device.id}`);
    expect(got.clientAttributes).toEqual({ firmware: '1.2.3', model: 'TH-1' });
  });

  it('works at QoS 0 too', async () => {
    // A value stored before under the same key must not pass for the QoS 0 one.
    await client.publishAsync('v1/devices/me/telemetry', '{"qos0":-1}', { qos: 1 });
    await server.sluice.storageCaughtUp();
    expect((await latest()).qos0!.value).toBe(-1);
    const sent = 1 + Math.floor(Math.random() * 1e9);
    await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ qos0: sent }), { qos: 0 });
    await waitFor('the QoS 0 value', async () => (await latest()).qos0?.value === sent);
  });

  const badPayloads: [string, string | Buffer, RegExp][] = [
    ['non-JSON', 'temperature=21', /not valid JSON/],
    ['an array of numbers', '[1,2,3]', /expected a JSON object at \[0\]/],
    ['ts that is not a number', '{"ts":"now","values":{"a":1}}', /"ts" must be a non-negative whole number/],
    ['empty values', '{"ts":1,"values":{}}', /no values/],
    ['a payload over the size limit', JSON.stringify({ blob: 'x'.repeat(2000) }), /exceeds the 1024-byte limit/],
  ];
  for (const [name, payload, reason] of badPayloads) {
    it(`rejects ${name}, keeps the device connected and loses nothing stored`, async () => {
      const storedBefore = await latest();
      await client.publishAsync('v1/devices/me/telemetry', payload, { qos: 1 });
      const list = await rejected();
      expect(list[0]).toMatchObject({ deviceId: device.id, topic: 'v1/devices/me/telemetry' });
      expect(list[0]!.reason).toMatch(reason);
      expect(client.connected).toBe(true);
      // The same connection goes on working, and what was stored before is still there.
      await client.publishAsync('v1/devices/me/telemetry', '{"alive":1}', { qos: 1 });
      await server.sluice.storageCaughtUp();
      const after = await latest();
      for (const key of Object.keys(storedBefore)) expect(after[key]).toBeDefined();
      expect(after.alive!.value).toBe(1);
    });
  }

  it('rejects a publish to an unknown topic and names the right ones', async () => {
    await client.publishAsync('v1/devices/me/telemetri', '{"a":1}', { qos: 1 });
    const [last] = await rejected();
    expect(last).toMatchObject({ topic: 'v1/devices/me/telemetri', deviceId: device.id });
    expect(last!.reason).toMatch(/unknown topic .*v1\/devices\/me\/telemetry/);
    expect(client.connected).toBe(true);
  });

  it('counts rejections by reason in /metrics', async () => {
    const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(text).toMatch(/sluice_messages_rejected_total\{transport="mqtt",reason="not_json"\} [1-9]/);
    expect(text).toMatch(/sluice_messages_rejected_total\{transport="mqtt",reason="too_large"\} [1-9]/);
    expect(text).toMatch(/sluice_messages_rejected_total\{transport="mqtt",reason="unknown_topic"\} [1-9]/);
    expect(text).toMatch(/sluice_messages_in_total\{transport="mqtt",kind="telemetry"\} [1-9]/);
    expect(text).toMatch(/sluice_log_end_offset\{topic="telemetry",partition="\d"\} [1-9]/);
    expect(text).toMatch(/sluice_consumer_lag\{group="storage",topic="telemetry",partition="\d"\} 0/);
  });

  it('refuses a wrong token and an empty one at CONNECT', async () => {
    await expect(server.connectDevice('not-a-token')).rejects.toThrow(/Bad username or password/i);
    await expect(server.connectDevice('')).rejects.toThrow(/Bad username or password/i);
    await expect(server.connectDevice('', { username: undefined })).rejects.toThrow(/Bad username or password/i);
  });

  it('does not let a device subscribe to other devices\' telemetry', async () => {
    // SUBACK return code 0x80 is a refusal; mqtt.js turns it into an error.
    await expect(client.subscribeAsync('v1/devices/me/telemetry', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(client.subscribeAsync('#', { qos: 0 })).rejects.toThrow(/Subscribe error/);
    expect(client.connected).toBe(true);
    const own = await client.subscribeAsync('v1/devices/me/attributes', { qos: 1 });
    expect(own[0]!.qos).toBe(1);
  });

  it('closes the connections of a deleted device and refuses its token afterwards', async () => {
    const doomed = await server.createDevice('doomed');
    const c = await server.connectDevice(doomed.token);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    expect((await server.api('DELETE', `/api/devices/${doomed.id}`)).status).toBe(204);
    await closed;
    c.end(true);
    await expect(server.connectDevice(doomed.token)).rejects.toThrow(/Bad username or password/i);
  });
});
