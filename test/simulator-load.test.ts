import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../server/src/config.js';
import { startSluice, type Sluice } from '../server/src/sluice.js';
import { simOptions, type SimOptions } from '../devices-sim/src/options.js';
import { ProvisionError } from '../devices-sim/src/provision.js';
import { runSimulation } from '../devices-sim/src/simulation.js';
import { TokensFileError } from '../devices-sim/src/tokens-file.js';
import { tempDir } from './support/test-server.js';

/** Load mode and tokens files, against a real Sluice of their own (its log counts only their messages). */
describe('simulator load mode', () => {
  let sluice: Sluice;
  let dataDir: string;
  let base: SimOptions;
  let tokensFile: string;

  /** Records in the telemetry topic: each accepted message is one. */
  const telemetryRecords = async () => {
    const res = await fetch(`http://127.0.0.1:${sluice.ports.http}/api/log`, { headers: { authorization: `Bearer ${sluice.adminToken}` } });
    const { topics } = await res.json() as { topics: Array<{ name: string; partitions: Array<{ endOffset: number }> }> };
    return topics.find((t) => t.name === 'telemetry')!.partitions.reduce((n, p) => n + p.endOffset, 0);
  };

  beforeAll(async () => {
    dataDir = tempDir('sluice-load-test-');
    sluice = await startSluice(testConfig({ dataDir }), pino({ level: 'silent' }));
    tokensFile = path.join(dataDir, 'tokens.json');
    base = simOptions({
      url: `http://127.0.0.1:${sluice.ports.http}`, mqttUrl: `mqtt://127.0.0.1:${sluice.ports.mqtt}`,
      adminToken: sluice.adminToken, prefix: 'load-', load: true, tokensFile,
    });
  });

  afterAll(async () => {
    await sluice?.stop();
  });

  it('publishes QoS 1 as fast as PUBACKs come back over hundreds of connections, and every acknowledged message is in the log', async () => {
    const before = await telemetryRecords();
    const summary = await runSimulation({ ...base, devices: 300, qos: 1, rate: 'max', inflight: 8, durationSec: 1.5 });
    expect(summary).toMatchObject({ mode: 'load', devices: 300, created: 300, errors: 0, lost: 0, disconnects: 0 });
    expect(summary.sent).toBeGreaterThan(1000);
    expect(summary.ackLatencyMs!.p99).toBeGreaterThan(0);
    expect((await telemetryRecords()) - before).toBe(summary.sent);
    // The tokens were kept for the next run.
    const kept = JSON.parse(fs.readFileSync(tokensFile, 'utf8')) as { devices: Array<{ name: string; token: string }> };
    expect(kept.devices).toHaveLength(300);
  });

  it('publishes QoS 0 at a fixed rate, spread over the devices, and reuses the tokens file without the REST API', async () => {
    const before = await telemetryRecords();
    // No admin token and an HTTP address where nothing listens: the devices can only come from the file.
    const summary = await runSimulation({ ...base, url: 'http://127.0.0.1:9', adminToken: undefined, devices: 200, qos: 0, rate: 10, durationSec: 1.5 });
    expect(summary).toMatchObject({ devices: 200, created: 0, reused: 200, errors: 0, skipped: 0 });
    // 2,000 msg/s for 1.5 s, give or take a tick.
    expect(summary.sent).toBeGreaterThan(2500);
    expect(summary.sent).toBeLessThan(3200);
    await expect.poll(telemetryRecords, { timeout: 5000 }).toBe(before + summary.sent);
  });

  it('says which devices it lacks when the tokens file misses some and there is no admin token', async () => {
    await expect(runSimulation({ ...base, url: 'http://127.0.0.1:9', adminToken: undefined, devices: 301, durationSec: 0.1 }))
      .rejects.toThrow(new ProvisionError(`1 devices are not in ${tokensFile} and there is no admin token to create them: pass --admin-token or set ADMIN_TOKEN`));
  });

  it('refuses a tokens file that is not what it wrote, naming the file', async () => {
    const broken = path.join(dataDir, 'broken.json');
    fs.writeFileSync(broken, '{"devices": [{"name": "x"}]}');
    await expect(runSimulation({ ...base, tokensFile: broken, devices: 1, durationSec: 0.1 })).rejects.toThrow(TokensFileError);
    await expect(runSimulation({ ...base, tokensFile: broken, devices: 1, durationSec: 0.1 })).rejects.toThrow(/broken\.json: devices\[0\] needs/);
    fs.writeFileSync(broken, 'not json');
    await expect(runSimulation({ ...base, tokensFile: broken, devices: 1, durationSec: 0.1 })).rejects.toThrow(/broken\.json is not JSON/);
  });

  it('counts refused connections as errors and keeps running when a token is wrong', async () => {
    const stale = path.join(dataDir, 'stale.json');
    fs.writeFileSync(stale, JSON.stringify({ devices: [{ name: 'load-1', id: 'gone', token: 'not-a-token' }] }));
    const summary = await runSimulation({ ...base, tokensFile: stale, devices: 1, qos: 1, rate: 10, durationSec: 1, reconnectMaxMs: 200 });
    expect(summary.sent).toBe(0);
    expect(summary.errors).toBeGreaterThanOrEqual(2); // refused, then refused again after a backoff
  });
});
