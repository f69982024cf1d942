/**
 * Many device connections: N devices connect (the simulator's load mode, own process), each
 * publishing one QoS 1 message a second, for --seconds; the server's peak RSS and mean CPU are
 * read from /proc. Each count runs against a fresh Sluice with the example rules active.
 * Needs `ulimit -n` above N in both processes (the load generator and the server).
 *
 * Usage: npm run bench:connections -- [--counts 1000,10000] [--seconds 30]
 */
import { parseArgs } from 'node:util';
import { fmt, machineLine, measureProcess, provisionTokens, runLoad, saveResults, sleep, startBenchSluice } from './support/harness.js';
import type { ConnectionsRow } from './support/results.js';

const { values } = parseArgs({ options: { counts: { type: 'string', default: '1000,10000' }, seconds: { type: 'string', default: '30' } } });
const counts = values.counts.split(',').map(Number);
const seconds = Number(values.seconds);

console.log(`${new Date().toISOString().slice(0, 10)}  ${machineLine()}`);
const rows: ConnectionsRow[] = [];
for (const count of counts) {
  const sluice = await startBenchSluice();
  try {
    const provisionedAt = performance.now();
    const tokensFile = await provisionTokens(sluice, count);
    const provisionSec = (performance.now() - provisionedAt) / 1000;
    let connected = 0;
    const load = runLoad({ mqttPort: sluice.ports.mqtt, tokensFile, devices: count, qos: 1, rate: 1, seconds });
    // Halfway through, every device should be connected: read the broker's own gauge.
    const probe = sleep((seconds / 2) * 1000 + 2000).then(async () => {
      const text = await (await fetch(`${sluice.base}/metrics`)).text();
      connected = Number(/^sluice_mqtt_clients (\d+)/m.exec(text)?.[1] ?? 0);
    });
    const { result: summary, peakRssMB, cpuPercent } = await measureProcess(sluice.child.pid!, load);
    await probe;
    rows.push({ connections: count, connected, rssMB: peakRssMB, cpuPercent, rate: summary.sentPerSec });
    console.log(`${fmt(count)} connections (${fmt(connected)} connected, provisioned in ${provisionSec.toFixed(1)} s): server peak RSS ${fmt(peakRssMB)} MB,`
      + ` CPU ${fmt(cpuPercent)}% of a core, ${fmt(summary.sentPerSec)} msg/s acknowledged, ${summary.errors} errors`);
  } finally {
    await sluice.stop();
  }
}
saveResults('connections', rows);
