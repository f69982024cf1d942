import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DURABLE_CHECKPOINT_EVERY_MS } from '../server/src/storage/durable-checkpoint.js';
import { TestServer, waitFor } from './support/test-server.js';

interface LogState { groups: { name: string; partitions: { partition: number; committed: number | null }[] }[] }

const committedOf = async (server: TestServer, group: string): Promise<number> => {
  const state = await server.json<LogState>('GET', '/api/log');
  return (state.groups.find((g) => g.name === group)?.partitions ?? []).reduce((sum, p) => sum + (p.committed ?? 0), 0);
};

describe('the rules-windows group commits only what SQLite made durable', () => {
  let server: TestServer | undefined;
  afterEach(async () => { await server?.stop(); server = undefined; });

  it('holds its offsets back while no WAL checkpoint is complete, and commits them once one is', async () => {
    server = await TestServer.start();
    const device = await server.createDevice('windowed-save', { type: 'durable-windows' });
    await server.json('POST', '/api/rules', { id: 'avg-1s', devices: { types: ['durable-windows'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '1s', fields: ['t'], ops: ['avg'], outOfOrderness: '0s' } }] });
    await server.json('POST', '/api/rules', { id: 'keep-avg', input: 'windows', devices: { types: ['durable-windows'] },
      nodes: [{ id: 's', type: 'save', prefix: 'w_' }] });
    const before = await committedOf(server, 'rules-windows');

    // A reader holding an old snapshot: the storage worker's PASSIVE WAL checkpoints cannot copy
    // what was written after it, so none is complete and nothing new becomes durable in sluice.db.
    const reader = new Database(path.join(server.dataDir, 'sluice.db'), { readonly: true });
    try {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM devices').get();

      const points = [[1000, 10], [1500, 20], [2500, 30], [3500, 40], [4500, 50]].map(([ts, t]) => ({ ts, values: { t } }));
      const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(points) });
      expect(res.status).toBe(200);
      // The windows [1 s, 2 s) … [3 s, 4 s) closed: their averages were saved (committed to SQLite, in the WAL).
      const saved = await waitFor('the saved window averages', async () => {
        const series = await server!.json<{ w_avg_t?: { ts: number; value: number }[] }>('GET', `/api/devices/${device.id}/telemetry?keys=w_avg_t&from=0&to=10000`);
        return (series.w_avg_t ?? []).length >= 3 ? series.w_avg_t : undefined;
      }, 10_000);
      expect(saved!.slice(0, 3).map((p) => p.value)).toEqual([15, 30, 40]);
      // A negative check, so a wait of fixed length (nothing shows a checkpoint that was tried and
      // came out incomplete): three checkpoint intervals, each trying one, none able to complete.
      await new Promise((resolve) => setTimeout(resolve, 3 * DURABLE_CHECKPOINT_EVERY_MS));
      expect(await committedOf(server, 'rules-windows'), 'offsets committed over saves that a lost WAL would take').toBe(before);
    } finally {
      reader.prepare('ROLLBACK').run();
      reader.close();
    }
    // The reader gone, the next checkpoint is complete and the offsets follow.
    await waitFor('the rules-windows offsets committed', async () => ((await committedOf(server!, 'rules-windows')) >= before + 3 ? true : undefined), 10_000);
  });
});
