import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { ConnectVerdict, DeviceAuthenticator } from '../server/src/ingest/device-connect.js';
import { connect5, connect5Bytes, publish5Bytes, RawMqtt5, TransportRig } from './support/mqtt5.js';
import { connectPacket, publishPacket, RawClient } from './support/mqtt-hostile.js';
import { connectMqtt, waitFor, within } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';

/** The device transport on its own (startMqttBroker over a real log and registry): what sluice.ts wires around it. */
describe('the device transport', () => {
  let rig: TransportRig | undefined;
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await rig?.stop();
    rig = undefined;
  });

  it('serves MQTT on a stream given to handle(): MQTT 5 and 3.1.1 over a WebSocket', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('over-ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    closers.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const broker = rig.broker;
    wss.on('connection', (ws, req) => broker.handle(createWebSocketStream(ws), { transport: 'ws', remoteAddress: req.socket.remoteAddress }));
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const overTcp = await connectMqtt(`mqtt://127.0.0.1:${rig.port}`, { username: device.token, clientId: 'tcp' });
    expect(rig.broker.connections().get(device.id)).toMatchObject({ connected: 1, transport: 'tcp', protocolVersion: 4 });
    for (const protocolVersion of [5, 4] as const) {
      const client = await connectMqtt(url, { username: device.token, protocolVersion });
      await client.publishAsync(TELEMETRY, JSON.stringify({ version: protocolVersion }), { qos: 1 });
      expect(rig.broker.connections().get(device.id)).toMatchObject({ connected: 2, transport: 'ws', protocolVersion });
      // Gone without a DISCONNECT: the WebSocket's close alone must end the MQTT connection.
      client.end(true);
      await waitFor('the WebSocket connection to end', () => rig!.broker.connections().get(device.id)?.connected === 1 || undefined, 3000);
    }
    expect(await rig.records()).toBe(2);
    await overTcp.endAsync();
  });

  it('keeps per device how many are connected, how, and when they last connected and disconnected', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('watched');
    const before = Date.now();
    const a = await connect5(`mqtt://127.0.0.1:${rig.port}`, { username: device.token, clientId: 'a' });
    const b = await connectMqtt(`mqtt://127.0.0.1:${rig.port}`, { username: device.token, clientId: 'b', protocolVersion: 4 });
    const seen = rig.broker.connections().get(device.id)!;
    expect(seen).toMatchObject({ connected: 2, protocolVersion: 4, transport: 'tcp' });
    expect(seen.lastConnectAt).toBeGreaterThanOrEqual(before);
    expect(seen.lastDisconnectAt).toBeUndefined();
    await a.client.endAsync();
    await b.endAsync();
    await waitFor('both disconnects', () => rig!.broker.connections().get(device.id)!.connected === 0 || undefined);
    expect(rig.broker.connections().get(device.id)!.lastDisconnectAt).toBeGreaterThanOrEqual(seen.lastConnectAt);
    // A deleted device is forgotten.
    rig.registry.delete(device.id);
    expect(rig.broker.connections().has(device.id)).toBe(false);
  });

  it('closes a device\'s connections at once when its credentials are revoked (MQTT 5: DISCONNECT 0x87), and no other device\'s', async () => {
    const revoked = new EventEmitter();
    rig = await TransportRig.start({ revoked });
    const device = rig.createDevice('rotated');
    const bystander = rig.createDevice('bystander');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'rotated-5'));
    const v311 = new RawClient(rig.port);
    await v311.ready;
    await v311.write(connectPacket(device.token, 'rotated-4'));
    await v311.expect([0x20, 2, 0, 0]);
    const other = await connect5(`mqtt://127.0.0.1:${rig.port}`, { username: bystander.token });
    revoked.emit('revoked', device.id);
    expect(await raw.next('disconnect')).toMatchObject({ reasonCode: 0x87 });
    await raw.waitClosed();
    await v311.waitClosed();
    await other.client.publishAsync(TELEMETRY, '{"still":1}', { qos: 1 });
    expect(await rig.records()).toBe(1);
    other.client.end(true);
  });

  it('closes a deleted device\'s connections with DISCONNECT 0x87', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('deleted');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'deleted'));
    rig.registry.delete(device.id);
    expect(await raw.next('disconnect')).toMatchObject({ reasonCode: 0x87 });
    await raw.waitClosed();
  });

  it('waits for an authenticator that answers later, and handles what came behind the CONNECT after the CONNACK', async () => {
    let checks = 0;
    const slow: DeviceAuthenticator = (credentials) => new Promise<ConnectVerdict>((resolve) => {
      checks++;
      setImmediate(() => {
        const device = rig!.registry.findByToken(credentials.username ?? '');
        resolve(device && credentials.password?.toString() === 'secret'
          ? { ok: true, device }
          : { ok: false, refusal: 'bad_credentials', reason: 'wrong password' });
      });
    });
    rig = await TransportRig.start({ authenticate: slow });
    const device = rig.createDevice('slow-auth');
    // CONNECT and two PUBLISHes in one write.
    const client = new RawClient(rig.port);
    await client.ready;
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'slow', keepalive: 60, username: device.token, password: Buffer.from('secret') });
    await client.write(Buffer.concat([connect, publishPacket(TELEMETRY, '{"a":1}', 1, 1), publishPacket(TELEMETRY, '{"b":2}', 1, 2)]));
    await client.expect([0x20, 2, 0, 0]);
    await client.expect([0x40, 2, 0, 1]);
    await client.expect([0x40, 2, 0, 2]);
    expect(await rig.records()).toBe(2);
    expect(checks).toBe(1);
    client.destroy();
    await expect(connect5(`mqtt://127.0.0.1:${rig.port}`, { username: device.token, password: 'wrong' })).rejects.toMatchObject({ code: 0x86 });
  });

  it('answers the authenticator\'s refusals with their reason codes in both versions', async () => {
    const refusals: Record<string, ConnectVerdict> = {
      busy: { ok: false, refusal: 'server_busy', reason: 'password checks queued' },
      nope: { ok: false, refusal: 'not_authorized', reason: 'device disabled' },
    };
    rig = await TransportRig.start({ authenticate: ({ username }) => refusals[username ?? ''] ?? { ok: false, refusal: 'bad_credentials', reason: 'no' } });
    await expect(connect5(`mqtt://127.0.0.1:${rig.port}`, { username: 'busy' })).rejects.toMatchObject({ code: 0x89 });
    await expect(connect5(`mqtt://127.0.0.1:${rig.port}`, { username: 'nope' })).rejects.toMatchObject({ code: 0x87 });
    await expect(connectMqtt(`mqtt://127.0.0.1:${rig.port}`, { username: 'busy', protocolVersion: 4 })).rejects.toMatchObject({ code: 3 });
    await expect(connectMqtt(`mqtt://127.0.0.1:${rig.port}`, { username: 'nope', protocolVersion: 4 })).rejects.toMatchObject({ code: 5 });
    expect(await rig.metric('sluice_mqtt_connections_refused_total', { reason: 'server_busy' })).toBe(2);
    expect(await rig.metric('sluice_auth_failures_total', { transport: 'mqtt' })).toBe(2);
  });

  it('acknowledges in the order the PUBLISHes came, though rejected ones are done first, and holds reading while too many are in flight', async () => {
    rig = await TransportRig.start({ maxInflightMessages: 2 });
    const device = rig.createDevice('ordered');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'ordered'));
    const count = 60;
    raw.send(Buffer.concat(Array.from({ length: count }, (_, i) => publish5Bytes(TELEMETRY, i % 3 === 0 ? 'not json' : JSON.stringify({ seq: i }), 1, i + 1))));
    const acks = [];
    for (let i = 0; i < count; i++) acks.push(await raw.next('puback'));
    expect(acks.map((a) => a.messageId)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(acks.map((a) => a.reasonCode)).toEqual(Array.from({ length: count }, (_, i) => (i % 3 === 0 ? 0x99 : 0)));
    expect(await rig.records()).toBe(count - count / 3);
    raw.destroy();
  });

  it('sends no ack for a message the log could not store, and closes the connection (MQTT 5: DISCONNECT 0x80 first)', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('unstored');
    const { raw: v5 } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'unstored-5'));
    const v311 = new RawClient(rig.port);
    await v311.ready;
    await v311.write(connectPacket(device.token, 'unstored-4'));
    await v311.expect([0x20, 2, 0, 0]);
    await rig.log.close(); // every append fails from now on
    v5.send(Buffer.concat([publish5Bytes(TELEMETRY, '{"a":1}', 1, 1), publish5Bytes(TELEMETRY, '{"b":2}', 2, 2)]));
    const disconnect = await v5.next('disconnect');
    expect(disconnect.reasonCode).toBe(0x80);
    expect(disconnect.properties?.reasonString).toMatch(/log is closed/);
    await v5.waitClosed();
    await v311.write(publishPacket(TELEMETRY, '{"c":3}', 1, 3));
    await v311.waitClosed();
    expect(v5.take('puback')).toEqual([]);
    expect(v5.take('pubrec')).toEqual([]);
    expect(v311.received.length).toBe(0);
  });

  it('rejects gateway topics as unknown without a gateway API (MQTT 5: PUBACK 0x90)', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('no-gateway');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'gw'));
    raw.send(publish5Bytes('v1/gateway/telemetry', '{"Sensor A":[{"t":1}]}', 1, 1));
    const puback = await raw.next('puback');
    expect(puback.reasonCode).toBe(0x90);
    expect(puback.properties?.reasonString).toMatch(/no gateway API/);
    raw.destroy();
  });

  it('hands a gateway\'s v1/gateway/* PUBLISHes to the gateway API, tells it when the gateway\'s connection closes, and refuses them from other devices (0x87)', async () => {
    rig = await TransportRig.start({ withGateway: true });
    const gatewayDevice = rig.createDevice('gw-1', true);
    const plain = rig.createDevice('not-a-gateway');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(gatewayDevice.token, 'gw-1'));
    raw.send(publish5Bytes('v1/gateway/connect', JSON.stringify({ device: 'Sensor A', type: 'thermometer' }), 1, 1));
    raw.send(publish5Bytes('v1/gateway/telemetry', JSON.stringify({ 'Sensor A': [{ ts: 1000, values: { t: 21 } }] }), 1, 2));
    expect(await raw.next('puback')).toMatchObject({ messageId: 1, reasonCode: 0 });
    expect(await raw.next('puback')).toMatchObject({ messageId: 2, reasonCode: 0 });
    expect(await rig.records()).toBe(1);
    const sensor = rig.registry.list().find((d) => d.name === 'Sensor A')!;
    expect(rig.gateway!.isOnline(sensor.id)).toBe(true);
    raw.destroy();
    await waitFor('the sub-device to go offline with its gateway\'s connection', () => !rig!.gateway!.isOnline(sensor.id) || undefined);

    const { raw: other } = await RawMqtt5.open(rig.port, connect5Bytes(plain.token, 'plain'));
    other.send(publish5Bytes('v1/gateway/telemetry', JSON.stringify({ 'Sensor A': [{ ts: 2000, values: { t: 22 } }] }), 1, 1));
    const refused = await other.next('puback');
    expect(refused.reasonCode).toBe(0x87);
    expect(refused.properties?.reasonString).toMatch(/not one|not a gateway/);
    expect(await rig.records()).toBe(1);
    other.destroy();
  });

  it('says DISCONNECT 0x8b server shutting down to MQTT 5 clients when it stops', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('at-stop');
    const { raw } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'at-stop'));
    const stopped = rig.stop();
    rig = undefined;
    await within(5000, 'the transport to stop', stopped);
    expect(await raw.next('disconnect')).toMatchObject({ reasonCode: 0x8b });
  });

  it('takes a session over for the same device: the old MQTT 5 connection gets DISCONNECT 0x8e', async () => {
    rig = await TransportRig.start();
    const device = rig.createDevice('twice');
    const { raw: old } = await RawMqtt5.open(rig.port, connect5Bytes(device.token, 'same-id'));
    const fresh = await mqtt.connectAsync(`mqtt://127.0.0.1:${rig.port}`, { username: device.token, clientId: 'same-id', protocolVersion: 5, reconnectPeriod: 0 });
    expect(await old.next('disconnect')).toMatchObject({ reasonCode: 0x8e });
    await fresh.publishAsync(TELEMETRY, '{"fresh":1}', { qos: 1 });
    expect(await rig.records()).toBe(1);
    fresh.end(true);
  });
});
