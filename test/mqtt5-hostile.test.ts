import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitedServer, RawClient, remainingLength } from './support/mqtt-hostile.js';
import { connect5, connect5Bytes, P, prop, properties, publish5Bytes, RawMqtt5 } from './support/mqtt5.js';
import { type CreatedDevice } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';

/** MQTT 5 clients that break the protocol, by hand-made packets: each is answered with its reason code, and nobody else notices. */
describe('MQTT 5 bad input', () => {
  let server: LimitedServer;
  let device: CreatedDevice;
  let other: CreatedDevice;
  let neighbour: MqttClient;
  let sent = 0;
  beforeAll(async () => {
    server = await LimitedServer.start({}, { maxPayloadBytes: 1024 });
    device = await server.createDevice('mqtt5-hostile');
    other = await server.createDevice('mqtt5-neighbour');
    neighbour = (await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: other.token })).client;
  });
  afterAll(async () => {
    neighbour?.end(true);
    await server?.stop();
  });

  /** The neighbour, connected all along, still publishes and is stored. */
  async function neighbourUnaffected() {
    expect(neighbour.connected).toBe(true);
    await neighbour.publishAsync(TELEMETRY, JSON.stringify({ n: ++sent }), { qos: 1 });
    expect((await server.storedLatest(other)).n?.value).toBe(sent);
  }

  /** Sends `connect` and expects a CONNACK with `code` and the connection closed. */
  async function refusedConnect(connect: Buffer, code: number): Promise<string | undefined> {
    const { raw, connack } = await RawMqtt5.open(server.mqttPort, connect);
    expect(connack.reasonCode).toBe(code);
    await raw.waitClosed();
    return connack.properties?.reasonString;
  }

  /** A connected raw MQTT 5 client of the device. */
  async function connectedRaw(props = properties()): Promise<RawMqtt5> {
    const { raw, connack } = await RawMqtt5.open(server.mqttPort, connect5Bytes(device.token, '', props));
    expect(connack.reasonCode).toBe(0);
    return raw;
  }

  /** Sends `bytes` on a connected client and expects DISCONNECT `code`, then the close. */
  async function disconnectedBy(bytes: Buffer, code: number, props = properties()): Promise<string | undefined> {
    const raw = await connectedRaw(props);
    raw.send(bytes);
    const disconnect = await raw.next('disconnect');
    expect(disconnect.reasonCode).toBe(code);
    await raw.waitClosed();
    return disconnect.properties?.reasonString;
  }

  it('answers a CONNECT with Session Expiry Interval twice with 0x82 protocol error (it crashed aedes 2)', async () => {
    const reason = await refusedConnect(connect5Bytes(device.token, 'twice', properties(prop.int32(P.sessionExpiryInterval, 10), prop.int32(P.sessionExpiryInterval, 20))), 0x82);
    expect(reason).toMatch(/sessionExpiryInterval more than once/);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'protocol_error' })).toBeGreaterThanOrEqual(1);
    await neighbourUnaffected();
  });

  const badConnects: [string, Buffer, number, RegExp][] = [
    ['Receive Maximum 0', properties(prop.int16(P.receiveMaximum, 0)), 0x82, /receiveMaximum of 0/],
    ['Maximum Packet Size 0', properties(prop.int32(P.maximumPacketSize, 0)), 0x82, /maximumPacketSize of 0/],
    ['Request Problem Information 2', properties(prop.byte(P.requestProblemInformation, 2)), 0x82, /must be 0 or 1/],
    ['a PUBLISH property (Topic Alias)', properties(prop.int16(P.topicAlias, 1)), 0x82, /topicAlias is not a property of a CONNECT/],
    ['an unknown property identifier', properties(Buffer.from([0x7f, 0])), 0x81, /unknown property identifier 127/],
    ['a property longer than its block', Buffer.concat([remainingLength(3), prop.int32(P.sessionExpiryInterval, 10)]), 0x81, /cut short|run past/],
    ['a property block longer than the packet', Buffer.concat([remainingLength(120), prop.int32(P.sessionExpiryInterval, 10)]), 0x81, /past the end of the packet/],
  ];
  for (const [what, props, code, reason] of badConnects) {
    it(`answers a CONNECT with ${what} with 0x${code.toString(16)}`, async () => {
      expect(await refusedConnect(connect5Bytes(device.token, 'bad-props', props), code)).toMatch(reason);
    });
  }

  it('answers an authentication method with 0x8c bad authentication method: enhanced authentication is not offered', async () => {
    const reason = await refusedConnect(connect5Bytes(device.token, 'auth-method', properties(prop.string(P.authenticationMethod, 'SCRAM-SHA-1'))), 0x8c);
    expect(reason).toMatch(/not offered/);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'bad_authentication_method' })).toBe(1);
  });

  it('answers a protocol level it does not speak (6) with the 3.1.1 CONNACK 1, unacceptable protocol version', async () => {
    const client = new RawClient(server.mqttPort);
    await client.ready;
    const connect = connect5Bytes(device.token, 'level-6');
    connect[8] = 6; // the protocol level byte, after the fixed header and "MQTT"
    await client.write(connect);
    await client.expect([0x20, 2, 0, 1]);
    await client.waitClosed();
    await neighbourUnaffected();
  });

  it('disconnects a topic alias of 0 or above the maximum with 0x94 topic alias invalid', async () => {
    expect(await disconnectedBy(publish5Bytes(TELEMETRY, '{"a":1}', 1, 1, properties(prop.int16(P.topicAlias, 0))), 0x94)).toMatch(/topic alias 0/);
    expect(await disconnectedBy(publish5Bytes(TELEMETRY, '{"a":1}', 1, 1, properties(prop.int16(P.topicAlias, 17))), 0x94)).toMatch(/not between 1 and 16/);
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'topic_alias_invalid' })).toBe(2);
    await neighbourUnaffected();
  });

  it('disconnects a PUBLISH by an alias never set with 0x82 protocol error', async () => {
    expect(await disconnectedBy(publish5Bytes('', '{"a":1}', 1, 1, properties(prop.int16(P.topicAlias, 3))), 0x82)).toMatch(/never set/);
  });

  it('disconnects a PUBLISH with a duplicate property, or a subscription identifier, with 0x82', async () => {
    expect(await disconnectedBy(publish5Bytes(TELEMETRY, '{"a":1}', 1, 1, properties(prop.int16(P.topicAlias, 1), prop.int16(P.topicAlias, 2))), 0x82)).toMatch(/more than once/);
    expect(await disconnectedBy(publish5Bytes(TELEMETRY, '{"a":1}', 1, 1, properties(Buffer.from([P.subscriptionIdentifier, 1]))), 0x82)).toMatch(/not a property of a PUBLISH/);
  });

  it('disconnects a PUBLISH to a topic with wildcards with 0x90 topic name invalid', async () => {
    expect(await disconnectedBy(publish5Bytes('v1/devices/+/telemetry', '{"a":1}', 1, 1), 0x90)).toMatch(/wildcards/);
  });

  it('disconnects a packet over the Maximum Packet Size with 0x95 at its header, before its body arrives', async () => {
    // A PUBLISH declaring 1 MiB where 1024 + 4096 bytes are allowed; only its header is sent.
    const reason = await disconnectedBy(Buffer.concat([Buffer.from([0x32]), remainingLength(1024 * 1024)]), 0x95);
    expect(reason).toMatch(/Maximum Packet Size of 5123 bytes/);
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'packet_too_large' })).toBe(1);
    await neighbourUnaffected();
  });

  it('disconnects an AUTH packet with 0x82: enhanced authentication is not offered', async () => {
    // AUTH, reason 0x18 (continue authentication), no properties.
    expect(await disconnectedBy(Buffer.from([0xf0, 2, 0x18, 0]), 0x82)).toMatch(/AUTH/);
    await neighbourUnaffected();
  });

  it('disconnects a second CONNECT with 0x82', async () => {
    expect(await disconnectedBy(connect5Bytes(device.token, 'again'), 0x82)).toMatch(/unexpected CONNECT/);
  });

  it('disconnects a SUBSCRIBE with a subscription identifier with 0xa1 (not supported), and answers a bad filter with 0x8f', async () => {
    const raw = await connectedRaw();
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rules/a/#/b', qos: 1 }, { topic: 'rules/ok', qos: 1 }] });
    expect((await raw.next('suback')).granted).toEqual([0x8f, 1]);
    raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rules/x', qos: 1 }], properties: { subscriptionIdentifier: 5 } });
    expect((await raw.next('disconnect')).reasonCode).toBe(0xa1);
    await raw.waitClosed();
  });

  it('disconnects a client that sends a DISCONNECT with a Session Expiry Interval after 0 at CONNECT with 0x82', async () => {
    const raw = await connectedRaw();
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    expect((await raw.next('disconnect')).reasonCode).toBe(0x82);
    await raw.waitClosed();
    await neighbourUnaffected();
  });

  it('answers PUBREL of an unknown packet id with PUBCOMP 0x92', async () => {
    const raw = await connectedRaw();
    raw.send({ cmd: 'pubrel', messageId: 77 });
    expect(await raw.next('pubcomp')).toMatchObject({ messageId: 77, reasonCode: 0x92 });
    raw.destroy();
  });
});

