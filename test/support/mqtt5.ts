import net from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Logger } from 'pino';
import { systemClock } from '../../server/src/clock.js';
import { GatewayApi } from '../../server/src/ingest/gateway.js';
import { Ingest } from '../../server/src/ingest/ingest.js';
import { startMqttBroker, type MqttBroker, type MqttBrokerOptions } from '../../server/src/ingest/mqtt-broker.js';
import { RejectedMessages } from '../../server/src/ingest/rejected-messages.js';
import { FileLog } from '../../server/src/log/file-log.js';
import { createMetrics } from '../../server/src/metrics.js';
import { openDatabase } from '../../server/src/storage/database.js';
import { DeviceRegistry, type Device } from '../../server/src/storage/device-registry.js';
import { TELEMETRY_TOPIC } from '../../server/src/telemetry/device-message.js';
import { sampleOf } from './metrics-text.js';
import { packet, remainingLength } from './mqtt-hostile.js';
import { silentLogger, tempDir, waitFor } from './test-server.js';

/**
 * Helpers of the MQTT 5 tests (test/mqtt5-*.test.ts): an mqtt.js client at protocol version 5
 * that also hands back its CONNACK; a raw client that speaks MQTT 5 packet by packet through
 * mqtt-packet (or hand-made bytes, for what mqtt-packet would not generate: duplicate or
 * malformed properties); and a transport rig — the device transport alone, started with
 * startMqttBroker over a real log, device registry and ingest in a temp dir — for what a whole
 * Sluice does not expose (handle(), connections(), the revoked emitter, an authenticator).
 */

/** An mqtt.js MQTT 5 client (no reconnects) and its CONNACK; rejects with the refusal. */
export function connect5(url: string, options: IClientOptions = {}): Promise<{ client: MqttClient; connack: mqttPacket.IConnackPacket }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', (connack) => resolve({ client, connack }));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** A raw MQTT connection: writes packets (generated at `version`, or given as bytes) and parses every packet the server sends. */
export class RawMqtt5 {
  readonly socket: net.Socket;
  readonly packets: mqttPacket.Packet[] = [];
  closed = false;
  readonly ready: Promise<void>;
  private readonly parser: mqttPacket.Parser;

  constructor(port: number, readonly version: 4 | 5 = 5) {
    this.socket = net.connect(port, '127.0.0.1');
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    this.socket.on('data', (d: Buffer) => this.parser.parse(d));
    this.socket.on('error', () => {});
    this.socket.on('close', () => { this.closed = true; });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('close', () => reject(new Error('closed before connecting')));
    });
  }

  /** Connects and resolves with the CONNACK (accepted or not). */
  static async open(port: number, connect: Partial<mqttPacket.IConnectPacket> | Buffer, version: 4 | 5 = 5): Promise<{ raw: RawMqtt5; connack: mqttPacket.IConnackPacket }> {
    const raw = new RawMqtt5(port, version);
    await raw.ready;
    raw.send(Buffer.isBuffer(connect) ? connect : { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: '', keepalive: 60, ...connect } as mqttPacket.IConnectPacket);
    const connack = await raw.next('connack');
    return { raw, connack: connack as mqttPacket.IConnackPacket };
  }

  send(p: mqttPacket.Packet | Buffer): void {
    this.socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p, { protocolVersion: this.version }));
  }

  /** Takes the first packet of `cmd` received (waiting for it); fails if the connection closes first. */
  async next<C extends mqttPacket.PacketCmd>(cmd: C, timeoutMs = 5000): Promise<Extract<mqttPacket.Packet, { cmd: C }>> {
    const found = await waitFor(`a ${cmd.toUpperCase()} from the server`, () => {
      const i = this.packets.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.packets.splice(i, 1)[0];
      if (this.closed) throw new Error(`the server closed the connection without a ${cmd.toUpperCase()} (got ${this.packets.map((p) => p.cmd).join(', ') || 'nothing'})`);
      return undefined;
    }, timeoutMs);
    return found as Extract<mqttPacket.Packet, { cmd: C }>;
  }

  /** All received packets of `cmd` so far, taken. */
  take<C extends mqttPacket.PacketCmd>(cmd: C): Extract<mqttPacket.Packet, { cmd: C }>[] {
    const taken = this.packets.filter((p) => p.cmd === cmd);
    for (const p of taken) this.packets.splice(this.packets.indexOf(p), 1);
    return taken as Extract<mqttPacket.Packet, { cmd: C }>[];
  }

  waitClosed(timeoutMs = 5000): Promise<true> {
    return waitFor('the server to close the connection', () => this.closed || undefined, timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ── hand-made MQTT 5 bytes ───────────────────────────────────────────────────────────────────

const str = (s: string) => {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

/** One MQTT 5 property, as bytes: identifier then value (MQTT 5 §2.2.2.2). */
export const prop = {
  byte: (id: number, value: number) => Buffer.from([id, value]),
  int16: (id: number, value: number) => Buffer.concat([Buffer.from([id]), u16(value)]),
  int32: (id: number, value: number) => Buffer.concat([Buffer.from([id]), u32(value)]),
  string: (id: number, value: string) => Buffer.concat([Buffer.from([id]), str(value)]),
  pair: (id: number, key: string, value: string) => Buffer.concat([Buffer.from([id]), str(key), str(value)]),
};

/** Property identifiers the tests use. */
export const P = {
  sessionExpiryInterval: 0x11, receiveMaximum: 0x21, maximumPacketSize: 0x27, topicAliasMaximum: 0x22, requestProblemInformation: 0x17,
  authenticationMethod: 0x15, topicAlias: 0x23, subscriptionIdentifier: 0x0b, userProperty: 0x26, contentType: 0x03,
};

/** A property block: its length (a variable byte integer) and the properties. */
export const properties = (...props: Buffer[]): Buffer => {
  const body = Buffer.concat(props);
  return Buffer.concat([remainingLength(body.length), body]);
};

/** An MQTT 5 CONNECT, user name `token`, with the property block given as bytes (`props`: already with its length). */
export function connect5Bytes(token: string, clientId: string, props: Buffer = properties(), clean = true): Buffer {
  const flags = 0x80 | (clean ? 0x02 : 0);
  return packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, flags, 0, 60]), props, str(clientId), str(token)]));
}

