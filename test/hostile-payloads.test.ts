import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDeviceOnPartitionOf, deeplyNestedPayload, heapUsedAfterGc, metricValue, publishQos1, telemetryRecords,
} from './support/hostile-input.js';
import { TestServer, waitFor, type CreatedDevice } from './support/test-server.js';
import { expectApiError } from './support/api-errors.js';

/**
 * Issue 16, finding 2: a valid-looking message whose value nests ~25,000 arrays was accepted; with
 * a dashboard connected, socket.io's recursive hasBinary check threw on it, the device lost its
 * connection without a PUBACK although the message was in the log, re-sent it, and it was
 * appended again and again. Ingest now refuses such payloads (too deep, too many keys) with a
 * reason; the device keeps its connection and its PUBACK, and nothing reaches the log.
 */

const TOPIC = 'v1/devices/me/telemetry';

interface Rejected { ts: number; deviceId?: string; topic: string; reason: string }

describe('hostile payloads at ingest', () => {
  let server: TestServer;
  let hostile: CreatedDevice;
  let neighbour: CreatedDevice;
  let client: MqttClient;
  let dashboard: Socket;
  const pushed: { deviceId: string }[] = [];

  beforeAll(async () => {
    server = await TestServer.start();
    hostile = await server.createDevice('hostile');
    neighbour = await createDeviceOnPartitionOf(server, hostile, 'neighbour');
    dashboard = io(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      dashboard.once('connect', () => resolve());
      dashboard.once('connect_error', reject);
    });
    dashboard.on('telemetry', (t: { deviceId: string }) => pushed.push(t));
    client = await server.connectDevice(hostile.token);
    client.on('error', () => {});
  });
  afterAll(async () => {
    dashboard?.close();
    client?.end(true);
    await server?.stop();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  /** The neighbour on the same partition still gets through to SQLite and to the dashboard. */
  async function neighbourStillStored(ts: number): Promise<void> {
    const res = await fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts, values: { ok: ts } }) });
    expect(res.status).toBe(200);
    await server.sluice.storageCaughtUp();
    const latest = await server.json<Record<string, { ts: number }>>('GET', `/api/devices/${neighbour.id}/telemetry/latest`);
    expect(latest.ok?.ts).toBe(ts);
    await waitFor('the neighbour pushed live', () => pushed.some((p) => p.deviceId === neighbour.id) || undefined);
  }

  it('refuses 25,000 nested arrays as too_complex, with the PUBACK, the connection kept and nothing appended', async () => {
    const recordsBefore = await telemetryRecords(server);
    const heapBefore = heapUsedAfterGc();
    for (let i = 0; i < 20; i++) expect(await publishQos1(client, TOPIC, deeplyNestedPayload(25_000))).toBe('acked');
    expect(client.connected).toBe(true);
    expect(heapUsedAfterGc() - heapBefore).toBeLessThan(8 * 1024 * 1024);

    const rejected = await server.json<Rejected[]>('GET', '/api/rejected?limit=1');
    expect(rejected[0]).toMatchObject({ deviceId: hostile.id, topic: TOPIC });
    expect(rejected[0]!.reason).toMatch(/nested more than 16 levels deep/);
    expect(await metricValue(server, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'too_complex' })).toBe(20);
    expect(await telemetryRecords(server)).toBe(recordsBefore);
    expect(pushed.some((p) => p.deviceId === hostile.id)).toBe(false);
    await neighbourStillStored(1);
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  });

  it('refuses a message with more than 1,000 keys in its values, nested ones included', async () => {
    const recordsBefore = await telemetryRecords(server);
    const wide: Record<string, Record<string, number>> = {};
    for (let i = 0; i < 40; i++) {
      wide[`group${i}`] = {};
      for (let j = 0; j < 50; j++) wide[`group${i}`]![`k${j}`] = j; // 40 + 2,000 keys
    }
    expect(await publishQos1(client, TOPIC, JSON.stringify(wide))).toBe('acked');
    // Empty objects cost heap without keys: array items count too.
    expect(await publishQos1(client, TOPIC, JSON.stringify({ v: { a: Array.from({ length: 5000 }, () => ({})) } }))).toBe('acked');
    const res = await fetch(`${server.baseUrl}/api/v1/${hostile.token}/telemetry`, { method: 'POST', body: JSON.stringify(wide) });
    await expectApiError(res, 400, /more than 1000 keys/);
    expect(client.connected).toBe(true);

    const rejected = await server.json<Rejected[]>('GET', '/api/rejected?limit=3');
    expect(rejected.map((r) => r.reason)).toEqual([
      expect.stringMatching(/more than 1000 keys/), expect.stringMatching(/more than 1000 keys/), expect.stringMatching(/more than 1000 keys/),
    ]);
    expect(await metricValue(server, 'sluice_messages_rejected_total', { transport: 'mqtt', reason: 'too_complex' })).toBe(22);
    expect(await metricValue(server, 'sluice_messages_rejected_total', { transport: 'http', reason: 'too_complex' })).toBe(1);
    expect(await telemetryRecords(server)).toBe(recordsBefore);
    await neighbourStillStored(2);
  });

  it('still takes what is within the limits: 16 levels deep, 1,000 keys', async () => {
    const deepDevice = await server.createDevice('sixteen-levels');
    const wideDevice = await server.createDevice('thousand-keys');
    let deep: unknown = 1;
    for (let i = 0; i < 14; i++) deep = { d: deep }; // the payload, its values, 14 objects: 16 levels
    const deepClient = await server.connectDevice(deepDevice.token);
    const wideClient = await server.connectDevice(wideDevice.token);
    try {
      expect(await publishQos1(deepClient, TOPIC, JSON.stringify({ ts: 10, values: { deep } }))).toBe('acked');
      deep = { d: deep };
      expect(await publishQos1(deepClient, TOPIC, JSON.stringify({ ts: 12, values: { deeper: deep } }))).toBe('acked');
      const thousand: Record<string, number> = {};
      for (let i = 0; i < 1000; i++) thousand[`k${i}`] = i;
      expect(await publishQos1(wideClient, TOPIC, JSON.stringify({ ts: 11, values: thousand }))).toBe('acked');
      await server.sluice.storageCaughtUp();
      const deepLatest = await server.json<Record<string, { ts: number }>>('GET', `/api/devices/${deepDevice.id}/telemetry/latest`);
      expect(Object.keys(deepLatest)).toEqual(['deep']); // 17 levels were refused
      const wideLatest = await server.json<Record<string, { ts: number }>>('GET', `/api/devices/${wideDevice.id}/telemetry/latest`);
      expect(Object.keys(wideLatest)).toHaveLength(1000);
      expect(deepClient.connected && wideClient.connected).toBe(true);
    } finally {
      deepClient.end(true);
      wideClient.end(true);
    }
  });
});
