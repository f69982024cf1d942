import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectApiError } from './support/api-errors.js';
import { consumerLag, waitForZeroLag } from './support/consumer-lag.js';
import { startHttpReceiver, type HttpReceiver } from './support/http-receiver.js';
import { killLeftoverChildren, startChildSluice } from './support/child-server.js';
import { TestServer, tempDir, within } from './support/test-server.js';

/** The shared test helpers do what the tests built on them count on, and fail when they should. */

describe('startHttpReceiver', () => {
  let receiver: HttpReceiver;
  // Request 1 is answered 201, 2 gets its connection dropped, 3 no answer, the rest 200.
  beforeAll(async () => { receiver = await startHttpReceiver((_req, n) => (n === 1 ? 201 : n === 2 ? 'drop' : n === 3 ? 'hang' : 200), '/in'); });
  afterAll(() => receiver?.close());

  it('answers each request as told, and keeps each whole, in order', async () => {
    const post = (n: number, signal?: AbortSignal) => fetch(receiver.url, { method: 'POST', headers: { 'x-n': String(n) }, body: JSON.stringify({ n }), signal });
    expect((await post(1)).status).toBe(201);
    await expect(post(2)).rejects.toThrow();
    await expect(post(3, AbortSignal.timeout(300))).rejects.toThrow(/aborted|timeout/i);
    expect((await post(4)).status).toBe(200);
    const requests = await receiver.waitForRequests(4, 1000);
    expect(requests.map((r) => [r.method, r.path, r.headers['x-n'], r.answer])).toEqual([
      ['POST', '/in', '1', 201], ['POST', '/in', '2', 'drop'], ['POST', '/in', '3', 'hang'], ['POST', '/in', '4', 200],
    ]);
    expect(receiver.bodies()).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    await expect(receiver.waitForRequests(5, 100)).rejects.toThrow(/5 requests at the HTTP receiver \(4 so far\)/);
  });
});

describe('expectApiError', () => {
  const answer = (status: number, body: string) => new Response(body, { status });

  it('passes an error of the status with a matching message, and returns the message', async () => {
    expect(await expectApiError(answer(409, '{"error":"rule \\"r\\" comes from r.json"}'), 409, /comes from r\.json$/)).toBe('rule "r" comes from r.json');
    await expectApiError(Promise.resolve(answer(400, '{"error":"not valid JSON"}')), 400, 'valid JSON');
  });

  it('fails on another status, another message, a body that is not JSON or has no error text', async () => {
    await expect(expectApiError(answer(404, '{"error":"gone"}'), 400, /gone/)).rejects.toThrow(/expected 404 to be 400/);
    await expect(expectApiError(answer(400, '{"error":"gone"}'), 400, /here/)).rejects.toThrow(/gone/);
    await expect(expectApiError(answer(400, '<html>'), 400, /x/)).rejects.toThrow(/not JSON: <html>/);
    await expect(expectApiError(answer(400, '{"message":"x"}'), 400, /x/)).rejects.toThrow(/"error"/);
  });
});

describe('consumerLag and waitForZeroLag against a real server', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server?.stop(); });

  it('count what a group has not handled, a group that never committed included, and wait until it has', async () => {
    const device = await server.createDevice('lagging');
    // The test holds SQLite's write lock: the storage group cannot write, so it commits nothing.
    const lock = new Database(path.join(server.dataDir, 'sluice.db'));
    let locked = true;
    const unlock = () => {
      if (!locked) return;
      locked = false;
      lock.prepare('ROLLBACK').run();
      lock.close();
    };
    try {
      lock.prepare('BEGIN IMMEDIATE').run();
      for (const t of [1, 2, 3]) {
        const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: t, values: { t } }) });
        expect(res.status).toBe(200);
      }
      const log = await server.json<{ groups: { name: string }[] }>('GET', '/api/log');
      expect(log.groups.map((g) => g.name), 'the storage group never committed').not.toContain('storage');
      expect(await consumerLag(server, ['storage'])).toEqual({ storage: 3 });
      await expect(waitForZeroLag(server, ['storage'], 300)).rejects.toThrow(/zero lag of storage.*last lag: \{"storage":3\}/);
      unlock();
      await within(10_000, 'zero lag', waitForZeroLag(server, ['storage', 'rules', 'rules-windows']));
      expect(await consumerLag(server, ['storage', 'rules', 'rules-windows'])).toEqual({ storage: 0, rules: 0, 'rules-windows': 0 });
    } finally {
      unlock();
    }
  });
});

describe('child servers a test left running', () => {
  it('are killed when the test file is done (killLeftoverChildren, from the setup file)', async () => {
    const server = await startChildSluice(tempDir(), ['--admin-token', 'left-running']);
    killLeftoverChildren();
    await within(10_000, 'the left-over child server to end', server.exited);
    expect(server.child.signalCode).toBe('SIGKILL');
  });
});
