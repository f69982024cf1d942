/**
 * Latency from publish to the dashboard: a socket.io client (as the dashboard) receives the
 * `telemetry` event of each stored message and notes now − the message's `ts`, which the load
 * generator sets at send time (same machine, same clock; 1 ms resolution). QoS 1 at fixed rates,
 * Sluice with the example rules active. Percentiles from Node's HDR histogram (perf_hooks).
 *
 * Usage: npm run bench:latency -- [--rates 1000,10000,50000] [--seconds 20] [--devices 100]
 */
import { createHistogram } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { ADMIN_TOKEN, fmt, machineLine, provisionTokens, runLoad, saveResults, sleep, startBenchSluice, logState } from './support/harness.js';
import type { LatencyRow } from './support/results.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '1000,10000,50000' }, seconds: { type: 'string', default: '20' },
    devices: { type: 'string', default: '100' }, warmup: { type: 'string', default: '2' },
  },
});
const rates = values.rates.split(',').map(Number);
const seconds = Number(values.seconds);
const devices = Number(values.devices);
const warmupMs = Number(values.warmup) * 1000;

console.log(`${new Date().toISOString().slice(0, 10)}  ${machineLine()}`);
const rows: LatencyRow[] = [];
for (const rate of rates) {
  const sluice = await startBenchSluice();
  try {
    const tokensFile = await provisionTokens(sluice, devices);
    const histogram = createHistogram({ lowest: 1, highest: 3_600_000, figures: 3 });
    let received = 0;
    let measureFrom = Infinity;
    const socket = io(sluice.base, { auth: { token: ADMIN_TOKEN }, transports: ['websocket'] });
    await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
    socket.on('telemetry', (event: { ts: number }) => {
      received++;
      if (event.ts >= measureFrom) histogram.record(Math.max(1, Date.now() - event.ts));
    });
    const load = runLoad({ mqttPort: sluice.ports.mqtt, tokensFile, devices, qos: 1, rate: rate / devices, seconds });
    measureFrom = Date.now() + warmupMs;
    const summary = await load;
    // Events still on their way count towards the ones received, not the percentiles' window.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && Math.max(0, ...Object.values((await logState(sluice)).lag)) > 0) await sleep(200);
    await sleep(500);
    socket.close();
    const row: LatencyRow = {
      rate, p50Ms: histogram.percentile(50), p99Ms: histogram.percentile(99), maxMs: histogram.max, received, sent: summary.sent,
    };
    rows.push(row);
    console.log(`${fmt(rate)} msg/s offered (sent ${fmt(summary.sentPerSec)}/s): publish -> socket.io telemetry p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, max ${row.maxMs} ms;`
      + ` ${fmt(received)} events for ${fmt(summary.sent)} messages`);
  } finally {
    await sluice.stop();
  }
}
saveResults('latency', rows);
