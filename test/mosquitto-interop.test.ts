import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, type CreatedDevice } from './support/test-server.js';

const run = promisify(execFile);

// mosquitto_pub (Debian's mosquitto-clients, installed by .ci/run) is an independent MQTT client:
// if it talks to Sluice the way README.md says, so will devices.
describe('interop with mosquitto_pub', () => {
  let server: TestServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await TestServer.start();
    device = await server.createDevice('mosquitto-dev');
  });
  afterAll(async () => { await server?.stop(); });

  const pub = (token: string, message: string, topic = 'v1/devices/me/telemetry') =>
    run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(server.sluice.ports.mqtt), '-u', token, '-t', topic, '-m', message, '-q', '1', '-V', 'mqttv311']);

  it('stores a QoS 1 message published with mosquitto_pub', async () => {
    await pub(device.token, '{"temperature":22.5,"humidity":40}');
    await server.sluice.storageCaughtUp();
    const latest = await server.json<Record<string, { value: number }>>('GET', `/api/devices/${device.id}/telemetry/latest`);
    expect(latest.temperature!.value).toBe(22.5);
    expect(latest.humidity!.value).toBe(40);
  });

  it('is refused with a wrong token', async () => {
    await expect(pub('wrong-token', '{"a":1}')).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed|bad user ?name or password/i) });
  });

  it('keeps working after mosquitto_pub sends a malformed payload', async () => {
    await pub(device.token, 'not json at all');
    await pub(device.token, '{"after":1}');
    await server.sluice.storageCaughtUp();
    const latest = await server.json<Record<string, { value: number }>>('GET', `/api/devices/${device.id}/telemetry/latest`);
    expect(latest.after!.value).toBe(1);
    const [last, previous] = await server.json<{ reason: string }[]>('GET', '/api/rejected');
    expect(last?.reason ?? previous?.reason).toMatch(/not valid JSON/);
  });
});
