import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { backoffDelay } from '../devices-sim/src/backoff.js';
import { planDevices } from '../devices-sim/src/device-plan.js';
import { Fleet } from '../devices-sim/src/fleet.js';
import { LoadFleet } from '../devices-sim/src/load.js';
import { simOptions } from '../devices-sim/src/options.js';
import { runSimulation } from '../devices-sim/src/simulation.js';
import { TestServer, tempDir, waitFor } from './support/test-server.js';

type Series = Record<string, Array<{ ts: number; value: unknown }>>;

describe('the simulator across a broker restart', () => {
  const dataDir = tempDir('sluice-sim-restart-');
  let server: TestServer | undefined;
  afterAll(async () => { await server?.stop(); });

  it.each([['a realistic fleet', false], ['load mode', true]])('%s reconnects with backoff and goes on publishing', async (_name, load) => {
    server = await TestServer.start({ dataDir });
    const ports = server.sluice.ports;
    const prefix = load ? 'back-load-' : 'back-';
    const lines: string[] = [];
    const stop = new AbortController();
    const run = runSimulation(simOptions({
      url: server.baseUrl, mqttUrl: server.mqttUrl, adminToken: server.adminToken,
      prefix, devices: 4, rate: 20, qos: 1, load, reconnectMaxMs: 1000,
    }), { signal: stop.signal, report: (line) => lines.push(line), progressIntervalMs: 100 });
    try {
      await waitFor('4/4 connected', () => lines.some((l) => l.includes('connected 4/4')), 5000);
      const ours = async (on: TestServer) => (await on.json<Array<{ id: string; name: string; type: string }>>('GET', '/api/devices'))
        .filter((d) => d.name.startsWith(prefix) && (load || !d.name.startsWith('back-load-')));
      const keyOf = (d: { type: string }) => (d.type === 'machine' ? 'rpm' : d.type === 'tracker' ? 'battery' : 'temperature');
      /** Whether every device of this run has a point stored at or after `from`. */
      const allStoredSince = async (on: TestServer, from: number) => {
        const devices = await ours(on);
        if (devices.length !== 4) return false;
        for (const d of devices) {
          const series = await on.json<Series>('GET', `/api/devices/${d.id}/telemetry?keys=${keyOf(d)}&from=${from}&limit=1000`);
          if ((series[keyOf(d)] ?? []).length === 0) return false;
        }
        return true;
      };
      const first = server;
      await waitFor('every device publishing before the broker goes away', async () => { await first.sluice.storageCaughtUp(); return allStoredSince(first, 0); }, 5000);
      await server.stop();
      server = undefined;
      lines.length = 0;
      const errorsIn = (line: string | undefined) => Number(/errors (\d+)/.exec(line ?? '')?.[1] ?? NaN);
      const down = await waitFor('connected 0/4', () => lines.find((l) => l.includes('connected 0/4')), 5000);
      // Two failed attempts a device while the broker is away, so the reconnect below comes after backoff.
      await waitFor('8 failed connection attempts', () => errorsIn(lines.at(-1)) >= errorsIn(down) + 8, 5000);
      const restartedAt = Date.now();
      server = await TestServer.start({ dataDir, mqttPort: ports.mqtt, httpPort: ports.http });
      // With waits capped at 1 s (plus jitter), every device is back within a couple of seconds.
      await waitFor('4/4 connected again', () => lines.some((l) => l.includes('connected 4/4')), 5000);
      const second = server;
      await waitFor('every device publishing after the restart', async () => { await second.sluice.storageCaughtUp(); return allStoredSince(second, restartedAt); }, 5000);
      stop.abort();
      const summary = await run;
      expect(summary.disconnects).toBeGreaterThanOrEqual(4);
      expect(await ours(server)).toHaveLength(4);
    } finally {
      stop.abort();
      await run.catch(() => {});
    }
    await server.stop();
    server = undefined;
  }, 30_000);
});

describe('reconnection backoff', () => {
  /** A TCP server that hangs up on every connection at once, noting when each attempt came. */
  const hangUpServer = async () => {
    const attempts: number[] = [];
    const server = net.createServer((socket) => {
      attempts.push(performance.now());
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { attempts, port: (server.address() as net.AddressInfo).port, close: () => new Promise((resolve) => server.close(resolve)) };
  };
  const device = { plan: planDevices('hang-', 1)[0]!, registered: { id: 'x', name: 'hang-1', token: 'x', created: false } };
  const backoff = { minMs: 40, maxMs: 320 };

  /** Waits double (from 20–40 ms) up to the cap (160–320 ms): not a fixed period. */
  const expectBackoff = (attempts: number[]) => {
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(5);
    expect(gaps[0]!).toBeLessThan(120);
    expect(Math.max(...gaps.slice(4))).toBeGreaterThanOrEqual(150);
    expect(Math.max(...gaps)).toBeLessThan(320 + 150);
  };

  it.each([['a realistic fleet (mqtt.js)', false], ['load mode', true]])('%s waits longer after each failed attempt, up to the cap', async (_name, load) => {
    const server = await hangUpServer();
    const mqttUrl = `mqtt://127.0.0.1:${server.port}`;
    try {
      const fleet = load
        ? await LoadFleet.start([device], { mqttUrl, qos: 1, rate: 1, inflight: 1, seed: 1, backoff, form: 'ts', late: 0, malformed: 0, anomalies: 0 })
        : Fleet.start([device], { mqttUrl, qos: 1, rate: 1, seed: 1, backoff });
      try {
        // 8 attempts: the waits after the first four have reached the cap (at most 40 + 80 + 160 + 320 ms, then 320 ms each).
        await waitFor('8 connection attempts', () => server.attempts.length >= 8, 5000);
      } finally {
        await fleet.stop(0);
      }
    } finally {
      await server.close();
    }
    expectBackoff(server.attempts);
  });

  const options = { minMs: 500, maxMs: 30_000 };

  it('doubles from the first wait up to the longest, each wait drawn from the upper half', () => {
    expect([0, 1, 2, 3, 6, 7, 20].map((a) => backoffDelay(a, options, () => 0))).toEqual([250, 500, 1000, 2000, 15_000, 15_000, 15_000]);
    expect([0, 1, 2, 3, 6, 7, 20].map((a) => backoffDelay(a, options, () => 0.999_999))).toEqual([500, 1000, 2000, 4000, 30_000, 30_000, 30_000]);
  });

  it('spreads a fleet cut off at once over the interval instead of bringing it back at once', () => {
    const waits = Array.from({ length: 1000 }, () => backoffDelay(4, options));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...waits)).toBeLessThanOrEqual(8000);
    expect(new Set(waits).size).toBeGreaterThan(500);
  });
});
