import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonOf } from './support/python-peers.js';
import { TestServer, type CreatedDevice } from './support/test-server.js';

const run = promisify(execFile);
const script = path.join(import.meta.dirname, 'peers', 'paho_publish.py');

interface PahoResult { connack: number | null; acks: { mid: number; rc: number | null; reason: string }[] }

/** Stock Eclipse paho (PyPI), the client much device firmware is written against, in both protocol versions (MQTTv311 and MQTTv5). */
describe('interop with paho-mqtt', () => {
  let server: TestServer;
  let device: CreatedDevice;
  let python: string;
  beforeAll(async () => {
    python = pythonOf('paho');
    server = await TestServer.start();
    device = await server.createDevice('paho-dev');
  });
  afterAll(async () => { await server?.stop(); });

  const publish = async (protocol: '311' | '5', token: string, messages: { topic: string; payload: string; qos?: number; userProperties?: [string, string][] }[]) => {
    const { stdout } = await run(python, [script, String(server.sluice.ports.mqtt), token, protocol, JSON.stringify(messages)], { timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as PahoResult;
  };
  const latest = () => server.json<Record<string, { ts: number; value: unknown }>>('GET', `/api/devices/${device.id}/telemetry/latest`);

  it('MQTTv311: QoS 0, 1 and 2 messages are stored; a wrong token is refused as a bad user name or password', async () => {
    const result = await publish('311', device.token, [
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"q0":1}}', qos: 0 },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"q1":1}}', qos: 1 },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"q2":1}}', qos: 2 },
    ]);
    expect(result.connack).toBe(0);
    expect(result.acks).toHaveLength(3);
    await server.sluice.storageCaughtUp();
    expect(await latest()).toMatchObject({ q0: { value: 1 }, q1: { value: 1 }, q2: { value: 1 } });
    // CONNACK return code 4; paho 2 gives every return code as its MQTT 5 reason code, here 0x86.
    expect((await publish('311', `${device.token}x`, [])).connack).toBe(0x86);
  });

  it('MQTTv5: QoS 0, 1 and 2 messages (with user properties) are stored; a payload that is not JSON gets 0x99; a wrong token 0x86', async () => {
    const result = await publish('5', device.token, [
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p0":1}}', qos: 0 },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p1":1}}', qos: 1, userProperties: [['site', 'north']] },
      { topic: 'v1/devices/me/telemetry', payload: '{"ts":1000,"values":{"p2":1}}', qos: 2 },
      { topic: 'v1/devices/me/telemetry', payload: 'not json', qos: 1 },
    ]);
    expect(result.connack).toBe(0);
    expect(result.acks).toHaveLength(4);
    expect(result.acks.find((a) => a.mid === 4)?.rc).toBe(0x99);
    await server.sluice.storageCaughtUp();
    expect(await latest()).toMatchObject({ p0: { value: 1 }, p1: { value: 1 }, p2: { value: 1 } });
    expect((await publish('5', `${device.token}x`, [])).connack).toBe(0x86);
  });
});
