import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildSluice, type ChildServer } from './support/child-server.js';
import { childApi, childRulesCaughtUp } from './support/qos1-streams.js';
import { startHttpReceiver, type HttpReceiver } from './support/http-receiver.js';
import { tempDir } from './support/test-server.js';

const ADMIN = 'sink-keys-admin';

interface Call { header: string | undefined; body: { deviceId: string; ts: number; values: { n: number }; key: string } }

describe('webhook node calls after kill -9: replays bring duplicates with the same key', () => {
  /** The webhook target: answers 200 and keeps every call. */
  let target: HttpReceiver;
  beforeAll(async () => { target = await startHttpReceiver(); });
  afterAll(() => target?.close());
  const calls = (): Call[] => target.requests.map((r) => ({ header: r.headers['idempotency-key'] as string | undefined, body: r.json<Call['body']>() }));

  it('sends every message again after the rules group re-reads the log, each with the key of its first call; no two messages share a key', async () => {
    const dataDir = tempDir();
    const args = ['--admin-token', ADMIN];
    let server: ChildServer = await startChildSluice(dataDir, args);
    try {
      const device = await childApi<{ id: string; token: string }>(server, ADMIN, 'POST', '/api/devices', { name: 'hooked', type: 'hooked' });
      await childApi(server, ADMIN, 'POST', '/api/rules', { id: 'hook', devices: { types: ['hooked'] }, nodes: [{ id: 'call', type: 'webhook', url: target.url, headers: { 'Idempotency-Key': 'fixed' } }] });
      // 30 single messages, then one record of three entries: they share an offset, not a key.
      const bodies = [...Array.from({ length: 30 }, (_, n) => ({ ts: 1000 + n, values: { n } })),
        [{ ts: 2000, values: { n: 100 } }, { ts: 2001, values: { n: 101 } }, { ts: 2002, values: { n: 102 } }]];
      for (const body of bodies) {
        const res = await fetch(`http://127.0.0.1:${server.ports.http}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify(body) });
        expect(res.status).toBe(200);
      }
      const messages = 33;
      await target.waitForRequests(messages, 15_000);

      // kill -9, and the window checkpoint gone: the rules group re-reads the whole log — the most
      // a crash can make it re-read (a crash right after any message leaves a checkpoint from before it).
      server.child.kill('SIGKILL');
      await server.exited;
      const db = new Database(path.join(dataDir, 'sluice.db'));
      try { db.prepare('DELETE FROM window_checkpoint').run(); } finally { db.close(); }
      server = await startChildSluice(dataDir, args);
      await childRulesCaughtUp(server, ADMIN);
      await target.waitForRequests(2 * messages, 15_000);

      const byKey = new Map<string, Call[]>();
      for (const call of calls()) {
        expect(call.header, 'the Idempotency-Key header is the body\'s key (the node\'s own header is replaced)').toBe(call.body.key);
        byKey.set(call.body.key, [...(byKey.get(call.body.key) ?? []), call]);
      }
      expect(byKey.size, 'one key per message').toBe(messages);
      for (const [key, calls] of byKey) {
        expect(calls.length, `calls with key ${key}`).toBe(2);
        expect(calls[1]!.body, `the replayed call of ${key}`).toEqual(calls[0]!.body);
      }
      expect(new Set(calls().map((c) => c.body.values.n)).size).toBe(messages);
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });
});
