import fs from 'node:fs';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { testConfig, type Config } from '../../server/src/config.js';
import type { MqttBrokerLimits } from '../../server/src/ingest/mqtt-broker.js';
import { startSluice, type Sluice } from '../../server/src/sluice.js';
import { sampleOf } from './metrics-text.js';
import { connectMqtt, silentLogger, tempDir, waitFor, type CreatedDevice } from './test-server.js';

/**
 * A real Sluice whose MQTT broker limits a test sets (config.limits.mqtt, as the flags do), with the helpers
 * the hostile-client tests share: raw loopback sockets that send hand-made bytes, metrics, the
 * log's record count and the heap after a full GC. Its temp data dir is removed on stop.
 */
export class LimitedServer {
  private constructor(readonly sluice: Sluice, readonly dataDir: string, readonly config: Config) {}

  static async start(limits: MqttBrokerLimits = {}, overrides: Partial<Config> = {}, logger: Logger = silentLogger): Promise<LimitedServer> {
    const dataDir = tempDir('sluice-mqtt-limits-');
    const config = testConfig({ ...overrides, dataDir });
    config.limits.mqtt = limits;
    return new LimitedServer(await startSluice(config, logger), dataDir, config);
  }

  get mqttPort(): number {
    return this.sluice.ports.mqtt;
  }

  async json<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.sluice.adminToken}`, 'content-type': 'application/json' } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(`http://127.0.0.1:${this.sluice.ports.http}${route}`, init);
    if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${await res.text()}`);
    return (res.status === 204 ? undefined : await res.json()) as T;
  }

  createDevice(name: string): Promise<CreatedDevice> {
    return this.json<CreatedDevice>('POST', '/api/devices', { name });
  }

  connectDevice(token: string, options: IClientOptions = {}): Promise<MqttClient> {
    return connectMqtt(`mqtt://127.0.0.1:${this.mqttPort}`, { username: token, ...options });
  }

  /** One sample of a metric from /metrics (0 when absent). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.sluice.ports.http}/metrics`);
    return sampleOf(await res.text(), name, labels);
  }

  /** Records in the telemetry topic, over all partitions. */
  async telemetryRecords(): Promise<number> {
    const log = await this.json<{ topics: { name: string; partitions: { endOffset: number }[] }[] }>('GET', '/api/log');
    return log.topics.find((t) => t.name === 'telemetry')!.partitions.reduce((s, p) => s + p.endOffset, 0);
  }

  /** The device's latest values as SQLite has them, once storage has caught up. */
  async storedLatest(device: CreatedDevice): Promise<Record<string, { value: unknown }>> {
    await this.sluice.storageCaughtUp();
    return this.json('GET', `/api/devices/${device.id}/telemetry/latest`);
  }

  async stop(): Promise<void> {
    try {
      await this.sluice.stop();
    } finally {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

// ── hand-made MQTT 3.1.1 packets ─────────────────────────────────────────────────────────────

/** A UTF-8 string with its 2-byte length (MQTT 3.1.1 §1.5.3). */
export const mqttString = (s: string): Buffer => {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

/** The remaining length as MQTT encodes it (§2.2.3): 7 bits a byte, high bit = more. */
export function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

export const packet = (firstByte: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);

export function connectPacket(token: string, clientId: string, clean = true, keepalive = 60): Buffer {
  const flags = 0x80 | (clean ? 0x02 : 0); // user name, clean session
  return packet(0x10, Buffer.concat([mqttString('MQTT'), Buffer.from([4, flags, keepalive >> 8, keepalive & 0xff]), mqttString(clientId), mqttString(token)]));
}

export function publishPacket(topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 0, messageId = 1): Buffer {
  const id = qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0);
  return packet(0x30 | (qos << 1), Buffer.concat([mqttString(topic), id, Buffer.from(payload)]));
}

export const pubrelPacket = (messageId: number): Buffer => Buffer.from([0x62, 2, messageId >> 8, messageId & 0xff]);

/** A raw TCP connection to the broker, from `localAddress` (any 127.x.y.z is this machine). */
export class RawClient {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  closed = false;
  readonly ready: Promise<void>;

  constructor(port: number, localAddress = '127.0.0.1') {
    this.socket = net.connect({ port, host: '127.0.0.1', localAddress });
    this.socket.on('data', (d: Buffer) => { this.received = Buffer.concat([this.received, d]); });
    this.socket.on('error', () => {});
    this.socket.on('close', () => { this.closed = true; });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('close', () => reject(new Error('closed before connecting')));
    });
  }

  /** Writes, and resolves once the bytes are handed to the kernel (false: the connection is gone). */
  write(bytes: Buffer): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => this.socket.write(bytes, (err) => resolve(!err)));
  }

  waitClosed(timeoutMs = 5000): Promise<true> {
    return waitFor('the server to close the connection', () => this.closed || undefined, timeoutMs);
  }

  /** Waits for `bytes` to be the next received, and consumes them. */
  async expect(bytes: number[], timeoutMs = 5000): Promise<void> {
    await waitFor(`${bytes.length} bytes from the server`, () => this.received.length >= bytes.length || undefined, timeoutMs);
    const got = [...this.received.subarray(0, bytes.length)];
    this.received = this.received.subarray(bytes.length);
    if (got.join() !== bytes.join()) throw new Error(`expected [${bytes.join(', ')}], got [${got.join(', ')}]`);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ── memory ───────────────────────────────────────────────────────────────────────────────────

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** What this process holds after two full collections: heap plus Buffers' memory outside it. */
export function retainedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export const MiB = 1024 * 1024;
