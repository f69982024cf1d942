import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectPacket, LimitedServer, MiB, publishPacket, pubrelPacket, RawClient, retainedBytes } from './support/mqtt-hostile.js';
import { waitFor, type CreatedDevice } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';
const CONNACK_ACCEPTED = [0x20, 2, 0, 0];
/** CONNACK accepted with Session Present 1: the server has the session's state [MQTT-3.2.2-2]. */
const CONNACK_SESSION_PRESENT = [0x20, 2, 1, 0];
const pubrec = (id: number) => [0x50, 2, id >> 8, id & 0xff];
const pubcomp = (id: number) => [0x70, 2, id >> 8, id & 0xff];

/** Connects a raw client with a persistent session and waits for its CONNACK. */
async function rawSession(server: LimitedServer, token: string, clientId: string, connack: number[]): Promise<RawClient> {
  const client = new RawClient(server.mqttPort);
  await client.ready;
  await client.write(connectPacket(token, clientId, false));
  await client.expect(connack);
  return client;
}

/**
 * An mqtt.js client whose message handler is in place before CONNACK, so that what a persistent
 * session had queued is seen; resolves with it and with the CONNACK's session present flag.
 */
function subscriber(server: LimitedServer, token: string, clientId: string, received: string[]): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${server.mqttPort}`, { username: token, clientId, clean: false, reconnectPeriod: 0, connectTimeout: 5000 });
    client.on('message', (_topic, payload) => received.push(payload.toString()));
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
    client.once('error', (err) => { client.end(true); reject(err); });
  });
}

const seqOf = (message: string) => (JSON.parse(message) as { values: { seq: number } }).values.seq;

describe('QoS 2 messages awaiting PUBREL (issue 16, finding 9)', () => {
  let server: LimitedServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await LimitedServer.start();
    device = await server.createDevice('qos2-hoarder');
  });
  afterAll(async () => { await server?.stop(); });

  it('disconnects a client beyond 100 unreleased, counts them per session across reconnects, and keeps no payloads', async () => {
    const before = retainedBytes();
    const junk = 'x'.repeat(60_000); // not JSON: rejected (and acknowledged), so only the broker could hold it
    const sessions: RawClient[] = [];
    for (let s = 0; s < 5; s++) {
      const client = await rawSession(server, device.token, `hoarder-${s}`, CONNACK_ACCEPTED);
      for (let id = 1; id <= 100; id++) await client.write(publishPacket(TELEMETRY, id === 1 ? JSON.stringify({ seq: s }) : junk, 2, id));
      // 100 PUBRECs, in any order (the first waits for its append to be durable, the rejected ones do not).
      await waitFor('100 PUBRECs', () => client.received.length >= 400 || undefined);
      const ids = new Set(Array.from({ length: 100 }, (_, i) => client.received.readUInt16BE(i * 4 + 2)));
      expect(ids.size).toBe(100);
      client.received = client.received.subarray(400);
      sessions.push(client);
    }
    // 5 × 100 × 60 KB went in: before, aedes kept every packet, payload and all, until PUBREL.
    expect(retainedBytes() - before).toBeLessThan(12 * MiB);

    // The 101st is one too many (MQTT 5 would say Receive Maximum exceeded): disconnected.
    const first = sessions[0]!;
    await first.write(publishPacket(TELEMETRY, '{"seq":99}', 2, 101));
    await first.waitClosed(3000);
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'qos2_receive_maximum' })).toBe(1);

    // Reconnecting does not reset the count: the session still holds 100 (and is present, though
    // it has no subscriptions: its QoS 2 receipts are session state).
    const back = await rawSession(server, device.token, 'hoarder-0', CONNACK_SESSION_PRESENT);
    await back.write(publishPacket(TELEMETRY, '{"seq":98}', 2, 102));
    await back.waitClosed(3000);
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'qos2_receive_maximum' })).toBe(2);

    // Released ones make room; a retransmission of one still awaiting PUBREL is not appended again.
    const third = await rawSession(server, device.token, 'hoarder-0', CONNACK_SESSION_PRESENT);
    await third.write(pubrelPacket(1));
    await third.expect(pubcomp(1));
    await third.write(publishPacket(TELEMETRY, '{"seq":7}', 2, 103));
    await third.expect(pubrec(103));
    await third.write(publishPacket(TELEMETRY, '{"seq":7}', 2, 103));
    await third.expect(pubrec(103));
    expect(third.closed).toBe(false);
    // Nothing acknowledged was lost: 5 first messages and seq 7, each once.
    expect(await server.telemetryRecords()).toBe(6);
    expect((await server.storedLatest(device)).seq?.value).toBe(7);
    for (const c of [...sessions, third]) c.destroy();
  });

  it('still lets a legitimate device connect and be stored', async () => {
    const other = await server.createDevice('qos2-neighbour');
    const client = await server.connectDevice(other.token);
    await client.publishAsync(TELEMETRY, '{"ok":1}', { qos: 2 });
    expect((await server.storedLatest(other)).ok?.value).toBe(1);
    client.end(true);
  });
});

describe('offline persistent sessions (issue 16, finding 9)', () => {
  let server: LimitedServer;
  let source: CreatedDevice;
  let listener: CreatedDevice;
  const open: MqttClient[] = [];
  beforeAll(async () => {
    server = await LimitedServer.start({ maxQueuedMessagesPerSession: 5, sessionExpiryMs: 1500, maxOfflineSessionsPerDevice: 2 });
    source = await server.createDevice('source');
    listener = await server.createDevice('listener');
    await server.json('POST', '/api/rules', { id: 'echo', devices: { ids: [source.id] }, nodes: [{ id: 'p', type: 'republish', topic: 'rules/echo/{deviceName}', qos: 1 }] });
  });
  afterEach(() => { for (const c of open.splice(0)) c.end(true); });
  afterAll(async () => { await server?.stop(); });

  /** Ends a session for good: a clean CONNECT discards it [MQTT-3.1.2-6], so it never expires into the next test. */
  async function discard(token: string, clientId: string) {
    for (const c of open.splice(0)) await c.endAsync(true);
    const client = await server.connectDevice(token, { clientId, clean: true });
    await client.endAsync();
  }

  async function publishFromSource(from: number, count: number) {
    const client = await server.connectDevice(source.token);
    for (let seq = from; seq < from + count; seq++) await client.publishAsync(TELEMETRY, JSON.stringify({ seq }), { qos: 1 });
    client.end(true);
    await server.sluice.rulesCaughtUp();
  }

  it('queues at most 5 messages for an offline session and drops the newest beyond, counted', async () => {
    const received: string[] = [];
    const first = await subscriber(server, listener.token, 'queue-sub', received);
    await first.client.subscribeAsync('rules/#', { qos: 1 });
    await first.client.endAsync();

    await publishFromSource(0, 12); // republished under rules/echo/source, QoS 1, while the session is offline
    const { client, sessionPresent } = await subscriber(server, listener.token, 'queue-sub', received);
    open.push(client);
    expect(sessionPresent).toBe(true);
    // Two more while online, one after the other has arrived: the queue (flushed at CONNACK, beside
    // live messages) is delivered by the time the second comes.
    for (const live of [100, 101]) {
      await publishFromSource(live, 1);
      await waitFor(`live message ${live}`, () => received.some((m) => seqOf(m) === live) || undefined);
    }
    const queued = received.map(seqOf).filter((seq) => seq < 100);
    expect(queued).toEqual([0, 1, 2, 3, 4]); // the first five, in order; the seven newest were dropped
    expect(received).toHaveLength(7);
    expect(await server.metric('sluice_mqtt_queued_messages_dropped_total')).toBe(7);
    // The source's own messages were all stored.
    expect((await server.storedLatest(source)).seq?.value).toBe(101);
    await discard(listener.token, 'queue-sub');
  });

  it('drops an offline session after the expiry time: the device reconnects to no session', async () => {
    const received: string[] = [];
    const first = await subscriber(server, listener.token, 'expiring-sub', received);
    await first.client.subscribeAsync('rules/#', { qos: 1 });
    await first.client.endAsync();
    await waitFor('the session to expire', async () => (await server.metric('sluice_mqtt_sessions_dropped_total', { reason: 'expired' })) >= 1 || undefined, 6000);
    await publishFromSource(200, 3); // nobody's session to queue them in
    const { client, sessionPresent } = await subscriber(server, listener.token, 'expiring-sub', received);
    open.push(client);
    expect(sessionPresent).toBe(false); // [MQTT-3.2.2-3]
    await publishFromSource(300, 1); // not subscribed any more: never delivered
    await server.sluice.rulesCaughtUp();
    expect(received).toEqual([]);
  });

  it('keeps at most 2 offline sessions per device, dropping the one offline longest', async () => {
    const device = await server.createDevice('many-ids');
    for (const id of ['ids-a', 'ids-b', 'ids-c']) {
      const { client } = await subscriber(server, device.token, id, []);
      await client.subscribeAsync('rules/#', { qos: 1 });
      await client.endAsync();
    }
    await waitFor('a session dropped for the device limit', async () => (await server.metric('sluice_mqtt_sessions_dropped_total', { reason: 'device_limit' })) === 1 || undefined);
    const a = await subscriber(server, device.token, 'ids-a', []);
    open.push(a.client);
    expect(a.sessionPresent).toBe(false);
    const c = await subscriber(server, device.token, 'ids-c', []);
    open.push(c.client);
    expect(c.sessionPresent).toBe(true);
  });
});
