import { describe, expect, it } from 'vitest';
import { renderBenchChart } from '../bench/support/chart.js';
import type { BenchResults } from '../bench/support/results.js';

const results: BenchResults = {
  date: '2026-11-23', machine: 'test', node: 'v20',
  throughput: [
    { label: 'Sluice QoS 1, max', system: 'sluice', qos: 1, offered: 41_000, delivered: 40_700, seconds: 60, rssMB: 419, cpuPercent: 137 },
    { label: 'Mosquitto QoS 0, max', system: 'mosquitto', qos: 0, offered: 285_000, delivered: 83_500, seconds: 20, rssMB: 26, cpuPercent: 76 },
  ],
  latency: [
    { rate: 1000, p50Ms: 3, p99Ms: 496, maxMs: 533, received: 10, sent: 10 },
    { rate: 10000, p50Ms: 485, p99Ms: 4107, maxMs: 4455, received: 10, sent: 10 },
  ],
  connections: [
    { connections: 1000, connected: 1000, rssMB: 233, cpuPercent: 44, rate: 997 },
    { connections: 10000, connected: 10000, rssMB: 590, cpuPercent: 116, rate: 9707 },
  ],
};

describe('the benchmark chart', () => {
  it('draws throughput, latency and memory panels as one SVG with the runs named', async () => {
    const svg = await renderBenchChart(results);
    expect(svg.trimStart().startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    for (const text of ['Sluice QoS 1, max', 'Mosquitto QoS 0, max', '10,000']) expect(svg).toContain(text);
    for (const title of ['Throughput', 'Latency', 'memory by connection count', '1,000 connections']) expect(svg).toContain(title);
  });

  it('changes with the data', async () => {
    const other = await renderBenchChart({ ...results, throughput: [{ ...results.throughput[0]!, label: 'Another run' }] });
    expect(other).toContain('Another run');
    expect(other).not.toContain('Mosquitto QoS 0, max');
  });
});
