import { describe, expect, it } from 'vitest';
import { STORAGE_GROUP } from '../server/src/storage/storage-consumer.js';
import { consumerLag } from './support/consumer-lag.js';
import { TestServer, tempDir } from './support/test-server.js';

describe('restart', () => {
  it('keeps devices, tokens, telemetry and the admin token across a stop and start on the same data dir', async () => {
    const dataDir = tempDir();
    const first = await TestServer.start({ dataDir, adminToken: undefined });
    expect(first.sluice.adminTokenGenerated).toBe(true);
    const device = await first.createDevice('survivor');
    const client = await first.connectDevice(device.token);
    for (let i = 0; i < 50; i++) {
      await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 1000 + i, values: { n: i } }), { qos: 1 });
    }
    client.end(true);
    await first.stop();

    const second = await TestServer.start({ dataDir, adminToken: undefined });
    try {
      expect(second.sluice.adminTokenGenerated).toBe(false);
      expect(second.sluice.adminToken).toBe(first.sluice.adminToken);
      await second.sluice.storageCaughtUp();
      const series = await second.json<Record<string, { ts: number; value: number }[]>>('GET', `/api/devices/${device.id}/telemetry?keys=n`);
      expect(series.n!.map((p) => p.value)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      // The device's token still works, and new data lands after the old.
      const again = await second.connectDevice(device.token);
      await again.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 5000, values: { n: 99 } }), { qos: 1 });
      again.end(true);
      await second.sluice.storageCaughtUp();
      const latest = await second.json<Record<string, { value: number }>>('GET', `/api/devices/${device.id}/telemetry/latest`);
      expect(latest.n!.value).toBe(99);
      // Nothing was stored twice on the way (the storage group resumed from its committed offsets).
      expect(await consumerLag(second, [STORAGE_GROUP])).toEqual({ [STORAGE_GROUP]: 0 });
    } finally {
      await second.stop();
    }
  });
});
