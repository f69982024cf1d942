import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { childApi, streamSequences } from './support/qos1-streams.js';
import { STORAGE_GROUP } from '../server/src/storage/storage-consumer.js';
import { childOperatorApi, waitForZeroLag } from './support/consumer-lag.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'durability-admin-token';
const BASE_TS = 1_700_000_000_000;

const api = <T>(server: ChildServer, method: string, route: string, body?: unknown) => childApi<T>(server, ADMIN, method, route, body);

const readText = (file: string) => { try { return fs.readFileSync(file, 'utf8'); } catch { return ''; } };

/** Resolves as soon as `file`'s content differs from `from` (polled every few ms: the kill is timed by it). */
function changeOf(file: string, from: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const now = readText(file);
      if (now !== from && now !== '') { clearInterval(poll); resolve(now); }
      else if (Date.now() > deadline) { clearInterval(poll); reject(new Error(`${file} did not change`)); }
    }, 2);
  });
}

describe('storage durability (kill -9, then the WAL is lost)', () => {
  it.each([
    ['deleted', (wal: string) => { fs.rmSync(wal, { force: true }); fs.rmSync(wal.replace(/-wal$/, '-shm'), { force: true }); }],
    ['truncated', (wal: string) => fs.truncateSync(wal, Math.min(fs.statSync(wal).size, 32 + 1000))],
  ])('WAL %s: every acknowledged point is in SQLite after the restart (the storage group re-reads what SQLite lost)', async (_how, loseWal) => {
    const dataDir = tempDir();
    const first = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
    const devices = await Promise.all([1, 2, 3, 4].map((i) => api<{ id: string; token: string }>(first, 'POST', '/api/devices', { name: `durable-${i}` })));
    // The devices themselves into sluice.db now: this test is about the points (a device lost with
    // the WAL would make the storage group drop its records as those of a deleted device).
    const db = new Database(path.join(dataDir, 'sluice.db'));
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const traffic = await streamSequences(first.ports.mqtt, devices.map((d) => d.token), BASE_TS);
    const { acked, total } = traffic;
    let second: ChildServer | undefined;
    try {
      await waitFor('2000 acknowledged messages', () => (total() >= 2000 ? true : undefined), 20_000);
      // Kill right after the storage group's offsets file changed, mid-stream: the offsets then
      // cover as much as they ever do, and (with the fix) SQLite is not in the middle of a checkpoint.
      const offsetsFile = path.join(dataDir, 'log', '__consumer_offsets', 'storage.json');
      await changeOf(offsetsFile, readText(offsetsFile), 10_000);
      first.child.kill('SIGKILL');
      await first.exited;
      await traffic.stop();
      const ackedAtKill = acked.map((a) => [...a]);
      const wal = path.join(dataDir, 'sluice.db-wal');
      expect(fs.existsSync(wal)).toBe(true);
      loseWal(wal);

      second = await startChildSluice(dataDir, ['--admin-token', ADMIN]);
      await waitForZeroLag(childOperatorApi(second, ADMIN), [STORAGE_GROUP], 20_000);
      for (const [d, device] of devices.entries()) {
        const series = await api<{ seq?: { ts: number; value: number }[] }>(second, 'GET',
          `/api/devices/${device.id}/telemetry?keys=seq&from=${BASE_TS}&to=${BASE_TS + 10_000_000}&limit=10000`);
        const stored = new Set((series.seq ?? []).map((p) => p.value));
        const missing = ackedAtKill[d]!.filter((n) => !stored.has(n));
        expect(missing.length, `device ${d}: ${missing.length} of ${ackedAtKill[d]!.length} acknowledged points missing from SQLite`).toBe(0);
      }
    } finally {
      await traffic.stop();
      if (first.child.exitCode === null && first.child.signalCode === null) { first.child.kill('SIGKILL'); await first.exited; }
      if (second) { second.child.kill('SIGTERM'); await second.exited; }
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
