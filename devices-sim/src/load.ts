import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import type { PlannedDevice } from './device-plan.js';
import { LeanMqttConnection } from './lean-mqtt.js';
import { deviceMessages, renderPayload, type DrawnMessage, type FaultOptions, type PayloadForm } from './messages.js';
import { profiles } from './profiles.js';
import type { ProvisionedDevice } from './provision.js';
import { TELEMETRY_TOPIC } from './fleet.js';

/**
 * Load mode: thousands of device connections on the lean publisher, publishing either at a fixed
 * rate (spread round-robin over the connections) or as fast as the server takes them ('max':
 * QoS 1 keeps a window of unacknowledged messages per connection, QoS 0 keeps each socket's
 * buffer full). Payloads are the profiles' messages drawn once into a ring per profile, so a
 * message costs a string concatenation, not a simulation step: the load generator shares the
 * machine with the server it measures.
 */
export interface LoadOptions extends FaultOptions {
  form: PayloadForm;
  mqttUrl: string;
  qos: 0 | 1;
  /** Messages per second per device, or 'max'. */
  rate: number | 'max';
  /** QoS 1: unacknowledged messages per connection; QoS 0 at 'max': messages written per connection per turn. */
  inflight: number;
  seed: number;
  backoff: BackoffOptions;
  /** Connection handshakes in progress at once. */
  connectConcurrency?: number;
}

export interface LoadStats {
  devices: number;
  connected: number;
  /** QoS 1: PUBACKed; QoS 0: written to the socket. */
  sent: number;
  errors: number;
  lastError: string | undefined;
  /** QoS 1 messages in flight on a connection that dropped: maybe stored, maybe not. */
  lost: number;
  /** Fixed rate: messages due on a connection that could not take them (offline, window or buffer full). */
  skipped: number;
  disconnects: number;
  /** QoS 1 send-to-PUBACK times, µs. */
  ackLatencyUs: RecordableHistogram;
}

const RING = 256;
const TICK_MS = 5;

interface LoadDevice {
  plan: PlannedDevice;
  registered: ProvisionedDevice;
  connection: LeanMqttConnection | undefined;
  cursor: number;
  attempt: number;
  reconnectTimer: NodeJS.Timeout | undefined;
}

export class LoadFleet {
  private readonly devices: LoadDevice[];
  private readonly topic = Buffer.from(TELEMETRY_TOPIC);
  private readonly host: string;
  private readonly port: number;
  private readonly rings: DrawnMessage[][];
  private readonly ackLatencyUs = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  private counts = { sent: 0, errors: 0, lost: 0, skipped: 0, disconnects: 0 };
  private lastError: string | undefined;
  private stopping = false;
  private ticker: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  /** Set once every device has had its first connection attempt and publishing began. */
  private started = false;

  private constructor(devices: Array<{ plan: PlannedDevice; registered: ProvisionedDevice }>, private readonly options: LoadOptions) {
    const url = new URL(options.mqttUrl);
    if (url.protocol !== 'mqtt:' && url.protocol !== 'tcp:') throw new Error(`load mode speaks plain MQTT over TCP (mqtt://), not ${url.protocol}`);
    this.host = url.hostname;
    this.port = Number(url.port || 1883);
    this.rings = profiles.map((profile, i) => drawRing({ ...devices[0]!.plan, index: i, profile }, options));
    this.devices = devices.map(({ plan, registered }, i) => ({
      plan, registered, connection: undefined, cursor: (i * 37) % RING, attempt: 0, reconnectTimer: undefined,
    }));
  }

  /** Connects every device (a few at a time), then starts publishing. Devices that fail to connect keep retrying with backoff. */
  static async start(devices: Array<{ plan: PlannedDevice; registered: ProvisionedDevice }>, options: LoadOptions): Promise<LoadFleet> {
    const fleet = new LoadFleet(devices, options);
    await fleet.connectAll(options.connectConcurrency ?? 100);
    fleet.startPublishing();
    return fleet;
  }

  stats(): LoadStats {
    return {
      ...this.counts,
      devices: this.devices.length,
      connected: this.devices.filter((d) => d.connection?.connected).length,
      lastError: this.lastError,
      ackLatencyUs: this.ackLatencyUs,
    };
  }

  /** Stops publishing, waits up to `drainMs` for PUBACKs, and disconnects every device. */
  async stop(drainMs = 5000): Promise<LoadStats> {
    this.stopping = true;
    clearTimeout(this.ticker);
    for (const d of this.devices) clearTimeout(d.reconnectTimer);
    const deadline = Date.now() + drainMs;
    while (this.inflight() > 0 && Date.now() < deadline) await sleep(20);
    const unacknowledged = this.inflight();
    if (unacknowledged > 0) {
      this.counts.lost += unacknowledged;
      this.lastError = `${unacknowledged} messages unacknowledged at stop`;
    }
    await Promise.all(this.devices.map((d) => d.connection?.end()));
    return this.stats();
  }

