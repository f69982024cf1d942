import http from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { Server } from 'socket.io';
import { io as connectClient, type Socket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFramesTogetherForClients } from '../server/src/realtime/websocket-frames.js';
import { TestServer, within } from './support/test-server.js';

/** A real socket.io server on port 0; counts the TCP writes made to each client. */
async function startCountingServer(batch: boolean): Promise<{ io: Server; url: string; writes: () => number; close: () => Promise<void> }> {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { serveClient: false });
  if (batch) writeFramesTogetherForClients(io.engine);
  let writes = 0;
  io.engine.on('connection', (client: { transport: { socket?: { _socket?: NetSocket } } }) => {
    const tcp = client.transport.socket?._socket as (NetSocket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void }) | undefined;
    if (!tcp) return;
    const write = tcp._write.bind(tcp);
    const writev = tcp._writev.bind(tcp);
    tcp._write = (...a: unknown[]) => { writes++; write(...a); };
    tcp._writev = (...a: unknown[]) => { writes++; writev(...a); };
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    io, url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`, writes: () => writes,
    close: () => new Promise<void>((resolve) => { void io.close(() => resolve()); }),
  };
}

async function burstOf(events: number, batch: boolean): Promise<{ received: number[]; writes: number }> {
  const server = await startCountingServer(batch);
  const client = connectClient(server.url, { transports: ['websocket'], reconnection: false });
  try {
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('connect_error', reject); });
    const received: number[] = [];
    const all = new Promise<void>((resolve) => client.on('telemetry', (e: { n: number }) => { received.push(e.n); if (received.length === events) resolve(); }));
    const before = server.writes();
    for (let n = 0; n < events; n++) server.io.emit('telemetry', { n });
    await within(5000, `${events} telemetry events`, all);
    return { received, writes: server.writes() - before };
  } finally {
    client.close();
    await server.close();
  }
}

describe('websocket frames written together', () => {
  it('sends a burst of events in a few TCP writes, each event whole and in order', async () => {
    const batched = await burstOf(500, true);
    expect(batched.received).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(batched.writes).toBeLessThanOrEqual(5);
    // The same burst without it: a write per event, which is what this saves.
    const unbatched = await burstOf(500, false);
    expect(unbatched.received).toEqual(batched.received);
    expect(unbatched.writes).toBeGreaterThan(100);
  });

  describe('through Sluice', () => {
    let server: TestServer | undefined;
    const sockets: Socket[] = [];
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.close();
      await server?.stop();
      server = undefined;
    });

    it('pushes every entry of a large message as its own telemetry event, in order', async () => {
      server = await TestServer.start();
      const socket = connectClient(server.baseUrl, { auth: { token: server.sluice.adminToken }, transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
      const device = await server.createDevice('burst-dev');
      const client = await server.connectDevice(device.token);
      const entries = Array.from({ length: 300 }, (_, i) => ({ ts: 1_000 + i, values: { i } }));
      const events: { deviceId: string; ts: number; values: { i: number } }[] = [];
      const all = new Promise<void>((resolve) => socket.on('telemetry', (e: (typeof events)[number]) => { events.push(e); if (events.length === entries.length) resolve(); }));
      try {
        await client.publishAsync('v1/devices/me/telemetry', JSON.stringify(entries), { qos: 1 });
        await within(10_000, 'every entry as a telemetry event', all);
      } finally {
        client.end(true);
      }
      expect(events).toEqual(entries.map((e) => ({ deviceId: device.id, ts: e.ts, values: e.values })));
    });
  });
});
