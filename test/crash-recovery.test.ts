import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'crash-admin-token';
const BASE_TS = 1_700_000_000_000;

async function api<T>(server: ChildServer, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${server.ports.http}${route}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<T>;
}

describe('crash safety (kill -9)', () => {
  it('keeps every acknowledged QoS 1 message exactly once in the log and in storage after a kill -9 mid-stream', async () => {
    const dataDir = tempDir();
    const first = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
    const devices = await Promise.all([1, 2, 3, 4].map((i) => api<{ id: string; token: string }>(first, 'POST', '/api/devices', { name: `crash-${i}` })));
    const acked = devices.map(() => new Set<number>());
    const sent = devices.map(() => new Set<number>());
    let killed = false;
    const clients = await Promise.all(devices.map((d) => mqtt.connectAsync(`mqtt://127.0.0.1:${first.ports.mqtt}`, { username: d.token, reconnectPeriod: 0 })));
    for (const c of clients) c.on('error', () => {});
    const streams = clients.map((client, d) => {
      let seq = 0;
      const lane = async () => {
        while (!killed) {
          const n = seq++;
          sent[d]!.add(n);
          try {
            await client.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: BASE_TS + n, values: { seq: n } }), { qos: 1 });
            acked[d]!.add(n);
          } catch {
            return; // the connection went down with the server
          }
        }
      };
      return Promise.all(Array.from({ length: 8 }, lane));
    });
    const total = () => acked.reduce((s, a) => s + a.size, 0);
    await waitFor('500 acknowledged messages', () => (total() >= 500 ? true : undefined), 15_000);
    first.child.kill('SIGKILL');
    await first.exited;
    killed = true;
    for (const c of clients) c.end(true);
    await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 2000))]);
    const ackedAtKill = acked.map((a) => new Set(a));

    const second = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
    try {
      const log = await waitFor('storage to catch up', async () => {
        const l = await api<{ topics: { name: string; partitions: { endOffset: number }[] }[]; groups: { name: string; partitions: { lag: number }[] }[] }>(second, 'GET', '/api/log');
        const storage = l.groups.find((g) => g.name === 'storage');
        return storage && storage.partitions.every((p) => p.lag === 0) ? l : undefined;
      }, 15_000);
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
});
