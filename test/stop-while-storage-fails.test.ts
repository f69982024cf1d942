import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startChildSluice } from './support/child-server.js';
import { within } from './support/hostile-input.js';
import { tempDir, waitFor } from './support/test-server.js';

/**
 * Issue 16, finding 2: stopping waited for the storage group to catch up, and a storage group
 * whose batches fail never does — SIGTERM hung. Here SQLite really refuses the storage worker's
 * writes (another connection holds the write lock) and the server is told to stop: it stops,
 * exits 0, and stores the message when it starts again (it is still in the log).
 */
describe('stopping while storage fails', () => {
  it('exits cleanly on SIGTERM although the storage group cannot commit, and stores the message after a restart', async () => {
    const dataDir = tempDir();
    const admin = 'stop-while-failing-admin';
    let lock: Database.Database | undefined;
    let server = await startChildSluice(dataDir, ['--admin-token', admin]);
    try {
      const http = () => `http://127.0.0.1:${server.ports.http}`;
      const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
      const device = await (await fetch(`${http()}/api/devices`, { method: 'POST', headers, body: '{"name":"while-locked"}' })).json() as { id: string; token: string };

      lock = new Database(path.join(dataDir, 'sluice.db'));
      lock.pragma('busy_timeout = 5000');
      lock.exec('BEGIN IMMEDIATE'); // the write lock, held: every storage batch fails with SQLITE_BUSY
      const res = await fetch(`${http()}/api/v1/${device.token}/telemetry`, { method: 'POST', body: '{"ts":1,"values":{"n":1}}' });
      expect(res.status).toBe(200); // acknowledged: it is in the log
      await waitFor('a failing storage batch', () => /consumer batch failed/.test(server.output()) || undefined, 20_000);

      server.child.kill('SIGTERM');
      expect(await within(20_000, 'the exit after SIGTERM', server.exited)).toBe(0);
      expect(server.output()).toMatch(/stopped cleanly/);

      lock.exec('ROLLBACK');
      lock.close();
      lock = undefined;
      server = await startChildSluice(dataDir, ['--admin-token', admin]);
      const latest = await waitFor('the message stored after the restart', async () => {
        const body = await (await fetch(`${http()}/api/devices/${device.id}/telemetry/latest`, { headers })).json() as Record<string, { ts: number }>;
        return body.n ? body : undefined;
      }, 20_000);
      expect(latest).toEqual({ n: { ts: 1, value: 1 } });
    } finally {
      if (lock?.inTransaction) lock.exec('ROLLBACK');
      lock?.close();
      if (server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await within(20_000, 'the last exit', server.exited).catch(() => server.child.kill('SIGKILL'));
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
