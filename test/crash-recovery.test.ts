import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { childApi, streamSequences } from './support/qos1-streams.js';
import { tempDir, waitFor } from './support/test-server.js';
import { childOperatorApi, waitForZeroLag } from './support/consumer-lag.js';
import { STORAGE_GROUP } from '../server/src/storage/storage-consumer.js';

const ADMIN = 'crash-admin-token';
const BASE_TS = 1_700_000_000_000;

const api = <T>(server: ChildServer, method: string, route: string, body?: unknown) => childApi<T>(server, ADMIN, method, route, body);

describe('crash safety (kill -9)', () => {
  for (const protocolVersion of [4, 5] as const) {
    it(`keeps every acknowledged QoS 1 message exactly once in the log and in storage after a kill -9 mid-stream (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'} clients)`, async () => {
      const dataDir = tempDir();
      const first = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
      const devices = await Promise.all([1, 2, 3, 4].map((i) => api<{ id: string; token: string }>(first, 'POST', '/api/devices', { name: `crash-${i}` })));
      const traffic = await streamSequences(first.ports.mqtt, devices.map((d) => d.token), BASE_TS, 8, protocolVersion);
      const { acked, sent, total } = traffic;
      await waitFor('500 acknowledged messages', () => (total() >= 500 ? true : undefined), 15_000);
      first.child.kill('SIGKILL');
      await first.exited;
      await traffic.stop();
      const ackedAtKill = acked.map((a) => new Set(a));

      const second = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
      try {
        await waitForZeroLag(childOperatorApi(second, ADMIN), [STORAGE_GROUP]);
        const log = await api<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>(second, 'GET', '/api/log');
        let stored = 0;
        for (const [d, device] of devices.entries()) {
          const series = await api<{ seq?: { ts: number; value: number }[] }>(second, 'GET',
            `/api/devices/${device.id}/telemetry?keys=seq&from=${BASE_TS}&to=${BASE_TS + 1_000_000}&limit=10000`);
          const values = (series.seq ?? []).map((p) => p.value);
          expect(new Set(values).size).toBe(values.length);
          for (const v of values) expect(sent[d]!.has(v)).toBe(true);
          const missing = [...ackedAtKill[d]!].filter((n) => !values.includes(n));
          expect(missing, `acknowledged but lost for device ${d}`).toEqual([]);
          stored += values.length;
        }
        // Exactly once in the log: one record per stored message, none twice.
        const records = log.topics.find((t) => t.name === 'telemetry')!.partitions.reduce((s, p) => s + p.endOffset, 0);
        expect(records).toBe(stored);
        expect(stored).toBeGreaterThanOrEqual(ackedAtKill.reduce((s, a) => s + a.size, 0));
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