describe('MQTT 5 Receive Maximum, inbound', () => {
  let server: LimitedServer;
  let device: CreatedDevice;
  beforeAll(async () => {
    server = await LimitedServer.start({ maxQos2AwaitingRelease: 5 });
    device = await server.createDevice('mqtt5-flooder');
  });
  afterAll(async () => { await server?.stop(); });

  it('advertises its Receive Maximum and disconnects a client that sends more unacknowledged with 0x93', async () => {
    const { raw, connack } = await RawMqtt5.open(server.mqttPort, connect5Bytes(device.token, 'flooder'));
    expect(connack.properties?.receiveMaximum).toBe(5);
    // Six QoS 1 PUBLISHes in one write: the sixth arrives while the first five wait for their append.
    raw.send(Buffer.concat(Array.from({ length: 6 }, (_, i) => publish5Bytes(TELEMETRY, JSON.stringify({ seq: i }), 1, i + 1))));
    expect((await raw.next('disconnect')).reasonCode).toBe(0x93);
    await raw.waitClosed();
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'receive_maximum' })).toBe(1);
  });

  it('counts QoS 2 messages awaiting PUBREL against it until they are released, across reconnects', async () => {
    const { raw } = await RawMqtt5.open(server.mqttPort, connect5Bytes(device.token, 'hoarder', properties(prop.int32(P.sessionExpiryInterval, 60)), false));
    for (let id = 1; id <= 5; id++) {
      raw.send(publish5Bytes(TELEMETRY, JSON.stringify({ q2: id }), 2, id));
      expect(await raw.next('pubrec')).toMatchObject({ messageId: id });
    }
    raw.destroy();
    await raw.waitClosed();
    const { raw: back, connack } = await RawMqtt5.open(server.mqttPort, connect5Bytes(device.token, 'hoarder', properties(prop.int32(P.sessionExpiryInterval, 60)), false));
    expect(connack.sessionPresent).toBe(true);
    back.send({ cmd: 'pubrel', messageId: 1 });
    expect(await back.next('pubcomp')).toMatchObject({ messageId: 1 });
    // One released: room for one QoS 1 message, not two.
    back.send(Buffer.concat([publish5Bytes(TELEMETRY, '{"one":1}', 1, 10), publish5Bytes(TELEMETRY, '{"two":2}', 1, 11)]));
    expect((await back.next('disconnect')).reasonCode).toBe(0x93);
    expect(await server.telemetryRecords()).toBeGreaterThanOrEqual(5);
    const fine = await connect5(`mqtt://127.0.0.1:${server.mqttPort}`, { username: device.token });
    await fine.client.publishAsync(TELEMETRY, '{"fine":1}', { qos: 1 });
    expect((await server.storedLatest(device)).fine?.value).toBe(1);
    fine.client.end(true);
  });
});
