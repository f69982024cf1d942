import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceOnPartitionOf, heapUsedAfterGc, metricValue, publishQos1, telemetryRecords } from './support/hostile-input.js';
import { TestServer, tempDir, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

/**
 * Issue 16, finding 4: a device sending thousands of never-seen keys had no cap — every key a new
 * series, storage down to ~10 msg/s, and GET /api/devices?include=latest 307 MB. A device now has
 * at most 1,000 distinct telemetry keys: a message that would add more is refused at ingest
 * (`too_many_keys`), known keys keep flowing, across restarts; the fleet answer carries at most
 * 100 latest values per device.
 */

const TOPIC = 'v1/devices/me/telemetry';

/** 100 keys, key{from}..key{from+99}. */
function keys(from: number, ts: number): string {
  const values: Record<string, number> = {};
  for (let k = from; k < from + 100; k++) values[`key${k}`] = k;
  return JSON.stringify({ ts, values });
}

describe('distinct telemetry keys per device', () => {
  let server: TestServer;
  let sprawling: CreatedDevice;
  let neighbour: CreatedDevice;
  let client: MqttClient;

  beforeAll(async () => {
    server = await TestServer.start({ dataDir: tempDir() });
    sprawling = await server.createDevice('sprawling');
    neighbour = await createDeviceOnPartitionOf(server, sprawling, 'neighbour');
    client = await server.connectDevice(sprawling.token);
  });
  afterAll(async () => {
    client?.end(true);
    await server?.stop();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  const latestOf = (id: string) => server.json<Record<string, { ts: number }>>('GET', `/api/devices/${id}/telemetry/latest`);
  const rejected = (transport: string) => metricValue(server, 'sluice_messages_rejected_total', { transport, reason: 'too_many_keys' });

  it('refuses a message that would take a device past 1,000 keys, and keeps taking its known keys', async () => {
    const heapBefore = heapUsedAfterGc();
    for (let i = 0; i < 10; i++) expect(await publishQos1(client, TOPIC, keys(i * 100, i + 1))).toBe('acked');
    const recordsAtCap = await telemetryRecords(server);

    // Keys 1000..2049, in 20 messages: each refused.
    for (let i = 0; i < 20; i++) expect(await publishQos1(client, TOPIC, keys(1000 + i * 50, 100 + i))).toBe('acked');
    // One new key beside known ones: refused as a whole.
    expect(await publishQos1(client, TOPIC, JSON.stringify({ ts: 40, values: { key0: 0, brandNew: 1 } }))).toBe('acked');
    const http = await fetch(`${server.baseUrl}/api/v1/${sprawling.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 41, values: { another: 1 } }) });
    await expectApiError(http, 400, /already has 1000 telemetry keys.*"another"/);
    expect(client.connected).toBe(true);
    expect(await telemetryRecords(server)).toBe(recordsAtCap);
    expect(await rejected('mqtt')).toBe(21);
    expect(await rejected('http')).toBe(1);
    const reason = (await server.json<{ reason: string }[]>('GET', '/api/rejected?limit=2'))[1]!.reason;
    expect(reason).toMatch(/already has 1000 telemetry keys; this message would add 1 more \("brandNew"\)/);

    // Known keys are taken.
    expect(await publishQos1(client, TOPIC, keys(900, 50))).toBe('acked');
    await server.sluice.storageCaughtUp();
    const latest = await latestOf(sprawling.id);
    expect(Object.keys(latest)).toHaveLength(1000);
    expect(latest.key999!.ts).toBe(50);
    expect(latest.key1000).toBeUndefined();
    expect(heapUsedAfterGc() - heapBefore).toBeLessThan(16 * 1024 * 1024);

    // The neighbour on the same partition is stored, and its own keys are its own.
    const res = await fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: keys(5000, 1) });
    expect(res.status).toBe(200);
    await server.sluice.storageCaughtUp();
    expect(Object.keys(await latestOf(neighbour.id))).toHaveLength(100);
  });

  it('answers the fleet with at most 100 latest values per device, saying which were cut', async () => {
    const fleet = await server.json<{ id: string; latest: Record<string, unknown>; latestTruncated?: boolean }[]>('GET', '/api/devices?include=latest');
    const s = fleet.find((d) => d.id === sprawling.id)!;
    expect(Object.keys(s.latest)).toHaveLength(100);
    expect(s.latestTruncated).toBe(true);
    const n = fleet.find((d) => d.id === neighbour.id)!;
    expect(Object.keys(n.latest)).toHaveLength(100);
    expect(n.latestTruncated).toBeUndefined();
  });

  it('keeps the cap across a restart (the known keys come from the database)', async () => {
    client.end(true);
    const dataDir = server.dataDir;
    await server.stop();
    server = await TestServer.start({ dataDir });
    client = await server.connectDevice(sprawling.token);
    expect(await publishQos1(client, TOPIC, JSON.stringify({ ts: 60, values: { afterRestart: 1 } }))).toBe('acked');
    expect(await publishQos1(client, TOPIC, JSON.stringify({ ts: 61, values: { key5: 5 } }))).toBe('acked');
    await server.sluice.storageCaughtUp();
    const latest = await latestOf(sprawling.id);
    expect(latest.afterRestart).toBeUndefined();
    expect(latest.key5!.ts).toBe(61);
    expect(await rejected('mqtt')).toBe(1);
  });
});
