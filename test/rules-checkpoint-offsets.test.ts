import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../server/src/log/partitioner.js';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'checkpoint-offsets-admin';
const PARTITIONS = 4;
type Result = { group: string; start: number; end: number; values: Record<string, number | null>; final: boolean };

async function api<T>(server: ChildServer, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${server.ports.http}${route}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return (res.status === 204 ? undefined : res.json()) as Promise<T>;
}

async function publish(server: ChildServer, token: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const res = await fetch(`http://127.0.0.1:${server.ports.http}/api/v1/${token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: i * 1000, values: { t: i } }) });
    if (res.status !== 200) throw new Error(`publish ${i}: ${res.status}`);
  }
}

/** The window checkpoint's offsets as stored (the raw JSON text), or undefined before the first one. */
function storedCheckpointOffsets(dataDir: string): string | undefined {
  const db = new Database(path.join(dataDir, 'sluice.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT offsets FROM window_checkpoint WHERE id = 1').pluck().get() as string | undefined);
  } finally {
    db.close();
  }
}

/** Creates devices until there is one on each wanted partition. */
async function devicesOn(server: ChildServer, wanted: number[]): Promise<Map<number, { id: string; token: string }>> {
  const found = new Map<number, { id: string; token: string }>();
  for (let i = 0; found.size < wanted.length; i++) {
    const d = await api<{ id: string; token: string }>(server, 'POST', '/api/devices', { name: `counter-${i}`, type: 'counter' });
    const p = partitionForKey(d.id, PARTITIONS);
    if (wanted.includes(p) && !found.has(p)) found.set(p, d);
    else await api(server, 'DELETE', `/api/devices/${d.id}`);
  }
  return found;
}

const finalWindows = (results: Result[], group: string) =>
  results.filter((r) => r.final && r.group === group).map((r) => ({ start: r.start, count: r.values.count_t }));

describe('the rules group on partitions its window checkpoint never covered', () => {
  it('stores no null offsets, and after a kill -9 reads such a partition from the earliest offset, not past the end', async () => {
    const rulesDir = tempDir();
    const dataDir = tempDir();
    fs.writeFileSync(path.join(rulesDir, 'per-10s.json'), JSON.stringify({
      id: 'per-10s', devices: { types: ['counter'] },
      nodes: [{ id: 'w', type: 'window', window: { kind: 'tumbling', size: '10s', fields: ['t'], ops: ['count'], outOfOrderness: '0s' } }],
    }));
    const args = ['--admin-token', ADMIN, '--rules-dir', rulesDir, '--partitions', String(PARTITIONS)];
    const servers: ChildServer[] = [];
    try {
      const first = await startChildSluice(dataDir, args);
      servers.push(first);
      const devices = await devicesOn(first, [3, 0]);
      const a = devices.get(3)!;
      const b = devices.get(0)!;
      // Only partition 3 has had records when the checkpoint is written.
      await publish(first, a.token, 0, 30);
      const stored = await waitFor('a checkpoint covering partition 3', () => {
        const text = storedCheckpointOffsets(dataDir);
        return text !== undefined && (JSON.parse(text) as unknown[])[3] === 30 ? text : undefined;
      }, 10_000);
      expect(stored, 'a stored checkpoint holds no null').not.toContain('null');
      expect((JSON.parse(stored) as unknown[]).every((o) => Number.isSafeInteger(o))).toBe(true);

      // Partition 0's first records (newer than partition 3's: the job's watermark is the minimum
      // over partitions, so none of them is late), then a kill -9 before a checkpoint can be
      // relied on to cover them.
      await publish(first, b.token, 30, 55);
      first.child.kill('SIGKILL');
      await first.exited;

      const second = await startChildSluice(dataDir, args);
      servers.push(second);
      // In event-time order, so that neither device's events fall behind the watermark.
      for (let i = 30; i < 72; i++) {
        await publish(second, a.token, i, i + 1);
        if (i >= 55) await publish(second, b.token, i, i + 1);
      }
      // Events up to 71 s make [60 s, 70 s) final for both; then every window before it must be there.
      const lastClosed = (r: Result[], group: string) => finalWindows(r, group).some((w) => w.start === 60_000);
      const results = await waitFor('the window [60 s, 70 s) of both devices', async () => {
        const r = await api<Result[]>(second, 'GET', '/api/windows?rule=per-10s');
        return lastClosed(r, b.id) && lastClosed(r, a.id) ? r : undefined;
      }, 15_000);
      const tens = (from: number) => Array.from({ length: 7 - from }, (_, w) => ({ start: (from + w) * 10_000, count: 10 }));
      expect(finalWindows(results, b.id)).toEqual(tens(3));
      expect(finalWindows(results, a.id)).toEqual(tens(0));
      expect(second.output()).not.toContain('past the end');

      // A clean restart: still no reset warning, and the checkpoint stays free of null.
      second.child.kill('SIGTERM');
      await second.exited;
      const third = await startChildSluice(dataDir, args);
      servers.push(third);
      await waitFor('the rules group to start', async () => {
        const log = await api<{ groups: { name: string }[] }>(third, 'GET', '/api/log');
        return log.groups.some((g) => g.name === 'rules') ? true : undefined;
      }, 10_000);
      expect(third.output()).not.toContain('past the end');
      expect(storedCheckpointOffsets(dataDir)).not.toContain('null');
    } finally {
      for (const s of servers) {
        if (s.child.exitCode === null && s.child.signalCode === null) {
          s.child.kill('SIGTERM');
          await s.exited;
        }
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(rulesDir, { recursive: true, force: true });
    }
  });
});
