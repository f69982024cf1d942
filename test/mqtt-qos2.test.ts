import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, waitFor } from './support/test-server.js';

/** Hand-made MQTT 3.1.1 packets, so the test controls packet ids and the DUP flag. */
const str = (s: string) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]); };
const withLength = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, body.length]), body]);
const connect = (token: string) => withLength(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x82, 0, 60]), str('qos2-test'), str(token)]));
const publishQos2 = (id: number, payload: string, dup: boolean) =>
  withLength(dup ? 0x3c : 0x34, Buffer.concat([str('v1/devices/me/telemetry'), Buffer.from([id >> 8, id & 0xff]), Buffer.from(payload)]));
const pubrel = (id: number) => Buffer.from([0x62, 2, id >> 8, id & 0xff]);

describe('MQTT QoS 2', () => {
  let server: TestServer;
  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => { await server.stop(); });

  it('appends a retransmitted QoS 2 PUBLISH (same packet id, DUP) once, and answers PUBREC to both', async () => {
    const device = await server.createDevice('qos2');
    const socket = net.connect(server.sluice.ports.mqtt, '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => { received = Buffer.concat([received, d]); });
    const expectBytes = async (bytes: number[]) => {
      // Past the deadline the comparison below fails, showing what did come.
      await waitFor(`${bytes.length} bytes from the broker`, () => received.length >= bytes.length).catch(() => {});
      expect([...received.subarray(0, bytes.length)]).toEqual(bytes);
      received = received.subarray(bytes.length);
    };
    try {
      socket.write(connect(device.token));
      await expectBytes([0x20, 2, 0, 0]); // CONNACK accepted
      const payload = JSON.stringify({ ts: 5000, values: { q: 2 } });
      socket.write(publishQos2(7, payload, false));
      await expectBytes([0x50, 2, 0, 7]); // PUBREC
      socket.write(publishQos2(7, payload, true));
      await expectBytes([0x50, 2, 0, 7]); // PUBREC again, for the retransmission
      socket.write(pubrel(7));
      await expectBytes([0x70, 2, 0, 7]); // PUBCOMP
    } finally {
      socket.destroy();
    }

    await server.sluice.storageCaughtUp();
    const log = await server.json<{ topics: { partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
    expect(log.topics[0]!.partitions.reduce((s, p) => s + p.endOffset, 0)).toBe(1);
    expect(await server.json('GET', `/api/devices/${device.id}/telemetry?keys=q&from=0&to=10000`)).toEqual({ q: [{ ts: 5000, value: 2 }] });
  });
});
