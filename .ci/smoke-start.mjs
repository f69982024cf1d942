// `npm start` on free ports in a temp data dir, as a user would run it: waits for /healthz, creates
// a device, posts a reading over the device HTTP API (so SQLite's native module is exercised),
// reads it back, stops it as Ctrl-C does (SIGINT to the whole process group: npm, its shell, node)
// and expects Sluice to stop cleanly (npm itself may exit by the same SIGINT, as it does in a
// terminal). Run from the repository's root.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-smoke-'));
const child = spawn('npm', ['start', '--', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', '--rules-dir', path.join(dataDir, 'no-rules'), '--admin-token', 'smoke-test-token'], {
  stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_FORMAT: 'json' }, detached: true,
});
let output = '';
child.stdout.on('data', (d) => { output += d; });
child.stderr.on('data', (d) => { output += d; });
// 'close' comes once every process holding the output pipes (npm, its shell, node) has ended.
const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));

function fail(why) {
  process.stderr.write(`smoke start failed: ${why}\n--- output ---\n${output}\n`);
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone already */ }
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(1);
}

async function until(what, check, ms = 90_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) fail(`no ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const portsFile = path.join(dataDir, 'ports.json');
const ports = await until('ports.json', async () => (fs.existsSync(portsFile) ? JSON.parse(fs.readFileSync(portsFile, 'utf8')) : undefined));
const base = `http://127.0.0.1:${ports.http}`;
const auth = { authorization: 'Bearer smoke-test-token', 'content-type': 'application/json' };
await until('healthy /healthz', async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined));
const device = await (await fetch(`${base}/api/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'smoke' }) })).json();
const posted = await fetch(`${base}/api/v1/${device.token}/telemetry`, { method: 'POST', headers: auth, body: '{"ts":1704067200000,"values":{"t":21.5}}' });
if (posted.status !== 200) fail(`telemetry POST answered ${posted.status}`);
const stored = await until('stored reading', async () => {
  const latest = await (await fetch(`${base}/api/devices/${device.id}/telemetry/latest`, { headers: auth })).json();
  return latest.t?.value === 21.5 ? latest : undefined;
}, 10_000);
process.kill(-child.pid, 'SIGINT');
const { code, signal } = await exited;
if (!(code === 0 || code === 130 || signal === 'SIGINT')) fail(`npm ended with code ${code}, signal ${signal} after Ctrl-C`);
if (!output.includes('stopped cleanly')) fail('no "stopped cleanly" in the output');
fs.rmSync(dataDir, { recursive: true, force: true });
console.log(`    smoke start: node ${process.version}, ports ${JSON.stringify(ports)}, stored ${JSON.stringify(stored)}, clean stop on Ctrl-C`);