  private inflight(): number {
    let n = 0;
    for (const d of this.devices) n += d.connection?.connected ? d.connection.inflight : 0;
    return n;
  }

  private async connectAll(concurrency: number): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.devices.length && !this.stopping) await this.connect(this.devices[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.devices.length) }, worker));
  }

  private async connect(device: LoadDevice): Promise<void> {
    try {
      const connection = await LeanMqttConnection.open({
        host: this.host, port: this.port, username: device.registered.token,
        clientId: `${device.registered.name}-load-${process.pid}`, maxInflight: this.options.inflight,
      });
      if (this.stopping) return void connection.destroy();
      device.connection = connection;
      device.attempt = 0;
      connection.onAck = (ms) => {
        this.counts.sent++;
        this.ackLatencyUs.record(Math.max(1, Math.round(ms * 1000)));
        if (this.options.rate === 'max' && connection.inflight <= this.options.inflight / 2) this.fill(device);
      };
      connection.onDrain = () => {
        if (this.options.rate === 'max') this.schedulePump();
      };
      connection.onClose = (err) => {
        if (this.stopping || !err) return;
        this.counts.disconnects++;
        this.counts.lost += connection.inflight;
        this.recordError(err);
        this.scheduleReconnect(device);
      };
      // A device that comes back while the fleet publishes flat out joins in at once.
      if (this.started && this.options.rate === 'max') this.schedulePump();
    } catch (err) {
      this.recordError(err as Error);
      this.scheduleReconnect(device);
    }
  }

  private scheduleReconnect(device: LoadDevice): void {
    if (this.stopping) return;
    device.connection = undefined;
    device.reconnectTimer = setTimeout(() => void this.connect(device), backoffDelay(device.attempt++, this.options.backoff));
  }

  private startPublishing(): void {
    this.started = true;
    if (this.options.rate === 'max') this.schedulePump();
    else this.startTicker(this.options.rate * this.devices.length);
  }

  /** Fixed rate: every tick, the messages due so far go round-robin to the devices that can take them. */
  private startTicker(totalPerSec: number): void {
    const startedAt = performance.now();
    let due = 0;
    let next = 0;
    const batches = new Map<LoadDevice, string[]>();
    const tick = () => {
      if (this.stopping) return;
      const now = Date.now();
      const target = Math.floor(((performance.now() - startedAt) / 1000) * totalPerSec);
      for (; due < target; due++) {
        const device = this.devices[next]!;
        next = next + 1 === this.devices.length ? 0 : next + 1;
        const connection = device.connection;
        const pending = batches.get(device)?.length ?? 0;
        if (!connection?.writable || (this.options.qos === 1 && connection.inflight + pending >= this.options.inflight)) {
          this.counts.skipped++;
          continue;
        }
        const batch = batches.get(device);
        if (batch) batch.push(this.payload(device, now));
        else batches.set(device, [this.payload(device, now)]);
      }
      for (const [device, payloads] of batches) this.send(device, payloads);
      batches.clear();
      this.ticker = setTimeout(tick, TICK_MS);
    };
    this.ticker = setTimeout(tick, TICK_MS);
  }

  /** 'max': top every connection up (QoS 1 window, or one batch on a writable QoS 0 socket), then go again next turn. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.stopping) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (this.stopping) return;
      let anyWritable = false;
      for (const device of this.devices) {
        if (device.connection?.writable) {
          this.fill(device);
          anyWritable = true;
        }
      }
      // QoS 1 refills on PUBACKs; QoS 0 goes round again while sockets take more, else waits for a drain.
      if (this.options.qos === 0 && anyWritable) this.schedulePump();
    });
  }

  private fill(device: LoadDevice): void {
    const connection = device.connection;
    if (!connection?.writable || this.stopping) return;
    const room = this.options.qos === 1 ? this.options.inflight - connection.inflight : this.options.inflight;
    if (room <= 0) return;
    const now = Date.now();
    const payloads = new Array<string>(room);
    for (let i = 0; i < room; i++) payloads[i] = this.payload(device, now);
    this.send(device, payloads);
  }

  private send(device: LoadDevice, payloads: string[]): void {
    device.connection!.publish(this.topic, payloads, this.options.qos);
    if (this.options.qos === 0) this.counts.sent += payloads.length;
  }

  private payload(device: LoadDevice, now: number): string {
    const ring = this.rings[device.plan.index % this.rings.length]!;
    const message = ring[device.cursor]!;
    device.cursor = device.cursor + 1 === RING ? 0 : device.cursor + 1;
    return renderPayload(this.options.form, now, message);
  }

  private recordError(err: Error): void {
    this.counts.errors++;
    this.lastError = err.message;
  }
}

/** RING messages of one profile, drawn a second apart from now, with the run's faults. */
function drawRing(plan: PlannedDevice, options: LoadOptions): DrawnMessage[] {
  const draw = deviceMessages(plan, options.seed, options);
  const start = Date.now();
  return Array.from({ length: RING }, (_, i) => draw(start + i * 1000));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
