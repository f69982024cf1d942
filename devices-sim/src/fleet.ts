import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { PlannedDevice } from './device-plan.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { deviceMessages, JITTER_STREAM, renderPayload } from './messages.js';
import type { ProvisionedDevice } from './provision.js';
import { deriveSeed, mulberry32 } from './random.js';

export const TELEMETRY_TOPIC = 'v1/devices/me/telemetry';

export interface FleetOptions {
  mqttUrl: string;
  /** Messages per second per device. */
  rate: number;
  qos: 0 | 1;
  seed: number;
  form?: 'ts' | 'flat' | 'array';
  late?: number;
  malformed?: number;
  anomalies?: number;
  /** Waits between reconnection attempts; 0.5 s doubling to 30 s by default. */
  backoff?: BackoffOptions;
  /** Where message timestamps come from; Date.now unless a test drives it. */
  now?: () => number;
  /** Sees each payload as it is published (tests). */
  onPublish?: (deviceIndex: number, payload: string) => void;
}

export interface FleetStats {
  devices: number;
  connected: number;
  /** Messages acknowledged (QoS 1: PUBACK received; QoS 0: written to the socket). */
  sent: number;
  /** Client errors (refused or failed connections, failed publishes) and messages unacknowledged at stop. */
  errors: number;
  /** Messages not sent because the device was offline at its turn. */
  skipped: number;
  /** Connections lost while running; each device reconnects with backoff. */
  disconnects: number;
  /** Connections made again after a loss. */
  reconnects: number;
  lastError: string | undefined;
}

/** Each gap between messages is the nominal interval ±20%. */
const JITTER = 0.2;

interface SimulatedDevice {
  client: MqttClient;
  timer: NodeJS.Timeout | undefined;
  inFlight: number;
}

/**
 * The running devices: one MQTT client per device (username = its token), each publishing
 * `{"ts", "values"}` at the rate with jitter. `stop()` waits for messages in flight, then
 * disconnects every client.
 */
export class Fleet {
  private readonly devices: SimulatedDevice[] = [];
  private counts = { sent: 0, errors: 0, skipped: 0, disconnects: 0, reconnects: 0 };
  private lastError: string | undefined;
  private stopping: Promise<FleetStats> | undefined;
  /** Set once stop() has counted what is left in flight: later callbacks are not counted twice. */
  private tallied = false;

  private constructor(private readonly options: FleetOptions) {}

  static start(devices: Array<{ plan: PlannedDevice; registered: ProvisionedDevice }>, options: FleetOptions): Fleet {
    const fleet = new Fleet(options);
    for (const { plan, registered } of devices) fleet.devices.push(fleet.startDevice(plan, registered));
    return fleet;
  }

  stats(): FleetStats {
    return {
      ...this.counts,
      devices: this.devices.length,
      connected: this.devices.filter((d) => d.client.connected).length,
      lastError: this.lastError,
    };
  }

  /** Stops publishing, waits up to `drainMs` for acknowledgements, and disconnects every client. */
  stop(drainMs = 3000): Promise<FleetStats> {
    this.stopping ??= (async () => {
      for (const d of this.devices) clearTimeout(d.timer);
      const deadline = Date.now() + drainMs;
      while (this.inFlight() > 0 && Date.now() < deadline) await sleep(20);
      const unacknowledged = this.inFlight();
      this.tallied = true;
      await Promise.all(this.devices.map((d) => endClient(d.client, Math.max(0, deadline - Date.now()))));
      this.counts.errors += unacknowledged;
      if (unacknowledged > 0) this.lastError = `${unacknowledged} messages unacknowledged at stop`;
      return this.stats();
    })();
    return this.stopping;
  }

  private inFlight(): number {
    return this.devices.reduce((n, d) => n + d.inFlight, 0);
  }

  private startDevice(plan: PlannedDevice, registered: ProvisionedDevice): SimulatedDevice {
    const { rate, qos, seed } = this.options;
    const now = this.options.now ?? Date.now;
    const { late = 0, malformed = 0, anomalies = 0 } = this.options;
    const draw = deviceMessages(plan, seed, { late, malformed, anomalies });
    const jitter = mulberry32(deriveSeed(seed, plan.index, JITTER_STREAM));
    const form = this.options.form ?? 'ts';
    const backoff = this.options.backoff ?? DEFAULT_BACKOFF;
    const intervalMs = 1000 / rate;

    const client = mqtt.connect(this.options.mqttUrl, {
      username: registered.token,
      // Unique per run, so two simulators with the same prefix do not take over each other's sessions.
      clientId: `${registered.name}-${randomBytes(3).toString('hex')}`,
      clean: true,
      reconnectPeriod: backoffDelay(0, backoff),
      connectTimeout: 5000,
    });
    const device: SimulatedDevice = { client, timer: undefined, inFlight: 0 };

    // Backoff: mqtt.js waits `options.reconnectPeriod` before each attempt, read when the previous
    // attempt fails, so each attempt sets the wait that follows it if it fails too.
    let attempt = 0;
    let lost = false;
    client.on('offline', () => {
      client.options.reconnectPeriod = backoffDelay(0, backoff);
      if (!this.stopping) {
        this.counts.disconnects++;
        lost = true;
      }
    });
    client.on('reconnect', () => {
      client.options.reconnectPeriod = backoffDelay(++attempt, backoff);
    });
    client.on('connect', () => {
      attempt = 0;
      if (lost && !this.stopping) this.counts.reconnects++;
      lost = false;
    });

    const tick = () => {
      if (this.stopping) return;
      if (client.connected) publish(now());
      else this.counts.skipped++;
      device.timer = setTimeout(tick, intervalMs * (1 - JITTER + 2 * JITTER * jitter()));
    };
    const publish = (now: number) => {
      const payload = renderPayload(form, now, draw(now));
      this.options.onPublish?.(plan.index, payload);
      device.inFlight++;
      client.publish(TELEMETRY_TOPIC, payload, { qos }, (err) => {
        device.inFlight--;
        if (this.tallied) return;
        if (err) this.recordError(err);
        else this.counts.sent++;
      });
    };

    // The first message of each device comes at a random point of its first interval, so the
    // fleet does not publish in lockstep.
    client.once('connect', () => {
      if (!this.stopping) device.timer = setTimeout(tick, intervalMs * jitter());
    });
    client.on('error', (err) => {
      if (!this.tallied) this.recordError(err);
    });
    return device;
  }

  private recordError(err: Error): void {
    this.counts.errors++;
    this.lastError = err.message;
  }
}

/** Sends DISCONNECT when connected; gives up on a stuck socket after `timeoutMs`. */
async function endClient(client: MqttClient, timeoutMs: number): Promise<void> {
  if (!client.connected) {
    await client.endAsync(true);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(timeoutMs, 500))));
  const outcome = await Promise.race([client.endAsync(false).then(() => 'ended' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') client.stream?.destroy();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