/** An MQTT 5 PUBLISH with the property block given as bytes. */
export function publish5Bytes(topic: string, payload: string | Buffer, qos: 0 | 1 | 2, messageId: number, props: Buffer = properties()): Buffer {
  const id = qos > 0 ? u16(messageId) : Buffer.alloc(0);
  return packet(0x30 | (qos << 1), Buffer.concat([str(topic), id, props, Buffer.from(payload)]));
}

// ── the transport alone ──────────────────────────────────────────────────────────────────────

/**
 * The device transport over real parts in a temp dir: a log, a device registry on SQLite and
 * ingest. `port` is its TCP listener; `broker.handle()` takes other streams. stop() closes all.
 */
export class TransportRig {
  private constructor(
    readonly broker: MqttBroker, readonly registry: DeviceRegistry, readonly log: FileLog,
    private readonly db: ReturnType<typeof openDatabase>, readonly metrics: ReturnType<typeof createMetrics>, readonly port: number,
    readonly gateway: GatewayApi | undefined,
  ) {}

  /** With `withGateway`, the gateway API (GatewayApi) takes the v1/gateway/* topics. */
  static async start(options: Partial<MqttBrokerOptions> & { withGateway?: boolean } = {}, logger: Logger = silentLogger): Promise<TransportRig> {
    const dir = tempDir('sluice-transport-');
    const log = new FileLog(dir, { mode: 'interval', intervalMs: 20 }, logger);
    await log.ensureTopic(TELEMETRY_TOPIC, 2);
    const db = openDatabase(dir);
    const registry = new DeviceRegistry(db, systemClock);
    const metrics = createMetrics(log, log.stats);
    const ingest = new Ingest(log, new RejectedMessages(), metrics, systemClock, logger, 65_536);
    const { withGateway, ...brokerOptions } = options;
    const gateway = withGateway ? new GatewayApi(registry, ingest, metrics, systemClock) : undefined;
    const broker = await startMqttBroker({ registry, ingest, metrics, logger, ...(gateway ? { gateway } : {}), ...brokerOptions });
    await new Promise<void>((resolve) => broker.server.listen(0, '127.0.0.1', resolve));
    const port = (broker.server.address() as net.AddressInfo).port;
    return new TransportRig(broker, registry, log, db, metrics, port, gateway);
  }

  createDevice(name: string, gateway = false): Device {
    return this.registry.create({ name, gateway });
  }

  /** Records in the telemetry topic, over all partitions. */
  async records(): Promise<number> {
    const [topic] = (await this.log.describeTopics()).filter((t) => t.name === TELEMETRY_TOPIC);
    return topic!.partitions.reduce((sum, p) => sum + p.endOffset, 0);
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sampleOf(await this.metrics.registry.metrics(), name, labels);
  }

  async stop(): Promise<void> {
    await this.broker.close();
    await this.log.close();
    this.db.close();
  }
}
