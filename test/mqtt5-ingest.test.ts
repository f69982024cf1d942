import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import type { IPubackPacket } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect5, connect5Bytes, publish5Bytes, RawMqtt5 } from './support/mqtt5.js';
import { TestServer, type CreatedDevice } from './support/test-server.js';

const run = promisify(execFile);
const TELEMETRY = 'v1/devices/me/telemetry';
type Latest = Record<string, { ts: number; value: unknown }>;

describe('MQTT 5 devices (mqtt.js protocolVersion 5)', () => {
  let server: TestServer;
  let device: CreatedDevice;
  const open: MqttClient[] = [];
  beforeAll(async () => {
    server = await TestServer.start({ maxPayloadBytes: 1024 });
    device = await server.createDevice('mqtt5-dev');
  });
  afterEach(() => { for (const c of open.splice(0)) c.end(true); });
  afterAll(async () => { await server?.stop(); });

  const latest = () => server.json<Latest>('GET', `/api/devices/${device.id}/telemetry/latest`);
  async function connected(options: Parameters<typeof connect5>[1] = {}) {
    const { client, connack } = await connect5(server.mqttUrl, { username: device.token, ...options });
    open.push(client);
    return { client, connack };
  }
  /** Publishes at QoS 1 and resolves with the PUBACK as it came (mqtt.js rejects on a failure code; the packet tells more). */
  function pubackOf(client: MqttClient, topic: string, payload: string): Promise<IPubackPacket> {
    return new Promise((resolve) => {
      const onPacket = (p: { cmd: string }) => {
        if (p.cmd !== 'puback') return;
        client.off('packetreceive', onPacket);
        resolve(p as IPubackPacket);
      };
      client.on('packetreceive', onPacket);
      client.publish(topic, payload, { qos: 1 }, () => {});
    });
  }

  it('connects and is told the server\'s limits in the CONNACK', async () => {
    const { connack } = await connected();
    expect(connack.reasonCode).toBe(0);
    expect(connack.sessionPresent).toBe(false);
    expect(connack.properties).toMatchObject({
      receiveMaximum: 100, topicAliasMaximum: 16, sharedSubscriptionAvailable: false, subscriptionIdentifiersAvailable: false,
      // --max-payload-bytes 1024 + 4096 headroom, plus the fixed header.
      maximumPacketSize: 1 + 2 + 1024 + 4096,
    });
  });

  it('stores telemetry sent at QoS 0, 1 and 2', async () => {
    const { client } = await connected();
    await client.publishAsync(TELEMETRY, '{"ts":1000,"values":{"q1":1}}', { qos: 1 });
    await client.publishAsync(TELEMETRY, '{"ts":1000,"values":{"q2":2}}', { qos: 2 });
    await client.publishAsync(TELEMETRY, '{"ts":1000,"values":{"q0":0}}', { qos: 0 });
    await client.publishAsync(TELEMETRY, '{"ts":1000,"values":{"last":1}}', { qos: 1 });
    await server.sluice.storageCaughtUp();
    expect(await latest()).toMatchObject({ q0: { value: 0 }, q1: { value: 1 }, q2: { value: 2 }, last: { value: 1 } });
  });

  it('acknowledges a QoS 1 message only once it is in the log', async () => {
    const { client } = await connected();
    const logEnd = async () => {
      const log = await server.json<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
      return log.topics.find((t) => t.name === 'telemetry')!.partitions.reduce((sum, p) => sum + p.endOffset, 0);
    };
    const before = await logEnd();
    for (let i = 0; i < 5; i++) {
      await client.publishAsync(TELEMETRY, `{"seq":${i}}`, { qos: 1 });
      expect(await logEnd()).toBe(before + i + 1);
    }
  });

  const rejections: [string, string, string, number, RegExp][] = [
    ['a payload that is not JSON', TELEMETRY, 'temperature=21', 0x99, /not valid JSON/],
    ['a payload of the wrong shape', TELEMETRY, '[1,2,3]', 0x99, /expected a JSON object/],
    ['a payload over --max-payload-bytes', TELEMETRY, JSON.stringify({ blob: 'x'.repeat(2000) }), 0x97, /exceeds the 1024-byte limit/],
    ['an unknown topic', 'v1/devices/me/telemetri', '{"a":1}', 0x90, /unknown topic/],
  ];
  for (const [what, topic, payload, code, reason] of rejections) {
    it(`answers ${what} with PUBACK 0x${code.toString(16)} and the rejected list's reason, and stays connected`, async () => {
      const { client } = await connected();
      const puback = await pubackOf(client, topic, payload);
      expect(puback.reasonCode).toBe(code);
      expect(puback.properties?.reasonString).toMatch(reason);
      const [listed] = await server.json<{ deviceId: string; topic: string; reason: string }[]>('GET', '/api/rejected');
      expect(listed).toMatchObject({ deviceId: device.id, topic, reason: puback.properties!.reasonString });
      await client.publishAsync(TELEMETRY, '{"after":1}', { qos: 1 });
      expect(client.connected).toBe(true);
    });
  }

  it('leaves the reason string out when the client asked for no problem information', async () => {
    const { client } = await connected({ properties: { requestProblemInformation: false } });
    const puback = await pubackOf(client, TELEMETRY, 'not json');
    expect(puback.reasonCode).toBe(0x99);
    expect(puback.properties?.reasonString).toBeUndefined();
  });

  it('answers a rejected QoS 2 message with PUBREC 0x99, which ends it: the same packet id is then a new message', async () => {
    const { client } = await connected();
    await expect(client.publishAsync(TELEMETRY, 'not json', { qos: 2 })).rejects.toThrow(/Payload format invalid/i);
    // By hand, to reuse the packet id: no PUBREL follows a failed PUBREC [MQTT-4.3.3-4], so the id is free.
    const { raw } = await RawMqtt5.open(server.sluice.ports.mqtt, connect5Bytes(device.token, 'qos2-reuse'));
    raw.send(publish5Bytes(TELEMETRY, 'not json', 2, 9));
    expect(await raw.next('pubrec')).toMatchObject({ messageId: 9, reasonCode: 0x99 });
    raw.send(publish5Bytes(TELEMETRY, '{"afterQos2":1}', 2, 9));
    expect(await raw.next('pubrec')).toMatchObject({ messageId: 9, reasonCode: 0 });
    raw.send({ cmd: 'pubrel', messageId: 9 });
    expect(await raw.next('pubcomp')).toMatchObject({ messageId: 9, reasonCode: 0 });
    raw.destroy();
    await server.sluice.storageCaughtUp();
    expect((await latest()).afterQos2?.value).toBe(1);
  });

  it('assigns a client id to a client that sends none', async () => {
    const { connack } = await connected({ clientId: '', clean: true });
    expect(connack.properties?.assignedClientIdentifier).toMatch(/^sluice-[0-9a-f-]{36}$/);
  });

  it('refuses a wrong token with 0x86 bad user name or password', async () => {
    await expect(connect5(server.mqttUrl, { username: 'not-a-token' })).rejects.toMatchObject({ code: 0x86 });
    await expect(connect5(server.mqttUrl, {})).rejects.toMatchObject({ code: 0x86 });
  });

  it('refuses another device\'s client id with 0x85 client identifier not valid', async () => {
    const other = await server.createDevice('mqtt5-other');
    await connected({ clientId: 'mqtt5-held' });
    await expect(connect5(server.mqttUrl, { username: other.token, clientId: 'mqtt5-held' })).rejects.toMatchObject({ code: 0x85 });
  });

  it('refuses a subscription outside the device\'s topics with 0x87 not authorized', async () => {
    const { client } = await connected();
    const suback = new Promise<number[]>((resolve) => client.on('packetreceive', (p) => { if (p.cmd === 'suback') resolve(p.granted as number[]); }));
    client.subscribe(['v1/devices/me/rpc/request/+', 'v1/devices/me/telemetry', '$share/g/rules/#'], { qos: 1 }, () => {});
    // Granted QoS 1; not authorized; shared subscriptions not supported.
    expect(await suback).toEqual([1, 0x87, 0x9e]);
    expect(client.connected).toBe(true);
  });

  it('answers ThingsBoard\'s getSessionLimits on the response topic with the transport\'s limits', async () => {
    const { client } = await connected();
    await client.subscribeAsync('v1/devices/me/rpc/response/+', { qos: 1 });
    const answer = new Promise<{ topic: string; payload: string }>((resolve) => client.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })));
    await client.publishAsync('v1/devices/me/rpc/request/7', JSON.stringify({ method: 'getSessionLimits', params: {} }), { qos: 1 });
    const { topic, payload } = await answer;
    expect(topic).toBe('v1/devices/me/rpc/response/7');
    expect(JSON.parse(payload)).toEqual({ maxPayloadSize: 1024, maxInflightMessages: 100, rateLimits: {} });
  });
});

