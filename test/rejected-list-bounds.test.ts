import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceOnPartitionOf, heapUsedAfterGc, metricValue, publishQos1 } from './support/hostile-input.js';
import { TestServer, type CreatedDevice } from './support/test-server.js';

/**
 * Issue 16, finding 3: the rejected list kept each rejected message's topic whole — and the reason
 * of an unknown topic quotes it — so a device publishing to 64 KB topics made the 1,000 entries
 * 130 MB, all of it sent by GET /api/rejected. Each entry now keeps at most 256 characters of
 * topic and 512 of reason, marked as cut.
 */
describe('the rejected list', () => {
  let server: TestServer;
  let hostile: CreatedDevice;
  let neighbour: CreatedDevice;
  let client: MqttClient;

  beforeAll(async () => {
    server = await TestServer.start();
    hostile = await server.createDevice('long-topics');
    neighbour = await createDeviceOnPartitionOf(server, hostile, 'neighbour');
    client = await server.connectDevice(hostile.token);
  });
  afterAll(async () => {
    client?.end(true);
    await server?.stop();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('keeps a bounded prefix of long topics and reasons, marked as cut', async () => {
    const heapBefore = heapUsedAfterGc();
    const topic = (i: number) => `v1/devices/me/${String(i).padStart(4, '0')}/${'t'.repeat(60_000)}`;
    for (let i = 0; i < 200; i += 20) {
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, j) => publishQos1(client, topic(i + j), '{"a":1}')));
      expect(outcomes.every((o) => o === 'acked')).toBe(true);
    }
    expect(client.connected).toBe(true);
    expect(heapUsedAfterGc() - heapBefore).toBeLessThan(8 * 1024 * 1024); // 200 entries held ~24 MB

    const res = await server.api('GET', '/api/rejected?limit=1000');
    const text = await res.text();
    expect(text.length).toBeLessThan(200 * 1024);
    const entries = JSON.parse(text) as { topic: string; reason: string; deviceId: string }[];
    expect(entries).toHaveLength(200);
    for (const e of entries) {
      expect(e.deviceId).toBe(hostile.id);
      expect(e.topic.length).toBeLessThanOrEqual(256);
      expect(e.topic.endsWith('…')).toBe(true);
      expect(e.reason.length).toBeLessThanOrEqual(512);
      expect(e.reason.endsWith('…')).toBe(true);
    }
    expect(entries[0]!.topic.startsWith('v1/devices/me/0199/ttt')).toBe(true);
    expect(entries[0]!.reason).toMatch(/^unknown topic "v1\/devices\/me\/0199\/ttt/);
    expect(await metricValue(server, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'unknown_topic' })).toBe(200);

    // A short topic is kept as it is; the neighbour on the same partition is stored.
    expect(await publishQos1(client, 'v1/devices/me/other', '{"a":1}')).toBe('acked');
    expect((await server.json<{ topic: string }[]>('GET', '/api/rejected?limit=1'))[0]!.topic).toBe('v1/devices/me/other');
    const posted = await fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: '{"ts":1,"values":{"n":1}}' });
    expect(posted.status).toBe(200);
    await server.sluice.storageCaughtUp();
    expect(await server.json('GET', `/api/devices/${neighbour.id}/telemetry/latest`)).toEqual({ n: { ts: 1, value: 1 } });
  });
});
