import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/child-server.js';
import { tempDir, waitFor } from './support/test-server.js';

const ADMIN = 'disk-full-admin-token';

/**
 * Sluice in its own mount namespace with its log on a 2 MiB tmpfs, so the test can fill that
 * disk for real (via /proc/<pid>/root) without touching the machine's. Needs unshare(1) and user
 * namespaces, which Debian has; the test fails, not skips, when they are missing.
 */
function startOnSmallDisk(dataDir: string) {
  const logDir = path.join(dataDir, 'log');
  fs.mkdirSync(logDir, { recursive: true });
  const script = 'mount -t tmpfs -o size=2m tmpfs "$1" && exec "$0" --import tsx server/src/main.ts --data-dir "$2" --mqtt-port 0 --http-port 0 --admin-token "$3"';
  const child = spawn('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script, process.execPath, logDir, dataDir, ADMIN], {
    cwd: repoRoot, env: { ...process.env, LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, output: () => out, exited, logDirInside: path.join(`/proc/${child.pid}/root`, logDir) };
}

describe('a full disk', () => {
  it('refuses device messages with a clear reason and back-pressure, keeps serving, and recovers when space comes back', async () => {
    const dataDir = tempDir();
    const server = startOnSmallDisk(dataDir);
    let exitCode: number | null | undefined;
    void server.exited.then((c) => { exitCode = c; });
    try {
      const ports = await waitFor('ports.json', () => {
        if (exitCode !== undefined) throw new Error(`sluice (under unshare) exited with ${exitCode}: ${server.output()}`);
        const f = path.join(dataDir, 'ports.json');
        return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as { mqtt: number; http: number }) : undefined;
      }, 20_000);
      const http = `http://127.0.0.1:${ports.http}`;
      const mqttUrl = `mqtt://127.0.0.1:${ports.mqtt}`;
      const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
      const device = await (await fetch(`${http}/api/devices`, { method: 'POST', headers: admin, body: '{"name":"on-a-small-disk"}' })).json() as { id: string; token: string };
      const postTelemetry = (ts: number) => fetch(`${http}/api/v1/${device.token}/telemetry`, { method: 'POST', body: JSON.stringify({ ts, values: { n: ts } }) });

      // Before: everything is acknowledged.
      expect((await postTelemetry(1)).status).toBe(200);
      const early = await mqtt.connectAsync(mqttUrl, { username: device.token, reconnectPeriod: 0 });
      early.on('error', () => {});
      await early.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 2, values: { n: 2 } }), { qos: 1 });

      // Fill the log's disk.
      const filler = path.join(server.logDirInside, 'filler');
      const fd = fs.openSync(filler, 'w');
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        fs.closeSync(fd);
      }

      // HTTP: what still fits in the file's last page is taken; then 503 with the reason.
      const ackedOverHttp: number[] = [];
      let refused: Response | undefined;
      for (let ts = 100; ts < 1100 && !refused; ts++) {
        const res = await postTelemetry(ts);
        if (res.status === 200) ackedOverHttp.push(ts);
        else refused = res;
      }
      expect(refused?.status).toBe(503);
      expect(((await refused!.json()) as { error: string }).error).toMatch(/disk full/);
      // MQTT QoS 1: no PUBACK; the connection is closed so the device keeps the message and retries.
      const closed = new Promise<void>((resolve) => early.once('close', () => resolve()));
      let acked = false;
      early.publish('v1/devices/me/telemetry', JSON.stringify({ ts: 3, values: { n: 3 } }), { qos: 1 }, (err) => { if (!err) acked = true; });
      await closed;
      expect(acked).toBe(false);
      // New connections are refused while the disk is full: CONNACK 3, server unavailable.
      await expect(mqtt.connectAsync(mqttUrl, { username: device.token, reconnectPeriod: 0 })).rejects.toMatchObject({ code: 3 });
      // Still serving.
      expect((await fetch(`${http}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${http}/metrics`)).text();
      expect(metrics).toMatch(/sluice_log_append_errors_total [1-9]/);
      expect(exitCode).toBeUndefined();

      // Space comes back: ingest works again.
      fs.rmSync(filler);
      const again = await waitFor('a publisher to be let in again', async () => {
        try {
          return await mqtt.connectAsync(mqttUrl, { username: device.token, reconnectPeriod: 0 });
        } catch {
          return undefined;
        }
      }, 10_000);
      await again.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 2000, values: { n: 2000 } }), { qos: 1 });
      again.end(true);
      expect((await postTelemetry(2001)).status).toBe(200);

      // Nothing acknowledged was lost; nothing refused was stored.
      const stored = await waitFor('the points to be stored', async () => {
        const series = await (await fetch(`${http}/api/devices/${device.id}/telemetry?keys=n&from=0&to=3000`, { headers: admin })).json() as { n?: { ts: number }[] };
        const ts = (series.n ?? []).map((p) => p.ts);
        return ts.includes(2001) ? ts : undefined;
      });
      expect(stored).toEqual([1, 2, ...ackedOverHttp, 2000, 2001]);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
