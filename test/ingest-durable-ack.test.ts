import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileLog } from '../server/src/log/file-log.js';
import type { AppendResult, LogRecord } from '../server/src/log/types.js';
import { TELEMETRY_TOPIC } from '../server/src/telemetry/device-message.js';
import { TestServer, waitFor, type CreatedDevice } from './support/test-server.js';

/**
 * Ingest answers a device only once its message is durable: the MQTT QoS 1 PUBACK and the HTTP 200
 * wait for the log's append promise. The server's real FileLog is wrapped so that, while `holding`,
 * each telemetry append really happens but its promise is held until the test releases it.
 */
describe('acknowledgement waits for the append', () => {
  const realAppend = FileLog.prototype.append;
  let holding = false;
  const held: { record: LogRecord; release: () => void }[] = [];
  let server: TestServer;
  let device: CreatedDevice;
  let client: MqttClient;

  beforeAll(async () => {
    vi.spyOn(FileLog.prototype, 'append').mockImplementation(function (this: FileLog, topic: string, record: LogRecord): Promise<AppendResult> {
      const appended = realAppend.call(this, topic, record);
      if (!holding || topic !== TELEMETRY_TOPIC) return appended;
      return appended.then((result) => new Promise<AppendResult>((resolve) => { held.push({ record, release: () => resolve(result) }); }));
    });
    server = await TestServer.start();
    device = await server.createDevice('held-append');
    client = await server.connectDevice(device.token);
  });
  afterAll(async () => {
    holding = false;
    for (const h of held.splice(0)) h.release();
    client?.end(true);
    await server?.stop();
    vi.restoreAllMocks();
  });

  /** Records in the telemetry topic, as the operator API reports them. */
  const logEnd = async () => {
    const log = await server.json<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
    return log.topics.find((t) => t.name === TELEMETRY_TOPIC)!.partitions.reduce((sum, p) => sum + p.endOffset, 0);
  };

  /**
   * Waits until the held append has really written its record (so an ack sent at append time
   * would have been sent by now), then does a full HTTP round trip to the server that shows
   * the record in the log: anything the server had written to the device by then has arrived.
   */
  async function heldAndInLog(before: number, payload: string) {
    const h = await waitFor('the append to be held', () => held.find((x) => x.record.value.toString('utf8').includes(payload)));
    await waitFor('the held record to be in the log', async () => (await logEnd()) === before + 1);
    return h;
  }

  it('sends the MQTT QoS 1 PUBACK only once the append promise resolves', async () => {
    const before = await logEnd();
    holding = true;
    const payload = '{"heldMqtt":1}';
    let acked = false;
    const puback = new Promise<void>((resolve, reject) => {
      client.publish('v1/devices/me/telemetry', payload, { qos: 1 }, (err) => (err ? reject(err) : (acked = true, resolve())));
    });
    const h = await heldAndInLog(before, payload);
    holding = false;
    expect(acked).toBe(false);
    h.release();
    await puback;
    expect(acked).toBe(true);
    expect(client.connected).toBe(true);
  });

  it('answers the device HTTP API 200 only once the append promise resolves', async () => {
    const before = await logEnd();
    holding = true;
    const payload = '{"heldHttp":2}';
    let answered: number | undefined;
    const response = fetch(`${server.baseUrl}/api/v1/${device.token}/telemetry`, { method: 'POST', body: payload })
      .then((res) => { answered = res.status; return res; });
    const h = await heldAndInLog(before, payload);
    holding = false;
    expect(answered).toBeUndefined();
    h.release();
    const res = await response;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
  });
});
