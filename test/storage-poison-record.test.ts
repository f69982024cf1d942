import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDeviceOnPartitionOf, deeplyNestedPayload, heapUsedAfterGc, metricValue, publishQos1, startWithLimits, telemetryRecords,
  within, type RunningServer,
} from './support/hostile-input.js';
import { STORAGE_GROUP } from '../server/src/storage/storage-consumer.js';
import { consumerLag } from './support/consumer-lag.js';
import type { CreatedDevice } from './support/test-server.js';

/**
 * Issue 16, finding 2 (b, c): a record in the log that SQLite cannot be given — here a value
 * nesting 25,000 arrays, which JSON.stringify cannot serialise — failed its whole batch, which
 * was retried every 500 ms forever: nothing more of that partition was stored, across restarts,
 * and stopping hung on the storage group catching up. With a dashboard connected, the live push
 * threw into ingest: the device lost its connection without a PUBACK for a message that was in
 * the log, sent it again, and it was appended again.
 *
 * Such a record still gets into the log when the ingest limits are raised, or was put there by a
 * version without them: this server runs with them raised.
 */

const TOPIC = 'v1/devices/me/telemetry';
const LOOSE = { maxPayloadDepth: 100_000, maxPayloadKeys: 100_000 };

describe('a log record storage cannot write', () => {
  let server: RunningServer;
  let poisoner: CreatedDevice;
  let neighbour: CreatedDevice;
  let client: MqttClient;
  let dashboard: Socket;
  let dataDir: string;

  beforeAll(async () => {
    server = await startWithLimits(LOOSE);
    dataDir = server.dataDir;
    poisoner = await server.createDevice('poisoner');
    neighbour = await createDeviceOnPartitionOf(server, poisoner, 'neighbour');
    dashboard = io(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      dashboard.once('connect', () => resolve());
      dashboard.once('connect_error', reject);
    });
    client = await server.connectDevice(poisoner.token);
    client.on('error', () => {});
  });
  afterAll(async () => {
    dashboard?.close();
    client?.end(true);
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const latestOf = (id: string) => server.json<Record<string, { ts: number; value: unknown }>>('GET', `/api/devices/${id}/telemetry/latest`);

  it('is acknowledged once, appended once, skipped alone; the rest of its batch and partition is stored', async () => {
    const heapBefore = heapUsedAfterGc();
    const recordsBefore = await telemetryRecords(server);
    // One batch: good, poison, good — from the same device, and the neighbour's around them.
    const outcomes = await Promise.all([
      publishQos1(client, TOPIC, '{"ts":1,"values":{"before":1}}'),
      publishQos1(client, TOPIC, deeplyNestedPayload(25_000)),
      publishQos1(client, TOPIC, '{"ts":2,"values":{"after":2}}'),
      fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: '{"ts":3,"values":{"n":3}}' }).then((r) => r.status),
    ]);
    expect(outcomes).toEqual(['acked', 'acked', 'acked', 200]);
    expect(client.connected).toBe(true);

    await within(10_000, 'storage catching up past the record', server.sluice.storageCaughtUp());
    expect(await telemetryRecords(server)).toBe(recordsBefore + 4); // appended once: no re-send
    expect(await latestOf(poisoner.id)).toEqual({ before: { ts: 1, value: 1 }, after: { ts: 2, value: 2 } });
    expect(await latestOf(neighbour.id)).toEqual({ n: { ts: 3, value: 3 } });
    expect(await metricValue(server, 'sluice_storage_records_skipped_total', { reason: 'unwritable' })).toBe(1);
    expect(await consumerLag(server, [STORAGE_GROUP])).toEqual({ [STORAGE_GROUP]: 0 });

    // Later messages of the partition are stored as usual.
    expect(await publishQos1(client, TOPIC, '{"ts":4,"values":{"later":4}}')).toBe('acked');
    await server.sluice.storageCaughtUp();
    expect((await latestOf(poisoner.id)).later).toEqual({ ts: 4, value: 4 });
    expect(heapUsedAfterGc() - heapBefore).toBeLessThan(16 * 1024 * 1024);
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  });

  it('stops without hanging and, restarted, goes on storing that partition', async () => {
    client.end(true);
    await within(15_000, 'stopping', server.stop());
    server = await startWithLimits(LOOSE, dataDir);
    const res = await fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: '{"ts":5,"values":{"n":5}}' });
    expect(res.status).toBe(200);
    await within(10_000, 'storage catching up after the restart', server.sluice.storageCaughtUp());
    expect(await latestOf(neighbour.id)).toEqual({ n: { ts: 5, value: 5 } });
    expect(await latestOf(poisoner.id)).toMatchObject({ before: { ts: 1 }, after: { ts: 2 }, later: { ts: 4 } });
  });
});
