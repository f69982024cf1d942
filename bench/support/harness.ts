/**
 * What the end-to-end benchmarks share: Sluice in its own process on a temp data dir, devices
 * provisioned once into a tokens file, the simulator's load mode as a separate process, samples
 * of a process's memory and CPU, and consumer lag read from /api/log.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planDevices } from '../../devices-sim/src/device-plan.js';
import { provisionDevices } from '../../devices-sim/src/provision.js';
import type { SimulationSummary } from '../../devices-sim/src/simulation.js';
import { writeTokensFile } from '../../devices-sim/src/tokens-file.js';
import { repoRoot, startChildSluice, type ChildServer } from '../../test/support/child-server.js';
import type { BenchResults } from './results.js';

export const ADMIN_TOKEN = 'bench-admin-token';
export const EXAMPLE_RULES = path.join(repoRoot, 'rules');

export interface BenchSluice extends ChildServer {
  base: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** Sluice with the example rules (filter, enrich, 1-minute tumbling window, alarm) on a fresh data dir. */
export async function startBenchSluice(extraArgs: string[] = []): Promise<BenchSluice> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  // Every load connection comes from 127.0.0.1: the per-address limit (1,000 by default, for
  // devices behind NAT) would refuse bench:connections' 10,000, so it is raised; all else stays.
  const server = await startChildSluice(dataDir, ['--log-level', 'warn', '--rules-dir', EXAMPLE_RULES, '--mqtt-max-connections-per-address', '100000', ...extraArgs], { ADMIN_TOKEN });
  return {
    ...server, dataDir, base: `http://127.0.0.1:${server.ports.http}`,
    async stop() {
      server.child.kill('SIGTERM');
      await server.exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Creates `count` simulator devices (named `<prefix>N`, profiles dealt round-robin) and writes their tokens file. */
export async function provisionTokens(sluice: BenchSluice, count: number, prefix = 'bench-'): Promise<string> {
  const file = path.join(sluice.dataDir, `tokens-${prefix}${count}.json`);
  const devices = await provisionDevices({ url: sluice.base, adminToken: ADMIN_TOKEN }, planDevices(prefix, count));
  writeTokensFile(file, devices);
  return file;
}

export interface LoadArgs {
  mqttPort: number;
  tokensFile: string;
  devices: number;
  qos: 0 | 1;
  /** Per device, or 'max'. */
  rate: number | 'max';
  seconds: number;
  inflight?: number;
  prefix?: string;
}

/** The simulator in load mode, as its own process; resolves with its JSON summary. */
export function runLoad(args: LoadArgs): Promise<SimulationSummary> {
  const argv = ['--import', 'tsx', 'devices-sim/src/cli.ts', '--load', '--json',
    '--mqtt-url', `mqtt://127.0.0.1:${args.mqttPort}`, '--tokens-file', args.tokensFile, '--prefix', args.prefix ?? 'bench-',
    '--devices', String(args.devices), '--qos', String(args.qos), '--rate', String(args.rate), '--duration', String(args.seconds),
    '--inflight', String(args.inflight ?? 16), '--url', 'http://127.0.0.1:9'];
  const child = spawn(process.execPath, argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as SimulationSummary);
    });
  });
}

/** Resident memory and CPU time of a process, from /proc. */
export function processSample(pid: number): { rssMB: number; cpuSec: number; at: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { rssMB: rssKb / 1024, cpuSec: ticks / 100, at: performance.now() };
}

/** Peak RSS and mean CPU (percent of one core) of `pid` while `during` runs, sampled every 500 ms. */
export async function measureProcess<T>(pid: number, during: Promise<T>): Promise<{ result: T; peakRssMB: number; cpuPercent: number }> {
  const first = processSample(pid);
  let peakRssMB = first.rssMB;
  const timer = setInterval(() => { peakRssMB = Math.max(peakRssMB, processSample(pid).rssMB); }, 500);
  try {
    const result = await during;
    const last = processSample(pid);
    peakRssMB = Math.max(peakRssMB, last.rssMB);
    return { result, peakRssMB, cpuPercent: (100 * (last.cpuSec - first.cpuSec)) / ((last.at - first.at) / 1000) };
  } finally {
    clearInterval(timer);
  }
}

export interface LogState {
  /** Records in the telemetry topic. */
  appended: number;
  /** Lag of each consumer group reading telemetry. */
  lag: Record<string, number>;
  committed: Record<string, number>;
}

export async function logState(sluice: BenchSluice): Promise<LogState> {
  const res = await fetch(`${sluice.base}/api/log`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const { topics, groups } = await res.json() as {
    topics: Array<{ name: string; partitions: Array<{ endOffset: number }> }>;
    groups: Array<{ name: string; topic: string; partitions: Array<{ committed: number; lag: number }> }>;
  };
  const appended = topics.find((t) => t.name === 'telemetry')!.partitions.reduce((n, p) => n + p.endOffset, 0);
  const lag: Record<string, number> = {};
  const committed: Record<string, number> = {};
  for (const g of groups.filter((x) => x.topic === 'telemetry')) {
    lag[g.name] = g.partitions.reduce((n, p) => n + p.lag, 0);
    committed[g.name] = g.partitions.reduce((n, p) => n + p.committed, 0);
  }
  return { appended, lag, committed };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function machineLine(): string {
  return `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, node ${process.version}, ${os.type()} ${os.release()}`;
}

export const RESULTS_FILE = path.join(repoRoot, 'bench', 'results', 'e2e.json');

/** Replaces one section of bench/results/e2e.json, keeping the others from earlier runs. */
export function saveResults(section: 'throughput' | 'latency' | 'connections', rows: BenchResults[typeof section]): void {
  let results: BenchResults = { date: '', machine: '', node: '', throughput: [], latency: [], connections: [] };
  try {
    results = JSON.parse(fs.readFileSync(RESULTS_FILE, 'utf8')) as BenchResults;
  } catch {
    // first run
  }
  (results as unknown as Record<string, unknown>)[section] = rows;
  results.date = new Date().toISOString().slice(0, 10);
  results.machine = machineLine();
  results.node = process.version;
  fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  fs.writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
