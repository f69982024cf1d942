import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './support/test-server.js';

describe('the log over the API: /api/log and /metrics', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server.stop(); });

  it('describes offsets per partition and the storage group\'s lag, and exports the log\'s counters', async () => {
    const device = await server.createDevice('log-api');
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 1000 + i, values: { i } }) });
      expect(res.status).toBe(200);
    }
    await server.sluice.storageCaughtUp();
    const log = await server.json<{
      topics: { name: string; partitions: { partition: number; startOffset: number; endOffset: number; bytes: number }[] }[];
      groups: { name: string; topic: string; partitions: { partition: number; committed: number; lag: number }[] }[];
    }>('GET', '/api/log');
    const partitions = log.topics[0]!.partitions;
    expect(partitions.reduce((s, p) => s + p.endOffset - p.startOffset, 0)).toBe(20);
    const used = partitions.find((p) => p.endOffset > 0)!;
    expect(used).toMatchObject({ startOffset: 0, endOffset: 20 });
    expect(used.bytes).toBeGreaterThan(20 * 40);
    const storage = log.groups.find((g) => g.name === 'storage')!;
    expect(storage.partitions.find((p) => p.partition === used.partition)).toEqual({ partition: used.partition, committed: 20, lag: 0 });

    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_log_records_appended_total 20$/m);
    expect(metrics).toMatch(new RegExp(`^sluice_log_end_offset\\{topic="telemetry",partition="${used.partition}"\\} 20$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^sluice_log_start_offset\\{topic="telemetry",partition="${used.partition}"\\} 0$`, 'm'));
    expect(metrics).toMatch(/^sluice_log_segments_deleted_total 0$/m);
    expect(metrics).toMatch(/^sluice_log_corrupt_records_skipped_total 0$/m);
    expect(metrics).toMatch(/^# TYPE sluice_consumer_offset_resets_total counter$/m);
  });
});
