import net from 'node:net';

/**
 * A lean MQTT 3.1.1 publisher connection for load: hand-encoded packets on a plain socket, QoS 0
 * and QoS 1, PUBACKs matched by packet id, PINGREQs when idle. It spends far less CPU per message
 * than a full client, so a load run on the server's own machine measures the server. It does not
 * subscribe, resend or keep sessions: what is in flight when the connection drops is lost
 * (counted by the caller).
 */

const CONNACK = 0x20;
const PUBACK = 0x40;
const PINGRESP = 0xd0;
const PINGREQ_PACKET = Buffer.from([0xc0, 0]);
const DISCONNECT_PACKET = Buffer.from([0xe0, 0]);
/** Above this many bytes queued in the socket, the connection says it is not writable. */
const HIGH_WATER_BYTES = 64 * 1024;

export interface LeanConnectOptions {
  host: string;
  port: number;
  clientId: string;
  username: string;
  keepaliveSec?: number;
  timeoutMs?: number;
  /** The most QoS 1 publishes the caller keeps in flight (at most 16,383). */
  maxInflight?: number;
}

/** CONNACK return codes of MQTT 3.1.1 [MQTT-3.2.2-3]. */
const REFUSALS: Record<number, string> = {
  1: 'unacceptable protocol version', 2: 'identifier rejected', 3: 'server unavailable',
  4: 'bad user name or password', 5: 'not authorized',
};

export class ConnectRefusedError extends Error {
  override readonly name = 'ConnectRefusedError';
  constructor(readonly returnCode: number) {
    super(`connection refused: ${REFUSALS[returnCode] ?? `return code ${returnCode}`}`);
  }
}

export class LeanMqttConnection {
  /** Unacknowledged QoS 1 publishes. */
  inflight = 0;
  /** Called for each PUBACK with the send-to-PUBACK time in ms. */
  onAck: (latencyMs: number) => void = () => {};
  /** Called when the socket has room again after `writable` said no. */
  onDrain: () => void = () => {};
  /** Called once when the connection ends, with the error if it did not end by `end()`. */
  onClose: (err: Error | undefined) => void = () => {};

  /** Send times of QoS 1 publishes by packet id; ids cycle through 1..idSpace. */
  private readonly sentAt: Float64Array;
  private readonly idSpace: number;
  private nextId = 1;
  private carry: Buffer = Buffer.alloc(0);
  private lastWriteAt = Date.now();
  private ending = false;
  private closed = false;
  private pingTimer: NodeJS.Timeout | undefined;

  private closeReported = false;

  private constructor(private readonly socket: net.Socket, private readonly keepaliveSec: number, maxInflight: number) {
    // Ids are reused after idSpace publishes; with at most a quarter of them in flight, an id
    // comes round again long after its PUBACK.
    this.idSpace = Math.min(65535, 2 ** Math.ceil(Math.log2(Math.max(16, maxInflight * 4))));
    this.sentAt = new Float64Array(this.idSpace + 1);
  }

