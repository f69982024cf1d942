import net from 'node:net';

/**
 * A lean MQTT 3.1.1 QoS 1 publisher for load tests: hand-encoded packets on a plain socket, a
 * window of in-flight publishes per connection, PUBACKs matched by packet id. It spends far less
 * CPU per message than a full client, so a benchmark on one machine measures the server.
 */
export interface RawPublisherStats {
  acked: number;
  /** Send-to-PUBACK times in microseconds, one per acked message. */
  latenciesUs: number[];
}

const CONNACK = 0x20;
const PUBACK = 0x40;

export async function connectRaw(host: string, port: number, username: string, clientId: string): Promise<net.Socket> {
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  socket.write(connectPacket(clientId, username));
  const connack = await new Promise<Buffer>((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
  });
  if (connack[0] !== CONNACK || connack[3] !== 0) throw new Error(`CONNACK refused: return code ${connack[3]}`);
  return socket;
}

/** Publishes QoS 1 on `socket` keeping `inflight` unacknowledged, until `until()` says stop. */
export function publishLoop(socket: net.Socket, topic: string, payload: (seq: number) => string, inflight: number, until: () => boolean, stats: RawPublisherStats): Promise<void> {
  const sentAt = new Float64Array(65536);
  let nextId = 1;
  let outstanding = 0;
  let seq = 0;
  let carry: Buffer = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const fill = () => {
      if (until()) {
        if (outstanding === 0) resolve();
        return;
      }
      const packets: Buffer[] = [];
      while (outstanding < inflight) {
        const id = nextId;
        nextId = nextId === 65535 ? 1 : nextId + 1;
        sentAt[id] = performance.now();
        packets.push(publishPacket(topic, id, payload(seq++)));
        outstanding++;
      }
      if (packets.length > 0) socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
    };
    socket.on('data', (chunk: Buffer) => {
      let buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let p = 0;
      const now = performance.now();
      while (buf.length - p >= 4) {
        if (buf[p] !== PUBACK || buf[p + 1] !== 2) return reject(new Error(`unexpected packet type 0x${buf[p]!.toString(16)}`));
        const id = buf.readUInt16BE(p + 2);
        stats.latenciesUs.push(Math.round((now - sentAt[id]!) * 1000));
        stats.acked++;
        outstanding--;
        p += 4;
      }
      carry = buf.subarray(p);
      fill();
    });
    socket.once('error', reject);
    socket.once('close', () => (outstanding > 0 && !until() ? reject(new Error('connection closed by the server')) : resolve()));
    fill();
  });
}

function connectPacket(clientId: string, username: string): Buffer {
  const body = Buffer.concat([
    str('MQTT'), Buffer.from([4, 0x82, 0, 60]), // protocol level 4, flags: username + clean session, keepalive 60 s
    str(clientId), str(username),
  ]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

function publishPacket(topic: string, id: number, payload: string): Buffer {
  const topicBytes = Buffer.byteLength(topic);
  const payloadBytes = Buffer.byteLength(payload);
  const bodyLength = 2 + topicBytes + 2 + payloadBytes;
  const header = remainingLength(bodyLength);
  const buf = Buffer.allocUnsafe(1 + header.length + bodyLength);
  let p = 0;
  buf[p++] = 0x32; // PUBLISH, QoS 1
  p += header.copy(buf, p);
  buf.writeUInt16BE(topicBytes, p); p += 2;
  p += buf.write(topic, p);
  buf.writeUInt16BE(id, p); p += 2;
  buf.write(payload, p);
  return buf;
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}
