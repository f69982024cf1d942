import { afterEach, describe, expect, it } from 'vitest';
import { AlarmOutbox } from '../server/src/alarms/alarm-outbox.js';
import { compileRule } from '../server/src/rules/compiler.js';
import { WebhookSender, type WebhookRequest } from '../server/src/rules/webhook-sender.js';
import { openDatabase } from '../server/src/storage/database.js';
import { startHttpReceiver } from './support/http-receiver.js';
import { silentLogger, tempDir, waitFor } from './support/test-server.js';

/**
 * Issue 16, webhooks: a target that never answers collected 10,000 pending requests and sockets.
 * Now each target has a few calls in flight and a bounded queue (beyond it calls are dropped and
 * counted), and every attempt has a timeout; alarm notifications are bounded the same way but,
 * being durable, wait in their table instead of being dropped.
 */

/** A receiver that never answers. */
const hungServer = () => startHttpReceiver(() => 'hang');
/** A receiver that answers 200 at once. */
const okServer = () => startHttpReceiver(() => 200, '/ok');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const request = (url: string, n: number, timeoutMs = 300): WebhookRequest =>
  ({ url, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }), retries: 0, timeoutMs, rule: 'r', node: 'w' });

describe('webhook calls are bounded per target', () => {
  it('a target that never answers gets a few calls in flight and a bounded queue; the rest are dropped, and all time out', async () => {
    const hung = await hungServer();
    cleanups.push(hung.close);
    const sender = new WebhookSender(silentLogger, 10, { maxInFlightPerTarget: 2, maxQueuedPerTarget: 3 });
    cleanups.push(() => sender.close());
    for (let i = 0; i < 10; i++) sender.send(request(hung.url, i, 1000));
    expect(sender.stats).toMatchObject({ dropped: 5, pending: 5, in_flight: 2, queued: 3 });
    await hung.waitForRequests(2, 5000);
    // The queued three wait for a slot: none starts before the first attempts time out.
    expect(hung.requests.length).toBe(2);
    await waitFor('every call kept to time out', () => (sender.stats.failed === 5 ? true : undefined), 15_000);
    expect(sender.stats).toMatchObject({ timed_out: 5, pending: 0, in_flight: 0, queued: 0, dropped: 5 });
    expect(hung.requests.length).toBe(5);
  });

  it('another target is not held up by the hung one', async () => {
    const hung = await hungServer();
    const ok = await okServer();
    cleanups.push(hung.close, ok.close);
    const sender = new WebhookSender(silentLogger, 10, { maxInFlightPerTarget: 2, maxQueuedPerTarget: 100 });
    cleanups.push(() => sender.close());
    for (let i = 0; i < 50; i++) sender.send(request(hung.url, i, 5000));
    sender.send(request(ok.url, 1));
    await waitFor('the call to the answering target', () => (sender.stats.sent === 1 ? true : undefined), 3000);
    expect(ok.requests.map((r) => r.body)).toEqual([JSON.stringify({ n: 1 })]);
    expect(hung.requests.length).toBeLessThanOrEqual(2);
  });

  it('no attempt waits longer than the server\'s timeout, whatever the node asked', async () => {
    const hung = await hungServer();
    cleanups.push(hung.close);
    const sender = new WebhookSender(silentLogger, 10, { maxTimeoutMs: 200 });
    cleanups.push(() => sender.close());
    sender.send(request(hung.url, 1, 60_000));
    await waitFor('the attempt to time out', () => (sender.stats.timed_out === 1 ? true : undefined), 5000);
  });

  it('refuses at load a webhook node asking for a timeout over the server\'s', () => {
    const sinks = { save() {}, republish() {}, webhook() {}, window() {}, alarm() {}, log() {} };
    expect(() => compileRule({ id: 'r', nodes: [{ id: 'w', type: 'webhook', url: 'http://127.0.0.1:1/x', timeout: '60s' }] }, sinks))
      .toThrow(/^rule "r", node "w" \(nodes\[0\]\.timeout\): must be at most 10000 ms on this server/);
  });
});

describe('alarm notifications are bounded per target, never dropped', () => {
  it('a hung endpoint gets a few attempts at a time, each timing out; its notifications stay; another endpoint\'s go out', async () => {
    const hung = await hungServer();
    const ok = await okServer();
    const dir = tempDir();
    const db = openDatabase(dir);
    cleanups.push(hung.close, ok.close, () => { db.close(); });
    const outbox = new AlarmOutbox(db, silentLogger, { firstMs: 60_000, maxMs: 60_000 }, Date.now, { maxInFlightPerTarget: 2, timeoutMs: 300 });
    cleanups.push(() => outbox.stop());
    for (let i = 0; i < 20; i++) outbox.add(`alarm-${i}`, hung.url, { change: 'created', n: i });
    outbox.add('alarm-ok', ok.url, { change: 'created' });
    await outbox.deliverDue();
    expect(hung.requests.length).toBe(2);
    expect(ok.requests).toHaveLength(1);
    expect(outbox.stats).toMatchObject({ delivered: 1, failedAttempts: 2, pending: 20, inFlight: 0 });
    // The rest are still due and go out two at a time; none is dropped.
    await outbox.deliverDue();
    expect(hung.requests.length).toBe(4);
    expect(outbox.stats).toMatchObject({ failedAttempts: 4, pending: 20 });
  });
});
