import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedHeaderScanner } from '../server/src/ingest/mqtt-frame-guard.js';
import { connectPacket, LimitedServer, MiB, packet, publishPacket, RawClient, remainingLength, retainedBytes } from './support/mqtt-hostile.js';
import { waitFor } from './support/test-server.js';

const TELEMETRY = 'v1/devices/me/telemetry';

describe('the fixed-header scanner', () => {
  const generate = (p: object) => mqttPacket.generate(p as mqttPacket.Packet);
  const aConnect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c', keepalive: 60, username: 'token' });
  const somePacket = fc.oneof(
    fc.record({ topic: fc.string({ minLength: 1, maxLength: 40 }), payload: fc.uint8Array({ maxLength: 3000 }), qos: fc.constantFrom(0, 1, 2) })
      .map(({ topic, payload, qos }) => generate({ cmd: 'publish', topic: `t/${topic}`, payload: Buffer.from(payload), qos, messageId: qos ? 7 : undefined, retain: false, dup: false })),
    fc.constant(generate({ cmd: 'pingreq' })),
    fc.constant(generate({ cmd: 'puback', messageId: 3 })),
    fc.constant(generate({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'rules/#', qos: 1 }] })),
  );
  /** The stream cut at the given points: every way a socket may deliver it. */
  const split = (stream: Buffer, cuts: number[]) => {
    const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
    return [0, ...at].map((from, i) => stream.subarray(from, at[i] ?? stream.length)).filter((c) => c.length > 0);
  };

  it('follows packet boundaries however the stream is cut, and never refuses packets within the limits', () => {
    fc.assert(fc.property(fc.array(somePacket, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (packets, cuts) => {
      const scanner = new FixedHeaderScanner(64 * 1024, 4000);
      const stream = Buffer.concat([aConnect, ...packets]);
      for (const chunk of split(stream, cuts)) expect(scanner.scan(chunk)).toBeUndefined();
      expect(scanner.connectArrived).toBe(true);
    }), { numRuns: 300 });
  });

  it('refuses on the byte that completes an oversized header, before any of its body', () => {
    fc.assert(fc.property(fc.array(somePacket, { maxLength: 10 }), fc.integer({ min: 4001, max: 268_435_455 }), fc.array(fc.nat(), { maxLength: 10 }), (before, declared, cuts) => {
      const scanner = new FixedHeaderScanner(64 * 1024, 4000);
      const header = Buffer.concat([Buffer.from([0x30]), remainingLength(declared)]);
      const prefix = Buffer.concat([aConnect, ...before, header]);
      const chunks = split(Buffer.concat([prefix, Buffer.alloc(50)]), cuts);
      // The chunk that holds the header's last byte is where it must be refused: no later one is taken.
      let end = 0;
      const headerChunk = chunks.findIndex((c) => (end += c.length) >= prefix.length);
      const refusedAt = chunks.findIndex((c) => scanner.scan(c) !== undefined);
      expect(refusedAt).toBe(headerChunk);
    }), { numRuns: 300 });
  });

  it('knows the CONNECT limit, the first-packet rule and the 4-byte length rule', () => {
    expect(new FixedHeaderScanner(100, 1000).scan(Buffer.from([0x10, 101]))).toBe('connect_too_large');
    expect(new FixedHeaderScanner(100, 1000).scan(Buffer.from([0x30, 5]))).toBe('not_connect_first');
    expect(new FixedHeaderScanner(100, 1000).scan(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff]))).toBe('malformed_length');
    const byteByByte = new FixedHeaderScanner(100, 1000);
    for (const byte of [0x10, 3, 1, 2]) expect(byteByByte.scan(Buffer.from([byte]))).toBeUndefined();
    expect(byteByByte.connectArrived).toBe(false);
    expect(byteByByte.scan(Buffer.from([3]))).toBeUndefined();
    expect(byteByByte.connectArrived).toBe(true);
  });
});

