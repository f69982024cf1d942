import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LimitedServer } from './support/mqtt-hostile.js';
import { connect5, connect5Bytes, P, prop, properties, publish5Bytes, RawMqtt5 } from './support/mqtt5.js';
import { capturingLogger, waitFor, type CreatedDevice } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';
const seqOf = (p: { payload: Buffer | string }) => (JSON.parse(p.payload.toString()) as { values: { seq: number } }).values.seq;

describe('MQTT 5 flow control and sessions', () => {
  const { logger, lines } = capturingLogger();
  let server: LimitedServer;
  let source: CreatedDevice;
  let listener: CreatedDevice;
  const open: (MqttClient | RawMqtt5)[] = [];
  let seq = 0;
  beforeAll(async () => {
    server = await LimitedServer.start({ sessionExpiryMs: 3000 }, { logLevel: 'debug' }, logger);
    source = await server.createDevice('mqtt5-source');
    listener = await server.createDevice('mqtt5-listener');
    await server.json('POST', '/api/rules', { id: 'echo', devices: { ids: [source.id] }, nodes: [{ id: 'p', type: 'republish', topic: 'rules/echo/{deviceName}', qos: 1 }] });
  });
  afterEach(() => {
    for (const c of open.splice(0)) {
      if (c instanceof RawMqtt5) c.destroy();
      else c.end(true);
    }
  });
  afterAll(async () => { await server?.stop(); });

  /** Publishes `count` numbered messages (and any extra values) from the source device; resolves once the rules have seen them. */
  async function fromSource(count: number, extra: Record<string, unknown> = {}): Promise<number[]> {
    const { client } = await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: source.token });
    const sent: number[] = [];
    for (let i = 0; i < count; i++) {
      sent.push(++seq);
      await client.publishAsync(TELEMETRY, JSON.stringify({ seq, ...extra }), { qos: 1 });
    }
    client.end(true);
    await server.sluice.rulesCaughtUp();
    return sent;
  }

  async function rawListener(clientId: string, props = properties(), clean = true): Promise<{ raw: RawMqtt5; sessionPresent: boolean; connackProps: Record<string, unknown> | undefined }> {
    const { raw, connack } = await RawMqtt5.open(server.mqttPort, connect5Bytes(listener.token, clientId, props, clean));
    expect(connack.reasonCode).toBe(0);
    open.push(raw);
    return { raw, sessionPresent: connack.sessionPresent, connackProps: connack.properties as Record<string, unknown> | undefined };
  }

  async function subscribe(raw: RawMqtt5, filter = 'rules/#') {
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
    expect((await raw.next('suback')).granted).toEqual([1]);
  }

  it('stores messages sent by topic alias, and follows an alias set again', async () => {
    const { raw } = await RawMqtt5.open(server.mqttPort, connect5Bytes(source.token, 'aliaser'));
    open.push(raw);
    raw.send(publish5Bytes(TELEMETRY, '{"ts":1000,"values":{"byName":1}}', 1, 1, properties(prop.int16(P.topicAlias, 1))));
    raw.send(publish5Bytes('', '{"ts":2000,"values":{"byAlias":2}}', 1, 2, properties(prop.int16(P.topicAlias, 1))));
    raw.send(publish5Bytes('v1/devices/me/attributes', '{"fw":"2.0"}', 1, 3, properties(prop.int16(P.topicAlias, 1))));
    raw.send(publish5Bytes('', '{"model":"x"}', 1, 4, properties(prop.int16(P.topicAlias, 1))));
    for (const id of [1, 2, 3, 4]) expect(await raw.next('puback')).toMatchObject({ messageId: id, reasonCode: 0 });
    expect(await server.storedLatest(source)).toMatchObject({ byName: { value: 1 }, byAlias: { value: 2 } });
    const got = await server.json<{ clientAttributes: Record<string, unknown> }>('GET', `/api/devices/${source.id}`);
    expect(got.clientAttributes).toMatchObject({ fw: '2.0', model: 'x' });
  });

  it('sends a client at most its Receive Maximum of unacknowledged QoS 1 messages, the rest as it acknowledges', async () => {
    const { raw } = await rawListener('small-window', properties(prop.int16(P.receiveMaximum, 2)));
    await subscribe(raw);
    const sent = await fromSource(5);
    await waitFor('two messages', () => raw.packets.filter((p) => p.cmd === 'publish').length >= 2 || undefined);
    // Everything was republished by now; only two may be in flight.
    await server.sluice.rulesCaughtUp();
    const first = raw.take('publish');
    expect(first.map(seqOf)).toEqual(sent.slice(0, 2));
    raw.send({ cmd: 'puback', messageId: first[0]!.messageId! });
    const third = await raw.next('publish');
    expect(seqOf(third)).toBe(sent[2]);
    expect(raw.take('publish')).toEqual([]);
    raw.send({ cmd: 'puback', messageId: first[1]!.messageId! });
    raw.send({ cmd: 'puback', messageId: third.messageId! });
    const rest = [await raw.next('publish'), await raw.next('publish')];
    expect(rest.map(seqOf)).toEqual(sent.slice(3));
  });

  it('never sends a client a packet over its Maximum Packet Size: drops it and counts it', async () => {
    const { raw } = await rawListener('small-packets', properties(prop.int32(P.maximumPacketSize, 600)));
    await subscribe(raw);
    const [small, , after] = [await fromSource(1), await fromSource(1, { blob: 'x'.repeat(1000) }), await fromSource(1)];
    const received: IPublishPacket[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await raw.next('publish');
      received.push(p);
      raw.send({ cmd: 'puback', messageId: p.messageId! });
    }
    expect(received.map(seqOf)).toEqual([small[0], after[0]]);
    expect(received.every((p) => (p.length ?? Infinity) + 3 <= 600)).toBe(true);
    expect(await server.metric('sluice_mqtt_outbound_dropped_total', { reason: 'client_maximum_packet_size' })).toBe(1);
  });

  it('keeps a session with a Session Expiry Interval while its client is away, with what came meanwhile', async () => {
    const expiry = properties(prop.int32(P.sessionExpiryInterval, 2));
    const first = await rawListener('coming-back', expiry, true);
    expect(first.connackProps?.sessionExpiryInterval).toBeUndefined(); // 2 s is within the server's 3 s: not clamped
    await subscribe(first.raw);
    first.raw.destroy();
    await first.raw.waitClosed();
    const sent = await fromSource(2);
    const back = await rawListener('coming-back', expiry, false);
    expect(back.sessionPresent).toBe(true);
    const queued = [await back.raw.next('publish'), await back.raw.next('publish')];
    expect(queued.map(seqOf)).toEqual(sent);
  });

  it('ends a session without an expiry interval with its connection, Clean Start or not', async () => {
    const first = await rawListener('no-expiry', properties(), false);
    await subscribe(first.raw);
    first.raw.destroy();
    await first.raw.waitClosed();
    const back = await rawListener('no-expiry', properties(), false);
    expect(back.sessionPresent).toBe(false);
  });

  it('clamps a longer Session Expiry Interval to the server\'s, says so in CONNACK, and drops the session after it', async () => {
    const asked = properties(prop.int32(P.sessionExpiryInterval, 3600));
    const first = await rawListener('clamped', asked, true);
    expect(first.connackProps?.sessionExpiryInterval).toBe(3);
    await subscribe(first.raw);
    first.raw.destroy();
    await first.raw.waitClosed();
    await waitFor('the session to expire', () => lines.some((l) => l.msg === 'MQTT session dropped' && l.clientId === 'clamped' && l.reason === 'expired') || undefined, 8000);
    const back = await rawListener('clamped', asked, false);
    expect(back.sessionPresent).toBe(false);
  });

  it('carries a message\'s user properties into the rule message\'s metadata', async () => {
    const { client } = await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: listener.token });
    open.push(client);
    const got = new Promise<string>((resolve) => client.once('message', (_t, payload) => resolve(payload.toString())));
    await client.subscribeAsync('rules/echo/#', { qos: 1 });
    const { client: device } = await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: source.token });
    open.push(device);
    await device.publishAsync(TELEMETRY, '{"withProps":1}', { qos: 1, properties: { userProperties: { site: 'north', tag: ['a', 'b'] } } });
    const message = JSON.parse(await got) as { values: Record<string, unknown>; metadata: { userProperties?: unknown } };
    expect(message.values).toEqual({ withProps: 1 });
    expect(message.metadata.userProperties).toEqual({ site: 'north', tag: ['a', 'b'] });
  });
});

