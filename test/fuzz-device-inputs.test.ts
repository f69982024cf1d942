import fs from 'node:fs';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, waitFor, type CreatedDevice } from './support/test-server.js';

/**
 * Generated device input, as firmware nobody here controls might send it, against a real Sluice:
 * whatever arrives, the device HTTP API answers 200 or a 4xx with a reason (never a 5xx, never a
 * hang), every QoS 1 PUBLISH gets its PUBACK, raw bytes on the MQTT port cost the sender its
 * connection at most, and a well-behaved device on the same server is stored afterwards.
 * Bounded: a fixed seed, a fixed number of runs, each input small.
 */

const SEED = 20261202;

/** JSON-ish documents: the shapes Sluice accepts, near misses, and anything at all. */
const payloadText: fc.Arbitrary<string> = fc.oneof(
  fc.record({ ts: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.string()), values: fc.jsonValue({ maxDepth: 4 }) }).map((v) => JSON.stringify(v)),
  fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 12 }).map((v) => JSON.stringify(v)),
  fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 8 }).map((v) => JSON.stringify(v)),
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('', '{', '{"t":', '[]', '{}', 'null', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]', '\u0000\u0001', '{"t":1e309}'),
);

async function legitimateMessageIsStored(server: TestServer, device: CreatedDevice, value: number): Promise<void> {
  const res = await fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts: 1_000 + value, values: { ok: value } }) });
  expect(res.status).toBe(200);
  await server.sluice.storageCaughtUp();
  expect(await server.json('GET', `/api/devices/${device.id}/telemetry/latest`)).toMatchObject({ ok: { ts: 1_000 + value, value } });
  expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
}

describe('generated device input', () => {
  let server: TestServer;
  let hostile: CreatedDevice;
  let legitimate: CreatedDevice;
  beforeAll(async () => {
    server = await TestServer.start({ partitions: 1 });
    hostile = await server.createDevice('fuzzed');
    legitimate = await server.createDevice('well-behaved');
  });
  afterAll(async () => {
    await server.stop();
    fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('over the device HTTP API: 200, or a 4xx with a reason', async () => {
    const answers = new Set<number>();
    await fc.assert(fc.asyncProperty(payloadText, fc.constantFrom('telemetry', 'attributes'), fc.constantFrom('application/json', 'text/plain', ''), async (body, kind, type) => {
      const headers: Record<string, string> = type ? { 'content-type': type } : {};
      const res = await fetch(`${server.baseUrl}/api/v1/${hostile.token}/${kind}`, { method: 'POST', body, headers, signal: AbortSignal.timeout(5000) });
      answers.add(res.status);
      expect([200, 400, 413]).toContain(res.status);
      const answer = (await res.json()) as { error?: string };
      if (res.status !== 200) expect(answer.error).toEqual(expect.any(String));
    }), { seed: SEED, numRuns: 300 });
    expect(answers).toContain(200);
    expect(answers).toContain(400);
    await legitimateMessageIsStored(server, legitimate, 1);
  });

  it('over MQTT: a PUBACK for every QoS 1 message, the connection kept', async () => {
    const client = await server.connectDevice(hostile.token);
    let closed = false;
    client.on('close', () => { closed = true; });
    try {
      await fc.assert(fc.asyncProperty(payloadText, fc.constantFrom('v1/devices/me/telemetry', 'v1/devices/me/attributes', 'v1/devices/me/unknown'), async (payload, topic) => {
        await client.publishAsync(topic, payload, { qos: 1 });
      }), { seed: SEED, numRuns: 300, interruptAfterTimeLimit: 20_000 });
      expect(closed).toBe(false);
    } finally {
      client.end(true);
    }
    await legitimateMessageIsStored(server, legitimate, 2);
  });

  it('over raw TCP on the MQTT port: garbage costs the sender its connection at most', async () => {
    const port = server.sluice.ports.mqtt;
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 512 }), async (bytes) => {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.on('error', () => {});
      socket.write(bytes);
      // Whatever the server makes of it, the sender hangs up; the server must not hold on to anything.
      socket.end();
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    }), { seed: SEED, numRuns: 200 });
    await waitFor('every fuzzing connection gone', async () => {
      const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
      return /^sluice_mqtt_clients 0$/m.test(metrics) ? true : undefined;
    }, 10_000);
    await legitimateMessageIsStored(server, legitimate, 3);
  });
});
