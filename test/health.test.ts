import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, waitFor } from './support/test-server.js';

type Health = { status: string; problems?: string[]; consumers: { group: string; topic: string; lag: number; stalled: boolean }[] };

describe('/healthz', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start({ healthStallAfterMs: 600 }); });
  afterAll(async () => {
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  const health = async () => {
    const res = await fetch(`${server.baseUrl}/healthz`);
    return { code: res.status, body: (await res.json()) as Health };
  };

  it('is ok with every consumer group moving, and says how far behind each is', async () => {
    const { code, body } = await health();
    expect(code).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.consumers.map((c) => c.group).sort()).toEqual(['rules', 'rules-windows', 'storage']);
    for (const c of body.consumers) expect(c).toMatchObject({ lag: 0, stalled: false });
  });

  it('fails while storage has records to store and cannot move, and recovers by itself when it can', async () => {
    const device = await server.createDevice('stuck');
    // Another writer holds SQLite's write lock: the storage worker cannot store anything.
    const blocker = new Database(path.join(server.dataDir, 'sluice.db'));
    blocker.exec('BEGIN EXCLUSIVE');
    let released = false;
    try {
      const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: '{"ts":1000,"values":{"t":1}}' });
      expect(res.status).toBe(200);
      const stalled = await waitFor('an unhealthy /healthz', async () => {
        const h = await health();
        return h.code === 503 ? h.body : undefined;
      }, 15_000);
      expect(stalled.status).toBe('unhealthy');
      expect(stalled.problems).toEqual([expect.stringMatching(/^consumer group "storage" on "telemetry" has 1 records to read and has not moved for \d+ s$/)]);
      expect(stalled.consumers.find((c) => c.group === 'storage')).toMatchObject({ lag: 1, stalled: true });
      blocker.exec('ROLLBACK');
      released = true;
      await waitFor('a healthy /healthz again', async () => ((await health()).code === 200 ? true : undefined), 15_000);
      await server.sluice.storageCaughtUp();
      expect(await server.json('GET', `/api/devices/${device.id}/telemetry/latest`)).toEqual({ t: { ts: 1000, value: 1 } });
    } finally {
      if (!released) blocker.exec('ROLLBACK');
      blocker.close();
    }
  });
});
