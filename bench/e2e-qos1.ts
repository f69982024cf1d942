/**
 * End-to-end QoS 1 ingest: Sluice in its own process, N device connections in this process
 * publishing as fast as PUBACKs come back, each keeping a window of messages in flight. A message
 * counts once its PUBACK is back, which Sluice sends only after the log append.
 *
 * Usage: npm run bench:e2e -- [--clients 50] [--seconds 10] [--inflight 20] [--fsync interval:50]
 *                              [--client raw|mqttjs]
 * `raw` (default) is a lean hand-encoded publisher (bench/support/raw-mqtt-publisher.ts) so that
 * the load generator, which shares the machine's cores, takes as little CPU as possible;
 * `mqttjs` uses the mqtt.js client, as real devices running Node would.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { startChildSluice } from '../test/support/child-server.js';
import { connectRaw, publishLoop, type RawPublisherStats } from './support/raw-mqtt-publisher.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '50' }, seconds: { type: 'string', default: '10' }, inflight: { type: 'string', default: '20' },
    fsync: { type: 'string', default: 'interval:50' }, client: { type: 'string', default: 'raw' }, 'rules-dir': { type: 'string' },
  },
});
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const inflight = Number(values.inflight);
const TOPIC = 'v1/devices/me/telemetry';
const payload = (i: number) => `{"temperature":${(20 + (i % 10) / 10).toFixed(1)},"humidity":${40 + (i % 7)},"seq":${i}}`;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
const server = await startChildSluice(dataDir, ['--log-level', 'warn', '--fsync', values.fsync, ...(values['rules-dir'] ? ['--rules-dir', values['rules-dir']] : [])], { ADMIN_TOKEN: 'bench-admin-token' });
const base = `http://127.0.0.1:${server.ports.http}`;
const auth = { authorization: 'Bearer bench-admin-token', 'content-type': 'application/json' };
const tokens: string[] = [];
for (let i = 0; i < clients; i++) {
  const res = await fetch(`${base}/api/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ name: `bench-${i}` }) });
  tokens.push(((await res.json()) as { token: string }).token);
}

const stats: RawPublisherStats = { acked: 0, latenciesUs: [] };
let stop = false;
const until = () => stop;
const start = performance.now();
setTimeout(() => { stop = true; }, seconds * 1000);

if (values.client === 'mqttjs') {
  const conns = await Promise.all(tokens.map((token) => mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { username: token, reconnectPeriod: 0 })));
  await Promise.all(conns.map(async (c) => {
    let seq = 0;
    const lane = async () => {
      while (!stop) {
        const t = performance.now();
        await c.publishAsync(TOPIC, payload(seq++), { qos: 1 });
        stats.latenciesUs.push(Math.round((performance.now() - t) * 1000));
        stats.acked++;
      }
    };
    await Promise.all(Array.from({ length: inflight }, lane));
  }));
  for (const c of conns) c.end(true);
} else {
  const sockets = await Promise.all(tokens.map((token, i) => connectRaw('127.0.0.1', server.ports.mqtt, token, `bench-${i}`)));
  await Promise.all(sockets.map((s) => publishLoop(s, TOPIC, payload, inflight, until, stats)));
  for (const s of sockets) s.destroy();
}
const elapsed = (performance.now() - start) / 1000;

// Let storage catch up, to report how far behind it was.
const lagAt = async () => {
  const log = await (await fetch(`${base}/api/log`, { headers: auth })).json() as { groups: { name: string; partitions: { lag: number }[] }[] };
  return log.groups.find((g) => g.name === 'storage')?.partitions.reduce((s, p) => s + p.lag, 0) ?? 0;
};
const lagAtEnd = await lagAt();
const drainStart = performance.now();
while ((await lagAt()) > 0) await new Promise((r) => setTimeout(r, 100));
const drainSec = (performance.now() - drainStart) / 1000;

const sorted = Float64Array.from(stats.latenciesUs).sort();
const pct = (q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000);
console.log(`${new Date().toISOString().slice(0, 10)}  ${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}  node ${process.version}`);
console.log(`client=${values.client} clients=${clients} inflight=${inflight} fsync=${values.fsync}: ${stats.acked} acked in ${elapsed.toFixed(1)} s`
  + ` = ${Math.round(stats.acked / elapsed)} msg/s; PUBACK latency p50 ${pct(0.5).toFixed(2)} ms, p99 ${pct(0.99).toFixed(2)} ms;`
  + ` storage lag at the end ${lagAtEnd} records, drained in ${drainSec.toFixed(1)} s`);
server.child.kill('SIGTERM');
await server.exited;
fs.rmSync(dataDir, { recursive: true, force: true });
