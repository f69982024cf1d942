import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './support/test-server.js';

describe('live push over socket.io', () => {
  let server: TestServer;
  const sockets: Socket[] = [];
  const connect = (token: string | undefined) => {
    const socket = io(server.baseUrl, { auth: token === undefined ? {} : { token }, transports: ['websocket'], reconnection: false });
    sockets.push(socket);
    return socket;
  };

  beforeAll(async () => { server = await TestServer.start(); });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server?.stop();
  });

  it('refuses a client without the admin token or with a wrong one', async () => {
    for (const token of [undefined, 'wrong']) {
      const socket = connect(token);
      const err = await new Promise<Error>((resolve) => socket.once('connect_error', resolve));
      expect(err.message).toMatch(/unauthorized/);
    }
  });

  it('pushes a telemetry event when a device publishes, and stats every second', async () => {
    const socket = connect(server.sluice.adminToken);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const device = await server.createDevice('live-dev');
    const client = await server.connectDevice(device.token);
    const event = new Promise<{ deviceId: string; ts: number; values: Record<string, unknown> }>((resolve) => socket.once('telemetry', resolve));
    await client.publishAsync('v1/devices/me/telemetry', '{"ts":1234,"values":{"speed":88}}', { qos: 1 });
    expect(await event).toEqual({ deviceId: device.id, ts: 1234, values: { speed: 88 } });
    client.end(true);
    const stats = await new Promise<{ ingestRate: number; lag: number }>((resolve) => socket.once('stats', resolve));
    expect(stats).toEqual(expect.objectContaining({ ingestRate: expect.any(Number), lag: expect.any(Number) }));
  });
});
