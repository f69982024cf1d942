import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { RULES_GROUP } from '../server/src/rules/rules-consumer.js';
import { childOperatorApi, waitForZeroLag } from './support/consumer-lag.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'windows-crash-admin';
type Result = { group: string; start: number; end: number; values: Record<string, number | null>; final: boolean };

async function api<T>(server: ChildServer, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${server.ports.http}${route}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<T>;
}

async function publish(server: ChildServer, token: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const res = await fetch(`http://127.0.0.1:${server.ports.http}/api/v1/${token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: i * 1000, values: { t: i } }) });
    if (res.status !== 200) throw new Error(`publish ${i}: ${res.status}`);
  }
}

async function rulesCaughtUp(server: ChildServer): Promise<void> {
  await waitForZeroLag(childOperatorApi(server, ADMIN), [RULES_GROUP]);
}

/** Waits for a window checkpoint whose offsets say the rules group processed `records` records of the telemetry topic. */
async function checkpointCovering(db: Database.Database, records: number): Promise<void> {
  await waitFor(`a window checkpoint covering ${records} records`, () => {
    const offsets = db.prepare('SELECT offsets FROM window_checkpoint WHERE id = 1').pluck().get() as string | undefined;
    if (offsets === undefined) return undefined;
    const processed = (JSON.parse(offsets) as number[]).reduce((a, b) => a + b, 0);
    if (processed > records) throw new Error(`the checkpoint covers ${processed} records, more than the ${records} sent`);
    return processed === records ? true : undefined;
  }, 15_000);
}

describe('window results after kill -9 (exactly once)', () => {
  it('gives the same final results as an uninterrupted run: none lost, none doubled', async () => {
    const rulesDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'per-10s.json'), JSON.stringify({
      id: 'per-10s', devices: { types: ['counter'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', fields: ['t'], ops: ['count', 'sum'], outOfOrderness: '0s' } }],
    }));
    const dataDir = tempDir();
    const first = await startChildSluice(dataDir, ['--admin-token', ADMIN, '--rules-dir', rulesDir]);
    const device = await api<{ id: string; token: string }>(first, 'POST', '/api/devices', { name: 'counter-1', type: 'counter' });
    const db = new Database(path.join(dataDir, 'sluice.db'), { readonly: true, fileMustExist: true });
    try {
      await publish(first, device.token, 0, 80);
      // A checkpoint in between: of the first 80 events (one record each), before the rest come.
      await checkpointCovering(db, 80);
      await publish(first, device.token, 80, 125);
      // Kill once the rules group committed its offsets mid-window ([120 s, 130 s) holds 5 events)
      // and a checkpoint holds that window's state: without the checkpoint, the state would be lost
      // and the restart would resume after it.
      await rulesCaughtUp(first);
      await checkpointCovering(db, 125);
    } finally {
      db.close();
    }
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startChildSluice(dataDir, ['--admin-token', ADMIN, '--rules-dir', rulesDir]);
    try {
      await publish(second, device.token, 125, 200);
      await rulesCaughtUp(second);
      const results = await waitFor('19 final windows', async () => {
        const r = await api<Result[]>(second, 'GET', '/api/windows?rule=per-10s');
        return r.filter((x) => x.final).length >= 19 ? r : undefined;
      }, 15_000);
      // Uninterrupted, events 0..199 at 1 s give windows [0,10 s) … [180,190 s) final; [190,200 s) is still open.
      const expected = Array.from({ length: 19 }, (_, w) => ({
        group: device.id, start: w * 10_000, end: (w + 1) * 10_000, final: true,
        values: { count_t: 10, sum_t: Array.from({ length: 10 }, (_, i) => 10 * w + i).reduce((a, b) => a + b, 0) },
      }));
      expect(results.filter((r) => r.final).map(({ group, start, end, final, values }) => ({ group, start, end, final, values }))).toEqual(expected);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
