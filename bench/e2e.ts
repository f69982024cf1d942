/**
 * End-to-end throughput: Sluice (own process, example rules active) fed by the simulator's load
 * mode (own process) over MQTT on loopback, then the same load against Mosquitto with one
 * subscriber, in the same run.
 *
 *   1. Sluice, QoS 0 at a fixed rate (default 100,000 msg/s) for --seconds: does every consumer
 *      group (storage, rules) keep up? Lag is sampled every second.
 *   2. Sluice, QoS 1 as fast as PUBACKs come back, for --seconds.
 *   3. Sluice, QoS 0 flat out (--probe-seconds): the most it ingests, and the slowest consumer's rate.
 *   4. Mosquitto, QoS 0 flat out (--probe-seconds), counted by a mosquitto_sub subscriber.
 *
 * Usage: npm run bench:e2e -- [--seconds 60] [--probe-seconds 20] [--qos0-rate 100000] [--qos0-sustained-rates 70000,80000] [--devices 100]
 *                              [--qos1-devices 200] [--inflight 32] [--skip-mosquitto]
 */
import { parseArgs } from 'node:util';
import { logState, fmt, machineLine, measureProcess, provisionTokens, runLoad, saveResults, sleep, startBenchSluice, type BenchSluice, type LogState } from './support/harness.js';
import { mosquittoRelayRate } from './support/mosquitto.js';
import type { ThroughputRow } from './support/results.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' }, 'probe-seconds': { type: 'string', default: '20' },
    'qos0-rate': { type: 'string', default: '100000' }, 'qos0-sustained-rates': { type: 'string', default: '70000,80000' },
    devices: { type: 'string', default: '100' },
    'qos1-devices': { type: 'string', default: '200' }, inflight: { type: 'string', default: '32' },
    'skip-mosquitto': { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const probeSeconds = Number(values['probe-seconds']);
const qos0Rate = Number(values['qos0-rate']);
const qos0SustainedRates = values['qos0-sustained-rates'].split(',').map(Number).filter((r) => r > 0 && r !== Number(values['qos0-rate']));
const devices = Number(values.devices);
const qos1Devices = Number(values['qos1-devices']);
const inflight = Number(values.inflight);

console.log(`${new Date().toISOString().slice(0, 10)}  ${machineLine()}`);
const rows: ThroughputRow[] = [];

/** Runs one load against a fresh Sluice, sampling lag every second; the row says what got through. */
async function sluiceRun(label: string, qos: 0 | 1, loadDevices: number, rate: number | 'max', runSeconds: number): Promise<ThroughputRow> {
  const sluice = await startBenchSluice();
  try {
    const tokensFile = await provisionTokens(sluice, loadDevices);
    const start = await logState(sluice);
    const samples: LogState[] = [];
    const sampler = setInterval(() => void logState(sluice).then((s) => samples.push(s), () => {}), 1000);
    const { result: load, peakRssMB, cpuPercent } = await measureProcess(sluice.child.pid!,
      runLoad({ mqttPort: sluice.ports.mqtt, tokensFile, devices: loadDevices, qos, rate, seconds: runSeconds, inflight }));
    // Over the load generator's publishing time, not its start-up: the same window for Sluice and Mosquitto.
    const elapsed = load.durationSec;
    clearInterval(sampler);
    const end = await logState(sluice);
    const appendedPerSec = (end.appended - start.appended) / elapsed;
    const groupRates = Object.keys(end.committed).map((g) => (end.committed[g]! - (start.committed[g] ?? 0)) / elapsed);
    const slowest = Math.min(appendedPerSec, ...groupRates);
    const maxLag = Math.max(0, ...samples.flatMap((s) => Object.values(s.lag)), ...Object.values(end.lag));
    const endLag = Math.max(0, ...Object.values(end.lag));
    const row: ThroughputRow = {
      label, system: 'sluice', qos, offered: load.sentPerSec, delivered: slowest, maxLag, endLag,
      keptUp: endLag <= Math.max(1000, appendedPerSec), seconds: runSeconds, rssMB: peakRssMB, cpuPercent,
    };
    console.log(`${label}: sent ${fmt(load.sentPerSec)}/s, appended ${fmt(appendedPerSec)}/s, consumers ${Object.keys(end.committed).map((g, i) => `${g} ${fmt(groupRates[i]!)}/s`).join(', ')};`
      + ` lag max ${fmt(maxLag)}, at end ${fmt(endLag)} (${row.keptUp ? 'kept up' : 'FELL BEHIND'}); server peak RSS ${fmt(peakRssMB)} MB, CPU ${fmt(cpuPercent)}%`
      + (load.ackLatencyMs ? `; PUBACK p50 ${load.ackLatencyMs.p50.toFixed(1)} ms, p99 ${load.ackLatencyMs.p99.toFixed(1)} ms` : '')
      + (load.errors > 0 ? `; ${load.errors} load errors (${load.lost} lost)` : ''));
    await waitForConsumers(sluice);
    return row;
  } finally {
    await sluice.stop();
  }
}

/** Lets the consumers drain before the next run, so runs do not overlap on the CPU. */
async function waitForConsumers(sluice: BenchSluice): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && Math.max(0, ...Object.values((await logState(sluice)).lag)) > 0) await sleep(500);
}

// The target rate, and lower ones that show what is sustained when the target is not.
rows.push(await sluiceRun(`Sluice QoS 0 at ${fmt(qos0Rate)}/s`, 0, devices, qos0Rate / devices, seconds));
for (const rate of qos0SustainedRates) rows.push(await sluiceRun(`Sluice QoS 0 at ${fmt(rate)}/s`, 0, devices, rate / devices, seconds));
rows.push(await sluiceRun('Sluice QoS 1, max', 1, qos1Devices, 'max', seconds));
const probe = await sluiceRun('Sluice QoS 0, max', 0, devices, 'max', probeSeconds);
rows.push(probe);
if (!values['skip-mosquitto']) {
  const mosquitto = await mosquittoRelayRate({ devices, seconds: probeSeconds });
  rows.push(mosquitto);
  console.log(`Mosquitto QoS 0, max: sent ${fmt(mosquitto.offered)}/s, relayed to the subscriber ${fmt(mosquitto.delivered)}/s; peak RSS ${fmt(mosquitto.rssMB)} MB, CPU ${fmt(mosquitto.cpuPercent)}%`);
  const sustained = Math.max(0, ...rows.filter((row) => row.system === 'sluice' && row.qos === 0 && row.keptUp && row.seconds >= seconds).map((row) => row.delivered));
  console.log(`Sluice QoS 0 sustained ${fmt(sustained)}/s = ${(sustained / mosquitto.delivered).toFixed(2)}x Mosquitto's relay;`
    + ` Sluice flat out (slowest consumer) ${fmt(probe.delivered)}/s = ${(probe.delivered / mosquitto.delivered).toFixed(2)}x`);
}
saveResults('throughput', rows);