describe('MQTT frame guard on a running server (issue 16, finding 8)', () => {
  let server: LimitedServer;
  beforeAll(async () => {
    server = await LimitedServer.start({ connectTimeoutMs: 600 }, { maxPayloadBytes: 1024 });
  });
  afterAll(async () => { await server?.stop(); });

  /** Pushes `total` bytes of junk after `head`, a reused 64 KiB chunk at a time, until the server closes. */
  async function push(client: RawClient, head: Buffer, total: number): Promise<number> {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    if (!(await client.write(head))) return 0;
    for (let i = 0; i < Math.ceil(total / chunk.length) && !client.closed; i++) {
      if (!(await client.write(chunk))) break;
      sent += chunk.length;
    }
    return sent;
  }

  /** A legitimate device connects, publishes at QoS 1 and finds its value stored. */
  async function legitimateDeviceIsStored(name: string) {
    const device = await server.createDevice(name);
    const client = await server.connectDevice(device.token);
    try {
      await client.publishAsync(TELEMETRY, JSON.stringify({ fine: 1 }), { qos: 1 });
      expect((await server.storedLatest(device)).fine?.value).toBe(1);
    } finally {
      client.end(true);
    }
  }

  it('closes a connection whose CONNECT declares 256 MB at its header, before authentication, with memory bounded', async () => {
    const before = retainedBytes();
    const hostile = Array.from({ length: 8 }, () => new RawClient(server.mqttPort));
    await Promise.all(hostile.map((c) => c.ready));
    // 0x10 = CONNECT; ff ff ff 7f = 268,435,455 bytes to follow, the most MQTT can declare.
    const pushed = await Promise.all(hostile.map((c) => push(c, Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), 8 * MiB)));
    const grown = retainedBytes() - before;
    expect(grown).toBeLessThan(16 * MiB); // before the guard: all 64 MiB pushed were held by the parser
    await Promise.all(hostile.map((c) => c.waitClosed(2000)));
    expect(Math.max(...pushed)).toBeLessThan(8 * MiB);
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'connect_too_large' })).toBe(8);
    await legitimateDeviceIsStored('after-huge-connect');
  });

  it('closes a connected device whose PUBLISH declares far more than --max-payload-bytes, before buffering it', async () => {
    const bad = await server.createDevice('oversized-publisher');
    const good = await server.createDevice('neighbour');
    const neighbour = await server.connectDevice(good.token);
    const acked: number[] = [];
    const hostile = Array.from({ length: 4 }, () => new RawClient(server.mqttPort));
    await Promise.all(hostile.map((c) => c.ready));
    await Promise.all(hostile.map((c, i) => c.write(connectPacket(bad.token, `oversized-${i}`))));
    await Promise.all(hostile.map((c) => c.expect([0x20, 2, 0, 0])));
    const before = retainedBytes();
    // A QoS 1 PUBLISH declaring 10 MiB; 9 MiB of it are pushed (not complete, so nothing is freed by a refusal).
    const head = Buffer.concat([Buffer.from([0x32]), remainingLength(10 * MiB)]);
    const pushing = Promise.all(hostile.map((c) => push(c, head, 9 * MiB)));
    for (let i = 0; i < 20; i++) {
      await neighbour.publishAsync(TELEMETRY, JSON.stringify({ seq: i }), { qos: 1 });
      acked.push(i);
    }
    const pushed = await pushing;
    expect(retainedBytes() - before).toBeLessThan(16 * MiB); // before: 4 × 9 MiB held
    await Promise.all(hostile.map((c) => c.waitClosed(2000)));
    expect(Math.max(...pushed)).toBeLessThan(9 * MiB);
    expect(await server.metric('sluice_mqtt_disconnects_total', { reason: 'packet_too_large' })).toBe(4);
    // Nothing acknowledged to the neighbour was lost.
    expect((await server.storedLatest(good)).seq?.value).toBe(acked.at(-1));
    neighbour.end(true);
  });

  it('still receives, rejects and acknowledges a payload a little over the limit (the room for the topic)', async () => {
    const device = await server.createDevice('slightly-over');
    const client = await server.connectDevice(device.token);
    await client.publishAsync(TELEMETRY, JSON.stringify({ blob: 'x'.repeat(2000) }), { qos: 1 });
    const [last] = await server.json<{ deviceId: string; reason: string }[]>('GET', '/api/rejected');
    expect(last).toMatchObject({ deviceId: device.id });
    expect(last!.reason).toMatch(/exceeds the 1024-byte limit/);
    expect(client.connected).toBe(true);
    client.end(true);
  });

  it('closes connections whose CONNECT does not arrive in time: silent, or dribbled a byte at a time', async () => {
    const device = await server.createDevice('dribbler');
    const silent = new RawClient(server.mqttPort);
    const dribbler = new RawClient(server.mqttPort);
    await Promise.all([silent.ready, dribbler.ready]);
    const connect = connectPacket(device.token, 'dribbled');
    const dribbling = (async () => {
      for (let i = 0; i < connect.length - 1 && !dribbler.closed; i++) {
        await dribbler.write(connect.subarray(i, i + 1));
        // Pacing, the behaviour under test: a byte every 40 ms, so the whole CONNECT would take
        // longer than the 600 ms the server gives it, though bytes keep coming.
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    await silent.waitClosed(3000); // before the guard: aedes' own 30 s
    await dribbler.waitClosed(3000);
    await dribbling;
    expect(dribbler.received.length).toBe(0); // no CONNACK: there was no CONNECT to answer
    expect(await server.metric('sluice_mqtt_connections_refused_total', { reason: 'connect_timeout' })).toBe(2);
    await legitimateDeviceIsStored('after-timeouts');
  });

  it('passes a normal session through untouched: CONNECT, publishes of every QoS, PINGREQ', async () => {
    const device = await server.createDevice('normal-raw');
    const client = new RawClient(server.mqttPort);
    await client.ready;
    await client.write(Buffer.concat([connectPacket(device.token, 'normal-raw'), publishPacket(TELEMETRY, '{"a":1}', 0)]));
    await client.expect([0x20, 2, 0, 0]);
    await client.write(Buffer.concat([publishPacket(TELEMETRY, '{"b":2}', 1, 9), packet(0xc0, Buffer.alloc(0))]));
    // PUBACK (once the append is durable) and PINGRESP, in either order.
    await waitFor('PUBACK and PINGRESP', () => client.received.length >= 6 || undefined);
    const answers = client.received.toString('hex');
    expect([answers, answers.slice(4) + answers.slice(0, 4)]).toContain('40020009d000');
    await waitFor('both values', async () => ((await server.storedLatest(device)).b ? true : undefined));
    expect(Object.keys(await server.storedLatest(device)).sort()).toEqual(['a', 'b']);
    client.destroy();
  });
});
