import type { Socket as NetSocket } from 'node:net';

/** The parts of an engine.io transport this module touches (engine.io 6 and its `ws` socket). */
interface EngineTransport {
  name: string;
  send(packets: unknown[]): void;
  socket?: { _socket?: NetSocket };
}

/**
 * Makes a websocket transport write the packets it sends together in one TCP write. engine.io
 * sends each packet as its own frame and `ws` writes each frame as it comes: at thousands of
 * `telemetry` events a second that is a syscall per event, the largest single cost on the
 * broker's thread. Corking the TCP socket while a burst is sent turns it into one writev; every
 * frame, and so every event the client sees, stays exactly as it was.
 */
export function writeFramesTogether(transport: EngineTransport): void {
  if (transport.name !== 'websocket') return;
  const tcp = transport.socket?._socket;
  if (typeof tcp?.cork !== 'function') return; // not the shape expected: leave it as it is
  const send = transport.send.bind(transport);
  transport.send = (packets) => {
    if (packets.length < 2 || tcp.destroyed) return send(packets);
    tcp.cork();
    try {
      send(packets);
    } finally {
      tcp.uncork();
    }
  };
}

/** Applies writeFramesTogether to every client's transport, the first one and any it upgrades to. */
export function writeFramesTogetherForClients(engine: { on(event: 'connection', listener: (socket: EngineClient) => void): void }): void {
  engine.on('connection', (client) => {
    writeFramesTogether(client.transport);
    client.on('upgrade', (transport: EngineTransport) => writeFramesTogether(transport));
  });
}

interface EngineClient {
  transport: EngineTransport;
  on(event: 'upgrade', listener: (transport: EngineTransport) => void): void;
}
