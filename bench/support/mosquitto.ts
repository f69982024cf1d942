import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { planDevices } from '../../devices-sim/src/device-plan.js';
import { writeTokensFile } from '../../devices-sim/src/tokens-file.js';
import { measureProcess, runLoad, sleep } from './harness.js';
import type { ThroughputRow } from './results.js';

/**
 * The reference: Debian's Mosquitto on a free loopback port, one mosquitto_sub subscriber on the
 * telemetry topic, and the same load-mode publisher flat out at QoS 0. What Mosquitto relays is
 * what the subscriber receives (lines counted as they arrive).
 */
export async function mosquittoRelayRate(options: { devices: number; seconds: number }): Promise<ThroughputRow> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  // max_queued_messages: QoS 0 messages queued for a slow subscriber before Mosquitto drops them.
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n`);
  const broker = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const subscriber: { child?: ChildProcess } = {};
  try {
    await waitForPort(port);
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'v1/devices/me/telemetry', '-q', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    subscriber.child = sub;
    let received = 0;
    sub.stdout!.on('data', (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) received++;
    });
    await sleep(500);
    // Mosquitto takes any user name: the tokens only name the devices.
    const tokensFile = path.join(dir, 'tokens.json');
    writeTokensFile(tokensFile, planDevices('bench-', options.devices).map((d) => ({ id: d.name, name: d.name, token: d.name, created: false })));
    const before = received;
    const { result: load, peakRssMB, cpuPercent } = await measureProcess(broker.pid!,
      runLoad({ mqttPort: port, tokensFile, devices: options.devices, qos: 0, rate: 'max', seconds: options.seconds }));
    // Over the load generator's publishing time, not its start-up: the same window for Sluice and Mosquitto.
    const elapsed = load.durationSec;
    const delivered = (received - before) / elapsed;
    return { label: 'Mosquitto QoS 0, max', system: 'mosquitto', qos: 0, offered: load.sentPerSec, delivered, seconds: options.seconds, rssMB: peakRssMB, cpuPercent };
  } finally {
    subscriber.child?.kill();
    broker.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`mosquitto did not listen on ${port}`);
}
