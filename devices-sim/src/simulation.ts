import { planDevices } from './device-plan.js';
import { Fleet, type FleetStats } from './fleet.js';
import type { SimOptions } from './options.js';
import { provisionDevices } from './provision.js';

export interface SimulationSummary {
  devices: number;
  created: number;
  reused: number;
  sent: number;
  errors: number;
  skipped: number;
  disconnects: number;
  durationSec: number;
}

export interface RunControl {
  /** Aborting stops the run cleanly (the CLI aborts on SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Progress and status lines; silent by default. */
  report?: (line: string) => void;
  progressIntervalMs?: number;
}

/**
 * One simulator run: provision the devices, connect and publish until `durationSec` is over or
 * `signal` aborts, then stop every client and sum up. Throws ProvisionError when the devices
 * cannot be set up.
 */
export async function runSimulation(options: SimOptions, control: RunControl = {}): Promise<SimulationSummary> {
  const { signal, report = () => {}, progressIntervalMs = 5000 } = control;
  const plan = planDevices(options.prefix, options.devices);
  const registered = await provisionDevices({ url: options.url, adminToken: options.adminToken }, plan);
  const created = registered.filter((d) => d.created).length;
  report(`devices: ${created} created, ${registered.length - created} reused; publishing to ${options.mqttUrl}`
    + ` at ${options.rate}/s each, QoS ${options.qos}, seed ${options.seed}`);

  const startedAt = Date.now();
  const fleet = Fleet.start(plan.map((p, i) => ({ plan: p, registered: registered[i]! })), {
    mqttUrl: options.mqttUrl, rate: options.rate, qos: options.qos, seed: options.seed,
    form: options.form, late: options.late, malformed: options.malformed, anomalies: options.anomalies,
  });

  let last = { at: startedAt, sent: 0, errors: 0 };
  const progress = setInterval(() => {
    const stats = fleet.stats();
    const now = Date.now();
    report(progressLine(stats, (stats.sent - last.sent) / ((now - last.at) / 1000), stats.errors > last.errors));
    last = { at: now, sent: stats.sent, errors: stats.errors };
  }, progressIntervalMs);

  await untilStopped(options.durationSec, signal);
  clearInterval(progress);
  const stats = await fleet.stop();
  return {
    devices: registered.length, created, reused: registered.length - created,
    sent: stats.sent, errors: stats.errors, skipped: stats.skipped, disconnects: stats.disconnects,
    durationSec: (Date.now() - startedAt) / 1000,
  };
}

export function summaryLine(s: SimulationSummary): string {
  const extra = [s.skipped > 0 ? `, ${s.skipped} skipped while offline` : '', s.disconnects > 0 ? `, ${s.disconnects} disconnects` : ''].join('');
  return `done: ${s.sent} sent, ${s.errors} errors${extra}, in ${s.durationSec.toFixed(1)} s from ${s.devices} devices`;
}

function progressLine(stats: FleetStats, sentPerSec: number, newErrors: boolean): string {
  const lastError = newErrors && stats.lastError ? ` (last: ${stats.lastError})` : '';
  return `sent/s ${sentPerSec.toFixed(1)}  errors ${stats.errors}${lastError}  connected ${stats.connected}/${stats.devices}`;
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
