import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonOf } from './support/python-peers.js';
import { TestServer, type CreatedDevice } from './support/test-server.js';

const run = promisify(execFile);
const script = path.join(import.meta.dirname, 'peers', 'paho_publish.py');

interface PahoResult { connack: number | null; acks: { mid: number; rc: number | null; reason: string }[] }

/** Stock Eclipse paho (PyPI) speaking MQTTv5 to the device transport. */
describe('interop with paho-mqtt MQTTv5', () => {
  let server: TestServer;
  let device: CreatedDevice;
  let python: string;
  beforeAll(async () => {
    python = pythonOf('paho');
    server = await TestServer.start();
    device = await server.createDevice('paho5-dev');
  });
  afterAll(async () => { await server?.stop(); });

  const publish = async (token: string, messages: { topic: string; payload: string; qos?: number; userProperties?: [string, string][] }[]) => {
    const { stdout } = await run(python, [script, String(server.sluice.ports.mqtt), token, '5', JSON.stringify(messages)], { timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as PahoResult;
  };

  it('stores QoS 0, 1 and 2 messages (with user properties), and gets 0x99 for a payload that is not JSON', async () => {
    const result = await publish(device.token, [
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p0":1}}', qos: 0 },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p1":1}}', qos: 1, userProperties: [['site', 'north']] },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p2":1}}', qos: 2 },
      { topic: 'v1/devices/me/telemetry', payload: 'not json', qos: 1 },
    ]);
    expect(result.connack).toBe(0);
    expect(result.acks).toHaveLength(4);
    expect(result.acks.find((a) => a.mid === 4)?.rc).toBe(0x99);
    await server.sluice.storageCaughtUp();
    const latest = await server.json<Record<string, { value: unknown }>>('GET', `/api/devices/${device.id}/telemetry/latest`);
    expect(latest).toMatchObject({ p0: { value: 1 }, p1: { value: 1 }, p2: { value: 1 } });
    expect((await publish(`${device.token}x`, [])).connack).toBe(0x86);
  });
});
