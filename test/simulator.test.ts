import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../server/src/config.js';
import { startSluice, type Sluice } from '../server/src/sluice.js';
import { planDevices } from '../devices-sim/src/device-plan.js';
import { OptionError, parseSimArgs, simOptions, type SimOptions } from '../devices-sim/src/options.js';
import { machine, profileForIndex, roomSensor, tracker } from '../devices-sim/src/profiles.js';
import { deriveSeed, mulberry32 } from '../devices-sim/src/random.js';
import { runSimulation, type SimulationSummary } from '../devices-sim/src/simulation.js';
import { tempDir } from './support/test-server.js';

const repoRoot = path.resolve(import.meta.dirname, '..');

interface DeviceJson { id: string; name: string; type: string; attributes: Record<string, unknown> }
type Latest = Record<string, { ts: number; value: unknown }>;
type Series = Record<string, Array<{ ts: number; value: unknown }>>;

describe('the device simulator against a real Sluice', () => {
  let sluice: Sluice;
  let dataDir: string;
  let options: SimOptions;
  let summary: SimulationSummary;

  const api = async <T>(route: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${sluice.ports.http}${route}`, { headers: { authorization: `Bearer ${sluice.adminToken}` } });
    if (!res.ok) throw new Error(`GET ${route} → ${res.status} ${await res.text()}`);
    return await res.json() as T;
  };

  const rejectedCount = async () => {
    const text = await (await fetch(`http://127.0.0.1:${sluice.ports.http}/metrics`)).text();
    return [...text.matchAll(/^sluice_messages_rejected_total\{[^}]*reason="not_json"[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
  };

  beforeAll(async () => {
    dataDir = tempDir('sluice-sim-test-');
    sluice = await startSluice(testConfig({ dataDir }), pino({ level: 'silent' }));
    options = simOptions({
      url: `http://127.0.0.1:${sluice.ports.http}`, mqttUrl: `mqtt://127.0.0.1:${sluice.ports.mqtt}`,
      adminToken: sluice.adminToken, devices: 3, rate: 5, qos: 1, seed: 7, prefix: 'simtest-',
    });
    // A run of a given length: that it publishes for about 2 s is what the tests below count on.
    summary = await runSimulation({ ...options, durationSec: 2 });
    await sluice.storageCaughtUp();
  });

  afterAll(async () => { await sluice?.stop(); });

  it('creates its devices with their profile as type and site/floor attributes', async () => {
    const devices = await api<DeviceJson[]>('/api/devices');
    const ours = devices.filter((d) => d.name.startsWith('simtest-')).sort((a, b) => a.name.localeCompare(b.name));
    expect(ours.map((d) => [d.name, d.type])).toEqual([
      ['simtest-1', 'room-sensor'], ['simtest-2', 'machine'], ['simtest-3', 'tracker'],
    ]);
    for (const d of ours) expect(Object.keys(d.attributes).sort()).toEqual(['floor', 'site']);
    expect(summary).toMatchObject({ devices: 3, created: 3, reused: 0, errors: 0 });
  });

  it('publishes telemetry that Sluice stores, with the keys of each profile', async () => {
    const devices = await api<DeviceJson[]>('/api/devices');
    let stored = 0;
    for (const planned of planDevices('simtest-', 3)) {
      const device = devices.find((d) => d.name === planned.name)!;
      const latest = await api<Latest>(`/api/devices/${device.id}/telemetry/latest`);
      expect(Object.keys(latest).sort()).toEqual([...planned.profile.keys].sort());
      for (const key of planned.profile.keys) expect(typeof latest[key]!.value).toBe('number');
      const series = await api<Series>(`/api/devices/${device.id}/telemetry?keys=${planned.profile.keys[0]}`);
      const points = series[planned.profile.keys[0]!]!;
      // 5 messages a second for about 2 s, less the first interval's stagger.
      expect(points.length).toBeGreaterThanOrEqual(5);
      stored += points.length;
    }
    // QoS 1: a message counts as sent once PUBACKed, which Sluice does only once it is durable.
    expect(stored).toBe(summary.sent);
  });

  it('sends the fractions of late and malformed messages it is asked for, in the payload form asked for', async () => {
    const rejectedBefore = await rejectedCount();
    const startedAt = Date.now();
    const run = await runSimulation({ ...options, prefix: 'faulty-', devices: 5, rate: 40, form: 'array', late: 0.3, malformed: 0.2, durationSec: 2 });
    await sluice.storageCaughtUp();
    const rejected = (await rejectedCount()) - rejectedBefore;
    expect(run.sent).toBeGreaterThan(200);
    // Every malformed message is rejected by Sluice, with its reason counted.
    expect(rejected / run.sent).toBeGreaterThan(0.1);
    expect(rejected / run.sent).toBeLessThan(0.3);
    // Late ones are stored at their time, 1–60 s in the past: mostly before the run even began.
    const devices = await api<DeviceJson[]>('/api/devices');
    let late = 0;
    let total = 0;
    for (const d of devices.filter((x) => x.name.startsWith('faulty-'))) {
      const key = d.type === 'machine' ? 'rpm' : 'temperature';
      const points = (await api<Series>(`/api/devices/${d.id}/telemetry?keys=${key}&limit=10000`))[key] ?? [];
      total += points.length;
      late += points.filter((p) => p.ts < startedAt).length;
    }
    expect(total).toBeGreaterThan(100);
    expect(late / total).toBeGreaterThan(0.15);
    expect(late / total).toBeLessThan(0.45);
  });

  it('publishes the same messages for the same seed, faults included, and others for another seed', async () => {
    const T0 = 1_750_000_000_000;
    const capture = async (seed: number) => {
      const sent: string[][] = [[], [], []];
      await runSimulation({ ...options, prefix: 'seeded-', seed, rate: 50, durationSec: 1, late: 0.3, malformed: 0.2, anomalies: 0.3 },
        { now: () => T0, onPublish: (device, payload) => sent[device]!.push(payload) });
      return sent;
    };
    const [first, second, other] = [await capture(11), await capture(11), await capture(12)];
    for (let device = 0; device < 3; device++) {
      const n = Math.min(first[device]!.length, second[device]!.length, other[device]!.length);
      expect(n).toBeGreaterThan(20);
      expect(second[device]!.slice(0, n)).toEqual(first[device]!.slice(0, n));
      expect(other[device]!.slice(0, n)).not.toEqual(first[device]!.slice(0, n));
    }
    // The runs had faults in them: broken JSON, and timestamps moved into the past.
    const all = first.flat();
    expect(all.filter((p) => !isJson(p)).length).toBeGreaterThan(0);
    expect(all.filter((p) => isJson(p) && (JSON.parse(p) as { ts: number }).ts < T0).length).toBeGreaterThan(0);
  });

  it('reuses devices that already exist by name', async () => {
    const again = await runSimulation({ ...options, durationSec: 0.3 });
    expect(again).toMatchObject({ devices: 3, created: 0, reused: 3, errors: 0 });
    const devices = await api<DeviceJson[]>('/api/devices');
    expect(devices.filter((d) => d.name.startsWith('simtest-'))).toHaveLength(3);
  });
});

const isJson = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('seeded values', () => {
  const sequence = (seed: number, index: number) => {
    const profile = profileForIndex(index);
    const device = profile.createDevice(mulberry32(deriveSeed(seed, index)));
    return Array.from({ length: 50 }, (_, i) => device(1_700_000_000_000 + i * 1000));
  };

  it('the same seed gives the same numbers', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const first = Array.from({ length: 100 }, a);
    expect(Array.from({ length: 100 }, b)).toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Array.from({ length: 100 }, mulberry32(43))).not.toEqual(first);
  });

  it('the same seed gives each device the same sequence of readings', () => {
    for (const index of [0, 1, 2]) expect(sequence(7, index)).toEqual(sequence(7, index));
    expect(sequence(7, 0)).not.toEqual(sequence(8, 0));
    expect(sequence(7, 0)).not.toEqual(sequence(7, 2));
  });

  it('profiles give their keys with plausible values', () => {
    for (const r of sequence(1, 0)) {
      expect(Object.keys(r).sort()).toEqual([...roomSensor.keys].sort());
      expect(r.temperature).toBeGreaterThan(10);
      expect(r.temperature).toBeLessThan(35);
      expect(r.humidity).toBeGreaterThanOrEqual(0);
      expect(r.humidity).toBeLessThanOrEqual(100);
    }
    for (const r of sequence(1, 1)) {
      expect(Object.keys(r).sort()).toEqual([...machine.keys].sort());
      expect(r.rpm).toBeGreaterThan(1000);
      expect(r.current).toBeGreaterThan(0);
      expect(r.vibration).toBeGreaterThan(0);
    }
    const trail = sequence(1, 2);
    for (const r of trail) {
      expect(Object.keys(r).sort()).toEqual([...tracker.keys].sort());
      expect(r.battery).toBeGreaterThanOrEqual(0);
      expect(r.battery).toBeLessThanOrEqual(100);
      expect(Math.abs(r.lat! - 48.15)).toBeLessThan(1);
      expect(r.speed).toBeGreaterThanOrEqual(0);
    }
    // The battery only drains.
    for (let i = 1; i < trail.length; i++) expect(trail[i]!.battery).toBeLessThanOrEqual(trail[i - 1]!.battery!);
  });
});

describe('simulator options', () => {
  const parse = (...argv: string[]) => parseSimArgs(argv, { env: {}, readStoredAdminToken: () => 'stored-token' });

  it('has the documented defaults, and reads the stored admin token when none is given', () => {
    expect(parse()).toEqual({
      help: false,
      options: {
        url: 'http://localhost:8080', mqttUrl: 'mqtt://localhost:1883', adminToken: 'stored-token', devices: 10, rate: 1,
        qos: 1, durationSec: undefined, seed: 1, prefix: 'sim-', form: 'ts', late: 0, malformed: 0, anomalies: 0,
        load: false, inflight: 16, tokensFile: undefined, reconnectMaxMs: 30_000, json: false,
      },
    });
  });

  it('takes the flag before ADMIN_TOKEN before the stored token', () => {
    const env = { ADMIN_TOKEN: 'from-env' };
    expect(parseSimArgs([], { env, readStoredAdminToken: () => 'stored' })).toMatchObject({ options: { adminToken: 'from-env' } });
    expect(parseSimArgs(['--admin-token', 'flag'], { env, readStoredAdminToken: () => 'stored' })).toMatchObject({ options: { adminToken: 'flag' } });
    expect(() => parseSimArgs([], { env: {}, readStoredAdminToken: () => undefined })).toThrow(/--admin-token/);
  });

  it('takes load mode at the highest rate, and a tokens file in place of an admin token', () => {
    const parsed = parseSimArgs(['--load', '--rate', 'max', '--inflight', '64', '--tokens-file', 't.json', '--json', '--reconnect-max', '2.5'],
      { env: {}, readStoredAdminToken: () => undefined });
    expect(parsed).toMatchObject({ options: { load: true, rate: 'max', inflight: 64, tokensFile: 't.json', adminToken: undefined, json: true, reconnectMaxMs: 2500 } });
  });

  it.each([
    ['--devices', '0'], ['--devices', '1.5'], ['--rate', '0'], ['--rate', 'fast'], ['--qos', '2'],
    ['--duration', '-1'], ['--seed', 'x'], ['--url', 'localhost'], ['--mqtt-url', 'http://x'], ['--prefix', ''],
    ['--rate', 'max'], ['--inflight', '0'], ['--inflight', '20000'], ['--reconnect-max', '0'], ['--tokens-file', ''],
  ])('refuses %s %j, naming the option', (flag, value) => {
    expect(() => parse(flag, value)).toThrow(OptionError);
    expect(() => parse(flag, value)).toThrow(flag);
  });
});

describe('the simulator CLI', () => {
  const run = promisify(execFile);

  it('exits 2 with a message naming the option on a bad value', async () => {
    const failure = await run('npx', ['tsx', 'devices-sim/src/cli.ts', '--devices', 'abc'], { cwd: repoRoot }).then(
      () => { throw new Error('the CLI accepted --devices abc'); },
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure.code).toBe(2);
    expect(failure.stderr).toContain('--devices');
  });

  it('prints usage on --help', async () => {
    const { stdout } = await run('npx', ['tsx', 'devices-sim/src/cli.ts', '--help'], { cwd: repoRoot });
    for (const flag of ['--url', '--mqtt-url', '--admin-token', '--devices', '--rate', '--qos', '--duration', '--seed', '--prefix']) {
      expect(stdout).toContain(flag);
    }
  });
});
