import { simOptions } from '../../devices-sim/src/options.js';
import { runSimulation, type SimulationSummary } from '../../devices-sim/src/simulation.js';
import type { Logger } from './logger.js';

export interface DemoFleet {
  /** Stops every simulated device; resolves with what the run sent. */
  stop(): Promise<SimulationSummary | undefined>;
}

export const DEMO_DEVICES = 50;

/**
 * `npm run demo`: the device simulator, in-process, feeding a small fleet into this Sluice so the
 * dashboard is alive from the first second. Devices are named `demo-1..demo-50` and reused across
 * restarts on the same data dir.
 */
export function startDemoFleet(ports: { mqtt: number; http: number }, adminToken: string, logger: Logger,
  options: { devices?: number; rate?: number } = {}): DemoFleet {
  const abort = new AbortController();
  const run = runSimulation(simOptions({
    url: `http://127.0.0.1:${ports.http}`,
    mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`,
    adminToken,
    devices: options.devices ?? DEMO_DEVICES,
    rate: options.rate ?? 1,
    qos: 1,
    seed: 1,
    prefix: 'demo-',
    late: 0.02,
    malformed: 0.005,
    anomalies: 0.01,
  }), { signal: abort.signal, report: (line) => logger.info(`demo: ${line}`), progressIntervalMs: 30_000 });
  const done = run.then((summary) => summary, (err: unknown) => {
    logger.error({ err }, 'demo: the simulator stopped with an error');
    return undefined;
  });
  return {
    stop() {
      abort.abort();
      return done;
    },
  };
}
