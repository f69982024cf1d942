import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectPacket, LimitedServer, MiB, RawClient, retainedBytes } from './support/mqtt-hostile.js';
import { capturingLogger, waitFor, type CreatedDevice } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';
const closedOnce = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));

describe('client ids are scoped per device (issue 16, finding 15)', () => {
  let server: LimitedServer;
  let a: CreatedDevice;
  let b: CreatedDevice;
  const open: MqttClient[] = [];
  beforeAll(async () => {
    server = await LimitedServer.start();
    a = await server.createDevice('device-a');
    b = await server.createDevice('device-b');
  });
  afterEach(() => { for (const c of open.splice(0)) c.end(true); });
  afterAll(async () => { await server?.stop(); });

  /** Connects with a persistent session; resolves with the CONNACK's session present flag too. */
  function connectWithConnack(token: string, clientId: string): Promise<{ client: MqttClient; sessionPresent: boolean }> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${server.mqttPort}`, { username: token, clientId, clean: false, reconnectPeriod: 0 });
      client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
      client.once('error', (err) => { client.end(true); reject(err); });
    });
  }

  it("refuses another device's CONNECT with a client id A holds (identifier rejected), and A stays connected", async () => {
    const holder = await server.connectDevice(a.token, { clientId: 'shared-id' });
    open.push(holder);
    let kicked = false;
    holder.on('close', () => { kicked = true; });
    await expect(server.connectDevice(b.token, { clientId: 'shared-id' })).rejects.toThrow(/Identifier rejected/i);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'client_id_in_use' })).toBe(1);
    await holder.publishAsync(TELEMETRY, '{"a":1}', { qos: 1 });
    expect((await server.storedLatest(a)).a?.value).toBe(1);
    expect(kicked).toBe(false);
  });

  it('lets the same device take its own session over [MQTT-3.1.4-2]', async () => {
    const old = await server.connectDevice(a.token, { clientId: 'own-id' });
    const oldClosed = closedOnce(old);
    const fresh = await server.connectDevice(a.token, { clientId: 'own-id' });
    open.push(old, fresh);
    await oldClosed;
    await fresh.publishAsync(TELEMETRY, '{"a":2}', { qos: 1 });
    expect((await server.storedLatest(a)).a?.value).toBe(2);
  });

  it("refuses another device's CONNECT with the client id of A's offline persistent session, which A gets back", async () => {
    const first = await server.connectDevice(a.token, { clientId: 'persistent-id', clean: false });
    await first.subscribeAsync('rules/#', { qos: 1 });
    await first.endAsync();
    await expect(server.connectDevice(b.token, { clientId: 'persistent-id', clean: false })).rejects.toThrow(/Identifier rejected/i);
    await expect(server.connectDevice(b.token, { clientId: 'persistent-id', clean: true })).rejects.toThrow(/Identifier rejected/i);
    const back = await connectWithConnack(a.token, 'persistent-id');
    expect(back.sessionPresent).toBe(true);
    open.push(back.client);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'client_id_in_use' })).toBe(3);
    // B with an id of its own is fine.
    const own = await server.connectDevice(b.token, { clientId: 'b-own' });
    open.push(own);
    await own.publishAsync(TELEMETRY, '{"b":1}', { qos: 1 });
    expect((await server.storedLatest(b)).b?.value).toBe(1);
  });
});

describe('failed MQTT logins are logged at most once a second (issue 16, finding 15)', () => {
  const { logger, lines } = capturingLogger();
  let server: LimitedServer;
  beforeAll(async () => { server = await LimitedServer.start({}, { logLevel: 'debug' }, logger); });
  afterAll(async () => { await server?.stop(); });

  it('summarises 40 refused logins in at most two lines, and counts each in the metric', async () => {
    const before = retainedBytes();
    const refusedLines = () => lines.filter((l) => /unknown or empty access token/.test(l.msg) && l.level >= 30);
    const clients = Array.from({ length: 40 }, () => new RawClient(server.mqttPort));
    await Promise.all(clients.map((c) => c.ready));
    await Promise.all(clients.map((c, i) => c.write(connectPacket('not-a-token', `guess-${i}`))));
    await Promise.all(clients.map((c) => c.expect([0x20, 2, 0, 4]))); // bad user name or password
    expect(await server.metric('sluice_auth_failures_total', { transport: 'mqtt' })).toBe(40);
    // The first is logged at once; the other 39 in one summary at the end of its second.
    await waitFor('the summary line', () => refusedLines().some((l) => l.count === 39) || undefined, 3000);
    expect(refusedLines()).toHaveLength(2);
    expect(retainedBytes() - before).toBeLessThan(16 * MiB);
    for (const c of clients) c.destroy();
    // And a device with a good token still gets in and is stored.
    const device = await server.createDevice('good-token');
    const client = await server.connectDevice(device.token);
    await client.publishAsync(TELEMETRY, '{"ok":1}', { qos: 1 });
    expect((await server.storedLatest(device)).ok?.value).toBe(1);
    client.end(true);
  });
});
