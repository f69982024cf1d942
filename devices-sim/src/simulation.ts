import { DEFAULT_BACKOFF } from './backoff.js';
import { planDevices, type PlannedDevice } from './device-plan.js';
import { Fleet } from './fleet.js';
import { LoadFleet } from './load.js';
import type { SimOptions } from './options.js';
import { ProvisionError, provisionDevices, type ProvisionedDevice } from './provision.js';
import { readTokensFile, writeTokensFile } from './tokens-file.js';

export interface SimulationSummary {
  mode: 'fleet' | 'load';
  devices: number;
  created: number;
  reused: number;
  sent: number;
  errors: number;
  skipped: number;
  disconnects: number;
  /** Load mode, QoS 1: messages in flight on a dropped connection or unacknowledged at stop. */
  lost: number;
  durationSec: number;
  /** sent / durationSec. */
  sentPerSec: number;
  /** Load mode, QoS 1: send-to-PUBACK times, ms. */
  ackLatencyMs?: { p50: number; p99: number; max: number };
}

export interface RunControl {
  /** Aborting stops the run cleanly (the CLI aborts on SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Progress and status lines; silent by default. */
  report?: (line: string) => void;
  progressIntervalMs?: number;
  /** Sees each payload a realistic fleet publishes (tests). */
  onPublish?: (deviceIndex: number, payload: string) => void;
  /** Where a realistic fleet's timestamps come from (tests). */
  now?: () => number;
}

interface RunningFleet {
  stats(): { sent: number; errors: number; connected: number; devices: number; lastError: string | undefined };
}

/**
 * One simulator run: set up the devices (tokens file, else REST API), connect and publish until
 * `durationSec` is over or `signal` aborts, then stop every connection and sum up. Throws
 * ProvisionError when the devices cannot be set up.
 */
export async function runSimulation(options: SimOptions, control: RunControl = {}): Promise<SimulationSummary> {
  const { signal, report = () => {}, progressIntervalMs = 5000 } = control;
  const plan = planDevices(options.prefix, options.devices);
  const registered = await setUpDevices(options, plan);
  const created = registered.filter((d) => d.created).length;
  const devices = plan.map((p, i) => ({ plan: p, registered: registered[i]! }));
  const backoff = { ...DEFAULT_BACKOFF, maxMs: Math.max(DEFAULT_BACKOFF.minMs, options.reconnectMaxMs) };
  report(`devices: ${created} created, ${registered.length - created} reused; ${options.load ? 'load mode, ' : ''}publishing to ${options.mqttUrl}`
    + ` at ${options.rate === 'max' ? 'the highest rate' : `${options.rate}/s each`}, QoS ${options.qos}, seed ${options.seed}`);

  if (options.load) {
    const startedAt = Date.now();
    const fleet = await LoadFleet.start(devices, { ...options, backoff });
    report(`connected ${fleet.stats().connected}/${devices.length} in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    const publishingFrom = Date.now();
    await publishUntilStopped(fleet, options, signal, report, progressIntervalMs);
    const stats = await fleet.stop();
    const durationSec = (Date.now() - publishingFrom) / 1000;
    const h = stats.ackLatencyUs;
    return {
      mode: 'load', devices: devices.length, created, reused: devices.length - created,
      sent: stats.sent, errors: stats.errors, skipped: stats.skipped, disconnects: stats.disconnects, lost: stats.lost,
      durationSec, sentPerSec: stats.sent / durationSec,
      ...(options.qos === 1 && h.count > 0 ? { ackLatencyMs: { p50: h.percentile(50) / 1000, p99: h.percentile(99) / 1000, max: h.max / 1000 } } : {}),
    };
  }

  if (options.rate === 'max') throw new ProvisionError('--rate max needs --load');
  const startedAt = Date.now();
  const fleet = Fleet.start(devices, {
    mqttUrl: options.mqttUrl, rate: options.rate, qos: options.qos, seed: options.seed, backoff,
    form: options.form, late: options.late, malformed: options.malformed, anomalies: options.anomalies,
    ...(control.now ? { now: control.now } : {}), ...(control.onPublish ? { onPublish: control.onPublish } : {}),
  });
  await publishUntilStopped(fleet, options, signal, report, progressIntervalMs);
  const stats = await fleet.stop();
  const durationSec = (Date.now() - startedAt) / 1000;
  return {
    mode: 'fleet', devices: devices.length, created, reused: devices.length - created,
    sent: stats.sent, errors: stats.errors, skipped: stats.skipped, disconnects: stats.disconnects, lost: 0,
    durationSec, sentPerSec: stats.sent / durationSec,
  };
}

/** The devices of the plan, in its order: from the tokens file where it has them, else created (or found) over REST. */
async function setUpDevices(options: SimOptions, plan: PlannedDevice[]): Promise<ProvisionedDevice[]> {
  const known = options.tokensFile === undefined ? new Map<string, ProvisionedDevice>() : readTokensFile(options.tokensFile) ?? new Map();
  const missing = plan.filter((p) => !known.has(p.name));
  if (missing.length > 0) {
    if (options.adminToken === undefined) {
      throw new ProvisionError(`${missing.length} devices are not in ${options.tokensFile} and there is no admin token to create them: pass --admin-token or set ADMIN_TOKEN`);
    }
    const provisioned = await provisionDevices({ url: options.url, adminToken: options.adminToken }, missing);
    for (const device of provisioned) known.set(device.name, device);
    if (options.tokensFile !== undefined) writeTokensFile(options.tokensFile, [...known.values()]);
  }
  return plan.map((p) => known.get(p.name)!);
}

export function summaryLine(s: SimulationSummary): string {
  const extra = [
    s.skipped > 0 ? `, ${s.skipped} skipped (device offline or busy)` : '',
    s.disconnects > 0 ? `, ${s.disconnects} disconnects` : '',
    s.lost > 0 ? `, ${s.lost} lost in flight` : '',
  ].join('');
  const latency = s.ackLatencyMs ? `; PUBACK p50 ${s.ackLatencyMs.p50.toFixed(2)} ms, p99 ${s.ackLatencyMs.p99.toFixed(2)} ms` : '';
  return `done: ${s.sent} sent (${Math.round(s.sentPerSec)}/s), ${s.errors} errors${extra}, in ${s.durationSec.toFixed(1)} s from ${s.devices} devices${latency}`;
}

async function publishUntilStopped(fleet: RunningFleet, options: SimOptions, signal: AbortSignal | undefined,
  report: (line: string) => void, progressIntervalMs: number): Promise<void> {
  let last = { at: Date.now(), sent: 0, errors: 0 };
  const progress = setInterval(() => {
    const stats = fleet.stats();
    const now = Date.now();
    const sentPerSec = (stats.sent - last.sent) / ((now - last.at) / 1000);
    const lastError = stats.errors > last.errors && stats.lastError ? ` (last: ${stats.lastError})` : '';
    report(`sent/s ${sentPerSec.toFixed(1)}  errors ${stats.errors}${lastError}  connected ${stats.connected}/${stats.devices}`);
    last = { at: now, sent: stats.sent, errors: stats.errors };
  }, progressIntervalMs);
  await untilStopped(options.durationSec, signal);
  clearInterval(progress);
}

function untilStopped(durationSec: number | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = durationSec === undefined ? undefined : setTimeout(done, durationSec * 1000);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