describe('retained messages of rule republishes', () => {
  let server: LimitedServer;
  let source: CreatedDevice;
  let listener: CreatedDevice;
  beforeAll(async () => {
    server = await LimitedServer.start();
    source = await server.createDevice('retain-source');
    listener = await server.createDevice('retain-listener');
    await server.json('POST', '/api/rules', { id: 'keep', devices: { ids: [source.id] }, nodes: [{ id: 'p', type: 'republish', topic: 'rules/kept/{deviceName}', qos: 1, retain: true }] });
  });
  afterAll(async () => { await server?.stop(); });

  it('gives a later subscriber the last retained message with the retain flag, in both protocol versions', async () => {
    const { client } = await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: source.token });
    await client.publishAsync(TELEMETRY, '{"kept":1}', { qos: 1 });
    await client.publishAsync(TELEMETRY, '{"kept":2}', { qos: 1 });
    client.end(true);
    await server.sluice.rulesCaughtUp();
    for (const version of [4, 5] as const) {
      const { raw } = await RawMqtt5.open(server.mqttPort, { username: listener.token, clientId: `retain-${version}` }, version);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rules/kept/+', qos: 1 }] });
      const message = await raw.next('publish');
      expect(message).toMatchObject({ topic: 'rules/kept/retain-source', retain: true, qos: 1 });
      expect(JSON.parse(message.payload.toString()).values).toEqual({ kept: 2 });
      raw.destroy();
    }
  });
});
