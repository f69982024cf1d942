import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { testConfig } from '../server/src/config.js';
import { startSluice, type Sluice } from '../server/src/sluice.js';
import net from 'node:net';
import { backoffDelay } from '../devices-sim/src/backoff.js';
import { planDevices } from '../devices-sim/src/device-plan.js';
import { Fleet } from '../devices-sim/src/fleet.js';
import { LoadFleet } from '../devices-sim/src/load.js';
import { simOptions } from '../devices-sim/src/options.js';
import { runSimulation } from '../devices-sim/src/simulation.js';

type Series = Record<string, Array<{ ts: number; value: unknown }>>;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('the simulator across a broker restart', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-sim-restart-'));
  let sluice: Sluice | undefined;
  afterAll(async () => {
    await sluice?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it.each([['a realistic fleet', false], ['load mode', true]])('%s reconnects with backoff and goes on publishing', async (_name, load) => {
    sluice = await startSluice(testConfig({ dataDir }), pino({ level: 'silent' }));
    const ports = sluice.ports;
    const lines: string[] = [];
    const stop = new AbortController();
    const run = runSimulation(simOptions({
      url: `http://127.0.0.1:${ports.http}`, mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`, adminToken: sluice.adminToken,
      prefix: load ? 'back-load-' : 'back-', devices: 4, rate: 20, qos: 1, load, reconnectMaxMs: 1000,
    }), { signal: stop.signal, report: (line) => lines.push(line), progressIntervalMs: 100 });

    await expect.poll(() => lines.some((l) => l.includes('connected 4/4')), { timeout: 5000 }).toBe(true);
    await sleep(300);
    await sluice.stop();
    sluice = undefined;
    lines.length = 0;
    await expect.poll(() => lines.some((l) => l.includes('connected 0/4')), { timeout: 5000 }).toBe(true);
    await sleep(1500); // a few failed attempts while the broker is away
    const restartedAt = Date.now();
    sluice = await startSluice(testConfig({ dataDir, mqttPort: ports.mqtt, httpPort: ports.http }), pino({ level: 'silent' }));
    // With waits capped at 1 s (plus jitter), every device is back within a couple of seconds.
    await expect.poll(() => lines.some((l) => l.includes('connected 4/4')), { timeout: 5000 }).toBe(true);
    await sleep(500);
    stop.abort();
    const summary = await run;
    await sluice.storageCaughtUp();

    expect(summary.disconnects).toBeGreaterThanOrEqual(4);
    const devices = await (await fetch(`http://127.0.0.1:${ports.http}/api/devices`, { headers: { authorization: `Bearer ${sluice.adminToken}` } })).json() as Array<{ id: string; name: string; type: string }>;
    const ours = devices.filter((d) => d.name.startsWith(load ? 'back-load-' : 'back-') && (load || !d.name.startsWith('back-load-')));
    expect(ours).toHaveLength(4);
    for (const d of ours) {
      const key = d.type === 'machine' ? 'rpm' : d.type === 'tracker' ? 'battery' : 'temperature';
      const res = await fetch(`http://127.0.0.1:${ports.http}/api/devices/${d.id}/telemetry?keys=${key}&from=${restartedAt}&limit=1000`, { headers: { authorization: `Bearer ${sluice.adminToken}` } });
      const points = ((await res.json()) as Series)[key] ?? [];
      expect(points.length, `${d.name} published after the restart`).toBeGreaterThan(0);
    }
    await sluice.stop();
    sluice = undefined;
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
    const fleet = load
      ? await LoadFleet.start([device], { mqttUrl, qos: 1, rate: 1, inflight: 1, seed: 1, backoff, form: 'ts', late: 0, malformed: 0, anomalies: 0 })
      : Fleet.start([device], { mqttUrl, qos: 1, rate: 1, seed: 1, backoff });
    await sleep(2000);
    await fleet.stop(0);
    await server.close();
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