  /** Connects and waits for CONNACK; rejects with ConnectRefusedError when the server says no. */
  static open(options: LeanConnectOptions): Promise<LeanMqttConnection> {
    const { host, port, clientId, username, keepaliveSec = 60, timeoutMs = 10_000, maxInflight = 64 } = options;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const connection = new LeanMqttConnection(socket, keepaliveSec, maxInflight);
      const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', fail);
      socket.once('close', () => fail(new Error('connection closed before CONNACK')));
      socket.once('connect', () => socket.write(connectPacket(clientId, username, keepaliveSec)));
      let head: Buffer = Buffer.alloc(0);
      const onHandshakeData = (chunk: Buffer) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        if (head.length < 4) return;
        socket.off('data', onHandshakeData);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        clearTimeout(timer);
        if (head[0] !== CONNACK || head[1] !== 2) return fail(new Error(`expected CONNACK, got packet type 0x${head[0]!.toString(16)}`));
        if (head[3] !== 0) return fail(new ConnectRefusedError(head[3]!));
        connection.start(head.subarray(4));
        resolve(connection);
      };
      socket.on('data', onHandshakeData);
    });
  }

  get connected(): boolean {
    return !this.closed;
  }

  /** False while the socket's buffer is full: wait for onDrain before publishing more. */
  get writable(): boolean {
    return !this.closed && this.socket.writableLength < HIGH_WATER_BYTES;
  }

  /**
   * Encodes one PUBLISH per payload and writes them in one go. `topic` is the topic's UTF-8
   * bytes, encoded once by the caller. QoS 1 publishes take packet ids; the caller keeps
   * `inflight` under 65,535.
   */
  publish(topic: Buffer, payloads: string[], qos: 0 | 1): void {
    if (this.closed || payloads.length === 0) return;
    const now = performance.now();
    const packets = payloads.map((payload) => {
      if (qos === 0) return publishPacket(topic, 0, payload);
      const id = this.nextId;
      this.nextId = id === this.idSpace ? 1 : id + 1;
      this.sentAt[id] = now;
      this.inflight++;
      return publishPacket(topic, id, payload);
    });
    this.lastWriteAt = Date.now();
    const fits = this.socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
    if (!fits) this.socket.once('drain', () => this.onDrain());
  }

  /** Sends DISCONNECT and waits for the socket to close (at most `timeoutMs`). */
  end(timeoutMs = 2000): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ending = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end(DISCONNECT_PACKET);
    });
  }

  destroy(): void {
    this.ending = true;
    this.socket.destroy();
  }

  private start(rest: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', () => {}); // 'close' follows and reports
    this.socket.once('close', (hadError) => {
      this.reportClose(this.ending ? undefined : new Error(hadError ? 'connection lost' : 'connection closed by the server'));
    });
    if (this.keepaliveSec > 0) {
      // [MQTT-3.1.2-23]: a client sends something within each keep-alive period; PINGREQ when idle.
      const everyMs = (this.keepaliveSec * 1000) / 2;
      this.pingTimer = setInterval(() => {
        if (Date.now() - this.lastWriteAt >= everyMs) {
          this.lastWriteAt = Date.now();
          this.socket.write(PINGREQ_PACKET);
        }
      }, everyMs);
      this.pingTimer.unref();
    }
    if (rest.length > 0) this.read(rest);
  }

  private read(chunk: Buffer): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const now = performance.now();
    let p = 0;
    while (buf.length - p >= 2) {
      const type = buf[p]!;
      const length = buf[p + 1]!; // every packet a server sends a publisher is shorter than 128 bytes
      if (length > 127) return this.protocolError(`unexpected packet type 0x${type.toString(16)} of ${length}+ bytes`);
      if (buf.length - p < 2 + length) break;
      if (type === PUBACK && length === 2) {
        const id = buf.readUInt16BE(p + 2);
        this.inflight--;
        this.onAck(now - this.sentAt[id]!);
      } else if (type !== PINGRESP) {
        return this.protocolError(`unexpected packet type 0x${type.toString(16)}`);
      }
      p += 2 + length;
    }
    this.carry = p === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(p));
  }

  private protocolError(message: string): void {
    this.reportClose(new Error(message));
    this.socket.destroy();
  }

  private reportClose(err: Error | undefined): void {
    this.closed = true;
    clearInterval(this.pingTimer);
    if (this.closeReported) return;
    this.closeReported = true;
    this.onClose(err);
  }
}

function connectPacket(clientId: string, username: string, keepaliveSec: number): Buffer {
  const body = Buffer.concat([
    str('MQTT'), Buffer.from([4, 0x82, keepaliveSec >> 8, keepaliveSec & 0xff]), // level 4; flags: user name + clean session
    str(clientId), str(username),
  ]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

function publishPacket(topic: Buffer, id: number, payload: string): Buffer {
  const payloadBytes = Buffer.byteLength(payload);
  const bodyLength = 2 + topic.length + (id === 0 ? 0 : 2) + payloadBytes;
  const header = remainingLength(bodyLength);
  const buf = Buffer.allocUnsafe(1 + header.length + bodyLength);
  let p = 0;
  buf[p++] = id === 0 ? 0x30 : 0x32; // PUBLISH, QoS 0 or 1
  p += header.copy(buf, p);
  buf.writeUInt16BE(topic.length, p); p += 2;
  p += topic.copy(buf, p);
  if (id !== 0) { buf.writeUInt16BE(id, p); p += 2; }
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