// mosquitto_pub (Debian's mosquitto-clients) at both protocol versions, with -d to show what the broker answered.
describe('mosquitto_pub -V mqttv5 and -V mqttv311', () => {
  let server: TestServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await TestServer.start();
    device = await server.createDevice('mosquitto5-dev');
  });
  afterAll(async () => { await server?.stop(); });

  const pub = (version: 'mqttv5' | 'mqttv311', message: string, token = device.token) =>
    run('mosquitto_pub', ['-d', '-h', '127.0.0.1', '-p', String(server.sluice.ports.mqtt), '-u', token, '-t', TELEMETRY, '-m', message, '-q', '1', '-V', version]);

  it('stores a QoS 1 message of each version', async () => {
    await pub('mqttv5', '{"v5":5}');
    await pub('mqttv311', '{"v311":4}');
    await server.sluice.storageCaughtUp();
    expect(await server.json<Latest>('GET', `/api/devices/${device.id}/telemetry/latest`)).toMatchObject({ v5: { value: 5 }, v311: { value: 4 } });
  });

  it('answers a rejected payload with PUBACK 0x99 in MQTT 5 and a plain PUBACK in MQTT 3.1.1', async () => {
    const v5 = await pub('mqttv5', 'not json');
    expect(v5.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:153\)/i);
    const v311 = await pub('mqttv311', 'not json');
    expect(v311.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:0\)/i);
  });

  it('is refused a wrong token in both versions', async () => {
    await expect(pub('mqttv5', '{"a":1}', 'wrong')).rejects.toMatchObject({ stderr: expect.stringMatching(/bad user ?name or password/i) });
    await expect(pub('mqttv311', '{"a":1}', 'wrong')).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed|bad user ?name or password/i) });
  });
});
