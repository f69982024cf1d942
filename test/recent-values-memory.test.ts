import fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileRule } from '../server/src/rules/compiler.js';
import { DevicesRulesWant } from '../server/src/rules/devices-rules-want.js';
import type { RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';
import { RecentEntries } from '../server/src/telemetry/recent-entries.js';
import { createDeviceOnPartitionOf, heapUsedAfterGc, publishQos1 } from './support/hostile-input.js';
import { TestServer, type CreatedDevice } from './support/test-server.js';

/**
 * Issue 16, finding 1: ingest keeps the values it parsed for the rules group (RecentEntries), but
 * kept them for every message, also of devices no rule selects, and by count only — 8192 records
 * a partition whatever their size. Valid ~62 KB messages of nested objects grew the heap by about
 * 120 KB each until V8 aborted.
 */

const MESSAGES = 400;
const TOPIC = 'v1/devices/me/telemetry';

/** A valid message of ~62 KB: 900 nested string values (within the depth and key limits). */
function bigMessage(n: number): string {
  const blob: Record<string, string> = {};
  for (let k = 0; k < 900; k++) blob[`k${k}`] = `${'x'.repeat(58)}${n % 10}`;
  return JSON.stringify({ ts: n + 1, values: { n, blob } });
}

async function sendAll(client: MqttClient, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 50) {
    const outcomes = await Promise.all(Array.from({ length: Math.min(50, from + count - i) }, (_, j) => publishQos1(client, TOPIC, bigMessage(i + j), 20_000)));
    expect(outcomes.every((o) => o === 'acked')).toBe(true);
  }
}

async function storedCount(server: TestServer, deviceId: string): Promise<number> {
  const series = await server.json<Record<string, unknown[]>>('GET', `/api/devices/${deviceId}/telemetry?keys=n&from=0&to=${Date.now()}&limit=10000`);
  return series.n?.length ?? 0;
}

describe('values kept for the rules group', () => {
  let server: TestServer;
  let noisy: CreatedDevice;
  let neighbour: CreatedDevice;
  let client: MqttClient;

  beforeAll(async () => {
    server = await TestServer.start();
    noisy = await server.createDevice('unselected-noisy', { type: 'noisy' });
    neighbour = await createDeviceOnPartitionOf(server, noisy, 'neighbour');
    client = await server.connectDevice(noisy.token);
  });
  afterAll(async () => {
    client?.end(true);
    await server?.stop();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('are not kept for a device no rule selects: the heap stays flat, everything is stored', async () => {
    // Phase 1: no rule at all. Phase 2: a rule that selects another device type.
    const before = heapUsedAfterGc();
    await sendAll(client, 0, MESSAGES);
    await server.sluice.storageCaughtUp();
    const afterNoRules = heapUsedAfterGc();
    expect(afterNoRules - before).toBeLessThan(20 * 1024 * 1024); // each message's values are ~120 KB of heap

    const rule = { id: 'thermostats-only', devices: { types: ['thermostat'] }, nodes: [{ id: 'warm', type: 'filter', if: 'values.n > 0' }] };
    expect((await server.api('POST', '/api/rules', rule)).status).toBe(201);
    await sendAll(client, MESSAGES, MESSAGES);
    await server.sluice.storageCaughtUp();
    await server.sluice.rulesCaughtUp();
    const afterOtherRule = heapUsedAfterGc();
    expect(afterOtherRule - before).toBeLessThan(20 * 1024 * 1024);

    // Nothing acknowledged is lost, and the neighbour on the same partition is stored.
    expect(await storedCount(server, noisy.id)).toBe(2 * MESSAGES);
    const res = await fetch(`${server.baseUrl}/api/v1/${neighbour.token}/telemetry`, { method: 'POST', body: '{"ts":7,"values":{"n":7}}' });
    expect(res.status).toBe(200);
    await server.sluice.storageCaughtUp();
    expect(await storedCount(server, neighbour.id)).toBe(1);
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  }, 120_000);
});

describe('RecentEntries', () => {
  const entries = (n: number) => [{ ts: n, values: { n } }];

  it('holds at most its byte budget, evicting the oldest records first', () => {
    const budget = 1024 * 1024;
    const recent = new RecentEntries(2, 8192, budget);
    for (let offset = 0; offset < 100; offset++) recent.put(offset % 2, offset, entries(offset), 64 * 1024, 1);
    expect(recent.bytes).toBeLessThanOrEqual(budget);
    expect(recent.take(0, 0)).toBeUndefined(); // the oldest went first
    expect(recent.take(1, 99)).toEqual(entries(99));
    expect(recent.take(0, 98)).toEqual(entries(98));
  });

  it('charges many small nested values by their count, not only by their bytes', () => {
    const recent = new RecentEntries(1, 8192, 1024 * 1024);
    // 3 KB of "[{},{},…]" is ~1,000 objects on the heap: it must cost more than 3 KB.
    for (let offset = 0; offset < 1000; offset++) recent.put(0, offset, entries(offset), 3 * 1024, 1000);
    expect(recent.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(recent.take(0, 0)).toBeUndefined();
    expect(recent.take(0, 999)).toEqual(entries(999));
  });

  it('gives back what a take or an overwrite releases', () => {
    const recent = new RecentEntries(1, 4, 1024 * 1024);
    recent.put(0, 0, entries(0), 1000, 1);
    recent.put(0, 1, entries(1), 1000, 1);
    const held = recent.bytes;
    recent.take(0, 0);
    expect(recent.bytes).toBeLessThan(held);
    for (let offset = 2; offset < 20; offset++) recent.put(0, offset, entries(offset), 1000, 1);
    recent.take(0, 19);
    expect(recent.bytes).toBeLessThanOrEqual(3 * (held / 2));
  });
});

describe('which devices the rules want (whose values are kept)', () => {
  const sinks: RuleSinks = { save: () => {}, republish: () => {}, webhook: () => {}, window: () => {}, alarm: () => {}, log: () => {} };
  const rule = (id: string, devices: object, enabled = true) => compileRule({ id, enabled, devices, nodes: [{ id: 'f', type: 'filter', if: 'values.n > 0' }] }, sinks);

  it('answers from the enabled rules, and again after the rules or the device change', () => {
    const engine = new RuleEngine();
    const want = new DevicesRulesWant(engine);
    const sensor = { id: 'd1', name: 'd1', type: 'sensor', attributes: { room: 'a' } };
    expect(want.wants(sensor)).toBe(false); // no rules at all
    engine.put(rule('thermostats', { types: ['thermostat'] }));
    expect(want.wants(sensor)).toBe(false);
    engine.put(rule('room-a', { attributes: { room: 'a' } }, false));
    expect(want.wants(sensor)).toBe(false); // disabled
    engine.put(rule('room-a', { attributes: { room: 'a' } }));
    expect(want.wants(sensor)).toBe(true);
    // The registry gives a changed device a new object: the answer is asked again.
    expect(want.wants({ ...sensor, attributes: { room: 'b' } })).toBe(false);
    engine.remove('room-a');
    expect(want.wants(sensor)).toBe(false);
  });
});
