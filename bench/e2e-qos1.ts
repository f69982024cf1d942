/**
 * End-to-end QoS 1 ingest: Sluice in its own process (fsync interval), N device clients in this
 * process publishing as fast as PUBACKs come back, each with a window of in-flight messages.
 * Usage: npx tsx bench/e2e-qos1.ts [--clients 50] [--seconds 10] [--inflight 20]
 */
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startChildSluice } from '../test/support/child-server.js';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '50' }, seconds: { type: 'string', default: '10' }, inflight: { type: 'string', default: '20' }, qos: { type: 'string', default: '1' } } });
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const inflight = Number(values.inflight);
const qos = Number(values.qos) as 0 | 1;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
const server = await startChildSluice(dataDir, ['--log-level', 'warn'], { ADMIN_TOKEN: 'bench-admin-token' });
const base = `http://127.0.0.1:${server.ports.http}`;
const auth = { authorization: 'Bearer bench-admin-token', 'content-type': 'application/json' };
const tokens: string[] = [];
for (let i = 0; i < clients; i++) {
  const res = await fetch(`${base}/api/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ name: `bench-${i}` }) });
  tokens.push(((await res.json()) as { token: string }).token);
}
const conns: MqttClient[] = await Promise.all(tokens.map((token) => mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { username: token, reconnectPeriod: 0 })));

let acked = 0;
let stop = false;
const payload = (i: number) => `{"temperature":${(20 + (i % 10) / 10).toFixed(1)},"humidity":${40 + (i % 7)},"seq":${i}}`;
const start = Date.now();
await Promise.all(conns.map(async (c) => {
  let seq = 0;
  const lane = async () => {
    while (!stop) {
      await c.publishAsync('v1/devices/me/telemetry', payload(seq++), { qos });
      acked++;
    }
  };
  const lanes = Array.from({ length: qos === 1 ? inflight : 1 }, lane);
  setTimeout(() => { stop = true; }, seconds * 1000);
  await Promise.all(lanes);
}));
const elapsed = (Date.now() - start) / 1000;
console.log(`qos${qos} clients=${clients} inflight=${inflight}: ${acked} acked in ${elapsed.toFixed(1)} s = ${Math.round(acked / elapsed)} msg/s`);
for (const c of conns) c.end(true);
server.child.kill('SIGTERM');
await server.exited;
fs.rmSync(dataDir, { recursive: true, force: true });
