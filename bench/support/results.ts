/** What the end-to-end benchmarks measure, as written to bench/results/e2e.json and drawn in the chart. */

export interface ThroughputRow {
  /** e.g. "Sluice QoS 0, 100,000 msg/s offered" or "Mosquitto QoS 0, max". */
  label: string;
  system: 'sluice' | 'mosquitto';
  qos: 0 | 1;
  /** Messages per second the load generator sent (QoS 1: acknowledged). */
  offered: number;
  /** Messages per second that made it through: Sluice, stored by the slowest consumer group; Mosquitto, received by the subscriber. */
  delivered: number;
  /** Largest consumer lag seen (messages), and at the end. Sluice only. */
  maxLag?: number;
  endLag?: number;
  /** Whether every consumer kept up: lag at the end below one second of input. */
  keptUp?: boolean;
  seconds: number;
  rssMB: number;
  /** Server CPU, percent of one core (200 = both cores). */
  cpuPercent: number;
}

export interface LatencyRow {
  /** Offered messages per second. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** telemetry events received / messages sent. */
  received: number;
  sent: number;
}

export interface ConnectionsRow {
  connections: number;
  connected: number;
  rssMB: number;
  cpuPercent: number;
  /** Messages per second in all (one per device per second). */
  rate: number;
}

export interface BenchResults {
  date: string;
  machine: string;
  node: string;
  throughput: ThroughputRow[];
  latency: LatencyRow[];
  connections: ConnectionsRow[];
}
